"""What the scenarios share: the service pointed at the emulator, the request bodies, the
request log read as chains of round trips, and small measuring tools.

The service runs in this process exactly as the Functions host would run it: its settings come
from the environment (the emulator's settings.env), and messages go through the real function
entry points (tests/harness.py) as real ``azure.functions`` objects.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.launcher import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 50  # stands in for Graph's (and Key Vault's, and the token endpoint's) round trip
TAG = "managed-by:entra-app-registration-service"
GRAPH_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass
class Context:
    emulator: RunningEmulator
    smoke: bool

    @property
    def admin(self) -> Any:
        return self.emulator.admin

    def reset(self, *, latency_ms: float = LATENCY_MS, rules: Sequence[dict[str, Any]] = ()) -> None:
        """The seeded tenant, an empty vault, the real time, and the service rebuilt over it."""
        from shared import testing

        self.admin.reset()
        self.faults(latency_ms=latency_ms, rules=rules)
        testing.forget()

    def faults(self, *, latency_ms: float = LATENCY_MS, rules: Sequence[dict[str, Any]] = ()) -> None:
        latency = [{"kind": "latency", "ms": latency_ms}] if latency_ms else []
        self.admin.faults([*latency, *rules])

    def log(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin.requests()["entries"]
        return entries


# The measured registration asks for one application permission, which the default policy
# does not allow: the benchmarks run with an operator's widening of it.
BENCH_SETTINGS = {
    "API_POLICY": json.dumps(
        {
            "microsoft-graph": {
                "resource": "00000003-0000-0000-c000-000000000000",
                "delegated": ["openid", "profile", "email", "offline_access", "User.Read"],
                "application": ["User.Read.All"],
            }
        }
    )
}


def point_service_at(emulator: RunningEmulator) -> None:
    """The app settings, as the Functions host would set them, then a fresh settings object."""
    from shared.settings import get_settings

    os.environ.update({**emulator.settings, **BENCH_SETTINGS})
    get_settings.cache_clear()


def service_client_body(unique_name: str, request_id: str, *, lifetime: str = "P6M") -> dict[str, Any]:
    """A service client with one delegated and one application permission, consent, a secret
    and FHIR Data Reader on the emulator's FHIR service."""
    return {
        "schemaVersion": 1,
        "requestId": request_id,
        "action": "register",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": unique_name,
            "serviceManagementReference": "CI-BENCH",
            "displayName": unique_name,
            "clientType": "service",
        },
        "apiPermissions": [
            {"api": "microsoft-graph", "delegated": ["User.Read"], "application": ["User.Read.All"]}
        ],
        "grantAdminConsent": True,
        "credential": {"type": "secret", "description": "bench", "lifetime": lifetime},
        "dataAccess": [{"service": "fhir", "roles": ["FHIR Data Reader"]}],
    }


# -- the request log --------------------------------------------------------------------------


def platform_requests(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Graph, Key Vault, Storage (the lease) and Resource Manager (data roles) requests (token
    requests are counted apart)."""
    return [e for e in entries if e["service"] in ("graph", "keyvault", "storage", "arm")]


def longest_chain(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The longest chain of requests each of which started after the previous one ended: the
    round trips that ran one after another, whatever ran beside them."""
    ordered = sorted(entries, key=lambda e: e["startMs"])
    best: list[list[dict[str, Any]]] = []
    for i, entry in enumerate(ordered):
        before = [best[j] for j in range(i) if ordered[j]["endMs"] <= entry["startMs"]]
        best.append([*max(before, key=len, default=[]), entry])
    return max(best, key=len, default=[])


def describe(entry: dict[str, Any]) -> str:
    path = entry["path"]
    return f"{entry['service']} {entry['method']} {path}"


# -- measuring --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_bytes() -> int:
    """Resident set size now (Linux), 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def bounded(concurrency: int, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``jobs`` with at most ``concurrency`` at once, as the host's maxConcurrentCalls would."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(jobs)):
        queue.put_nowait(i)
    results: list[Any] = [None] * len(jobs)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            results[i] = await jobs[i]()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))
    return results


def host_concurrency() -> int:
    import json

    host = json.loads((ROOT / "host.json").read_text())
    return int(host["extensions"]["serviceBus"]["maxConcurrentCalls"])


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
