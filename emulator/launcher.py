"""Start and stop the emulator in a child process, from tests, the demo and benchmarks.

``with running(data_dir) as emu:`` starts ``python -m emulator serve --port 0`` and waits for
its ``settings.env``; ``emu.settings`` holds those KEY=VALUE lines and ``emu.admin`` is a small
client of the control plane authenticated as the admin identity.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def read_settings(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class AdminClient:
    """The control plane (``/_emulator/``) and Graph, as the emulator's admin identity."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings
        self.base_url = settings["EMULATOR_URL"]
        self._http = httpx.Client(base_url=self.base_url, verify=settings["PLATFORM_CA_FILE"], timeout=120)
        self._token: str | None = None
        self._token_expires = 0.0

    def _auth(self) -> dict[str, str]:
        if self._token is None or time.time() > self._token_expires:
            response = self._http.post(
                f"/{self.settings['AZURE_TENANT_ID']}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.settings["EMULATOR_ADMIN_CLIENT_ID"],
                    "client_secret": self.settings["EMULATOR_ADMIN_CLIENT_SECRET"],
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
            self._token_expires = time.time() + 600
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, headers=self._auth(), **kwargs)
        response.raise_for_status()
        return response

    def reset(self) -> None:
        self.request("POST", "/_emulator/reset")

    def snapshot(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/_emulator/snapshot").json()
        return result

    def now(self) -> str:
        return str(self.request("GET", "/_emulator/clock").json()["now"])

    def set_clock(self, iso_time: str) -> str:
        return str(self.request("PUT", "/_emulator/clock", json={"now": iso_time}).json()["now"])

    def advance(self, duration: str) -> str:
        return str(
            self.request("POST", "/_emulator/clock/advance", json={"duration": duration}).json()["now"]
        )

    def faults(self, rules: list[dict[str, Any]], seed: int | None = None) -> None:
        self.request("PUT", "/_emulator/faults", json={"rules": rules, "seed": seed})

    def clear_faults(self) -> None:
        self.request("DELETE", "/_emulator/faults")

    def requests(self, since: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/_emulator/requests", params={"since": since}).json()
        return result

    def clear_requests(self) -> None:
        self.request("DELETE", "/_emulator/requests")

    def policy(self, **policy: Any) -> None:
        self.request("PUT", "/_emulator/policy", json=policy)

    def seed_applications(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/_emulator/seed/applications", json=spec).json()
        return result

    def issued_secrets(self) -> list[str]:
        return list(self.request("GET", "/_emulator/secrets").json()["values"])

    def role_assignments(self) -> dict[str, Any]:
        """Every Azure role assignment: {"propagationSeconds", "value": [...], "deleted": [...]}."""
        result: dict[str, Any] = self.request("GET", "/_emulator/role-assignments").json()
        return result

    def rbac_propagation(self, seconds: int) -> None:
        """How long role assignment changes take to reach the FHIR and DICOM data planes."""
        self.request("PUT", "/_emulator/rbac", json={"propagationSeconds": seconds})

    def servicebus_queues(self) -> dict[str, dict[str, Any]]:
        """Every Service Bus queue by name: its settings and ``countDetails``."""
        queues = self.request("GET", "/_emulator/servicebus/queues").json()["value"]
        return {q["name"]: q for q in queues}

    def servicebus_configure(self, queue: str, **settings: Any) -> dict[str, Any]:
        """Change a queue's ``lockDuration`` (ISO-8601) or ``maxDeliveryCount`` until the reset."""
        result: dict[str, Any] = self.request(
            "PUT", f"/_emulator/servicebus/queues/{queue}", json=settings
        ).json()
        return result

    def expire_locks(self, queue: str) -> int:
        """Make every lock on ``queue`` (messages and sessions) expire now."""
        return int(
            self.request("POST", f"/_emulator/servicebus/queues/{queue}/expire-locks").json()["expired"]
        )

    def servicebus_messages(self, queue: str) -> list[dict[str, Any]]:
        """Every message of ``queue`` and its dead-letter queue (``subQueue`` says which)."""
        return list(self.request("GET", f"/_emulator/servicebus/queues/{queue}/messages").json()["value"])

    def graph(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw Graph call as the admin (for inspection; the service uses msgraph-sdk)."""
        headers = {**kwargs.pop("headers", {}), **self._auth()}
        return self._http.request(method, f"/v1.0{path}", headers=headers, **kwargs)

    def close(self) -> None:
        self._http.close()


class EmulatorClock:
    """The emulator's clock seen from the service's side: the real time plus the emulator's
    offset, re-read whenever this object moves the clock."""

    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin
        self.offset = dt.timedelta(0)
        self.sync()

    def sync(self) -> None:
        emulated = dt.datetime.fromisoformat(self.admin.now().replace("Z", "+00:00"))
        self.offset = emulated - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, duration: str) -> None:
        self.admin.advance(duration)
        self.sync()

    def set(self, moment: dt.datetime) -> None:
        self.admin.set_clock(moment.isoformat())
        self.sync()


@dataclass
class RunningEmulator:
    process: subprocess.Popen[bytes]
    data_dir: Path
    settings: dict[str, str] = field(repr=False)  # holds client secrets: kept out of test reports
    admin: AdminClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.admin = AdminClient(self.settings)

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(data_dir: Path | None = None, timeout: float = 60.0) -> RunningEmulator:
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="emulator-"))
    settings_file = data_dir / "settings.env"
    settings_file.unlink(missing_ok=True)
    project_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(project_root)}
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--data-dir", str(data_dir)],
        cwd=project_root,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while not settings_file.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("the emulator did not start in time")
        time.sleep(0.05)
    return RunningEmulator(process, data_dir, read_settings(settings_file))


@contextmanager
def running(data_dir: Path | None = None) -> Iterator[RunningEmulator]:
    emulator = start(data_dir)
    try:
        yield emulator
    finally:
        emulator.stop()
