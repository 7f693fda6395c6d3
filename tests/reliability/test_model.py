"""A system-level model test (issue 11): hypothesis drives a handful of applications through
register, converge, rotate and decommission tickets, concurrent copies and redeliveries,
scheduler runs and clock advances, with faults injected (429 with ``Retry-After``, 503, lost
responses), against the emulator through the real function entry points.

After every step it checks what must always hold (docs/reliability.md):

- one application per ``uniqueName``;
- the unversioned secret of every managed application with a secret gets a token;
- at most three credentials per application;
- no orphan (a credential the service issued whose value is in no enabled version) that was
  older than the safety age when the scheduler last ran;
- nothing left behind by a rejected request.

Seeded and replayable: hypothesis prints the failing sequence of steps, and the emulator's
fault engine takes its seed from the drawn data. ``make test`` runs a bounded variant, ``make
test-heavy`` a long one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing
from tests import harness
from tests.e2e.tenant import Tenant, parse_time, stored_secret_authenticates

NAMES = ("model-a", "model-b", "model-c")
REFUSED = "model-refused"  # never registered: every register of it is refused
OWNER = "CI0007777 model test"
SAFETY_AGE = dt.timedelta(hours=1)  # ROTATION_SAFETY_AGE's default
MAX_CREDENTIALS = 3
VERBOSE = os.environ.get("MODEL_VERBOSE") == "1"

# Each fault fires on the first matching request only (``times``), so a step always settles.
FAULTS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "vault-write-429": [
        {"kind": "status", "status": 429, "service": "keyvault", "method": "PUT", "path": "^/secrets/app-",
         "times": 1, "retryAfter": 1}
    ],
    "vault-write-503": [
        {"kind": "status", "status": 503, "service": "keyvault", "method": "PUT", "path": "^/secrets/app-", "times": 1}
    ],
    "vault-write-lost": [
        {"kind": "lost-response", "service": "keyvault", "method": "PUT", "path": "^/secrets/app-", "nth": 1}
    ],
    "add-password-lost": [
        {"kind": "lost-response", "service": "graph", "method": "POST", "path": "/addPassword$", "nth": 1}
    ],
    "remove-password-lost": [
        {"kind": "lost-response", "service": "graph", "method": "POST", "path": "/removePassword$", "nth": 1}
    ],
    "graph-write-429": [
        {"kind": "status", "status": 429, "service": "graph", "method": "POST|PATCH|DELETE", "times": 1,
         "retryAfter": 1}
    ],
    "graph-503": [{"kind": "status", "status": 503, "service": "graph", "times": 2}],
}  # fmt: skip

names = st.sampled_from(NAMES)
faults = st.sampled_from(sorted(FAULTS))
copies = st.integers(min_value=1, max_value=2)


def register_body(name: str, request_id: str) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "requestId": request_id,
        "action": "register",
        "requestedBy": "model@contoso.com",
        "application": {
            "uniqueName": name,
            "serviceManagementReference": OWNER,
            "displayName": f"Model {name}",
            "clientType": "service",
        },
        "apiPermissions": [{"api": "azure-healthcare-apis", "delegated": ["user_impersonation"]}],
        "grantAdminConsent": False,
        "credential": {"type": "secret", "description": "model", "lifetime": "P3M"},
    }


def reference_body(action: str, name: str, request_id: str) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "requestId": request_id,
        "action": action,
        "requestedBy": "model@contoso.com",
        "application": {"uniqueName": name, "serviceManagementReference": OWNER},
    }


class Model(RuleBasedStateMachine):
    """The tenant as the tickets have shaped it, and the platform as it really is."""

    emulator: RunningEmulator
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        super().__init__()
        self.admin = self.emulator.admin
        self.admin.reset()
        self.clock = EmulatorClock(self.admin)
        testing.use_clock(self.clock.now)
        self.last_sweep: dt.datetime | None = None
        self.rejected_names: set[str] = set()
        self.tickets = 0

    def teardown(self) -> None:
        self.admin.clear_faults()
        self.admin.policy(secretsAllowed=True)
        testing.use_clock(None)

    # -- running things ---------------------------------------------------------------------

    def run(self, *work: Any) -> list[Any]:
        async def together() -> list[Any]:
            return list(await asyncio.gather(*work))

        return self.loop.run_until_complete(together())

    def ticket(self) -> str:
        self.tickets += 1
        return f"MODEL-{self.tickets}-{uuid.uuid4().hex[:6]}"

    def deliver(self, body: dict[str, Any], n: int, fault: str, seed: int) -> list[harness.Settled]:
        """``n`` copies of one message, settled concurrently as Service Bus would (a copy that
        raises comes back), with ``fault`` in force until they all settle."""
        self.admin.faults(FAULTS[fault], seed=seed)
        try:
            message_id = str(uuid.uuid4())
            settled: list[harness.Settled] = self.run(
                *(harness.settle(body, message_id=message_id) for _ in range(n))
            )
        finally:
            self.admin.clear_faults()
        for s in settled:
            assert s.reply is not None, s.dead_letter_reason
            assert s.reply["requestId"] == body["requestId"]
        return settled

    # -- rules ------------------------------------------------------------------------------

    @initialize(n=copies, fault=faults, seed=st.integers(0, 2**16))
    def tenant_with_applications(self, n: int, fault: str, seed: int) -> None:
        """Every application registered once, copies and a fault included, before the steps."""
        for name in NAMES:
            self.register(name, n, fault, seed)

    @rule(name=names, n=copies, fault=faults, seed=st.integers(0, 2**16))
    def register(self, name: str, n: int, fault: str, seed: int) -> None:
        """Register or converge (a second register of a name converges it)."""
        settled = self.deliver(register_body(name, self.ticket()), n, fault, seed)
        for s in settled:
            assert s.reply is not None
            assert s.reply["status"] in ("succeeded", "failed"), s.reply["errors"]

    @rule(name=names, n=copies, fault=faults, seed=st.integers(0, 2**16))
    def rotate(self, name: str, n: int, fault: str, seed: int) -> None:
        exists = bool(Tenant.read(self.emulator).apps(name))
        settled = self.deliver(reference_body("rotate", name, self.ticket()), n, fault, seed)
        for s in settled:
            assert s.reply is not None
            allowed = ("succeeded", "failed") if exists else ("rejected",)
            assert s.reply["status"] in allowed, s.reply["errors"]

    @rule(name=names, n=copies, fault=faults, seed=st.integers(0, 2**16))
    def decommission(self, name: str, n: int, fault: str, seed: int) -> None:
        settled = self.deliver(reference_body("decommission", name, self.ticket()), n, fault, seed)
        statuses = {s.reply["status"] for s in settled if s.reply is not None}
        assert statuses <= {"succeeded", "failed"}, statuses
        if statuses == {"succeeded"}:
            assert Tenant.read(self.emulator).apps(name) == []

    @rule(seed=st.integers(0, 2**16))
    def refused_by_the_tenant(self, seed: int) -> None:
        """A new application's register that the tenant's policy refuses part-way (no secrets
        allowed, found out when the secret is added): rejected, and nothing left behind."""
        self.admin.policy(secretsAllowed=False)
        try:
            [settled] = self.deliver(register_body(REFUSED, self.ticket()), 1, "none", seed)
        finally:
            self.admin.policy(secretsAllowed=True)
        assert settled.reply is not None and settled.reply["status"] == "rejected", settled.reply
        tenant = Tenant.read(self.emulator)
        assert tenant.apps(REFUSED) == [], "a rejected request left an application behind"
        assert tenant.enabled_versions(f"app-{REFUSED}") == [], "a rejected request left a stored value"

    @rule(n=copies, fault=faults, seed=st.integers(0, 2**16))
    def timer(self, n: int, fault: str, seed: int) -> None:
        """The rotation timer, each of its messages delivered ``n`` times at once."""
        self.sweep(n, fault, seed)

    @rule(duration=st.sampled_from(["PT10M", "PT2H", "P1D", "P12D"]))
    def time_passes(self, duration: str) -> None:
        """The clock moves; the daily timer fires at least once a day, so it runs after."""
        self.clock.advance(duration)
        self.sweep(1, "none", 0)

    def sweep(self, n: int, fault: str, seed: int) -> None:
        at = self.clock.now()
        rotations: list[str] = []

        async def timer() -> None:
            rotations.extend((await harness.run_scheduler())[0])

        self.run(timer())
        self.admin.faults(FAULTS[fault], seed=seed)
        try:
            for body in rotations:
                self.run(*(self.rotation(body) for _ in range(n)))
        finally:
            self.admin.clear_faults()
        self.last_sweep = at

    async def rotation(self, body: str) -> None:
        message_id = str(uuid.uuid4())
        for count in range(1, 11):
            try:
                await harness.rotate(body, message_id=message_id, delivery_count=count)
                return
            except Exception:  # abandoned: Service Bus redelivers
                if count == 10:
                    raise

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def always(self) -> None:
        tenant = Tenant.read(self.emulator)
        now = tenant.now
        for name in NAMES:
            apps = tenant.apps(name)
            assert len(apps) <= 1, f"{name}: {len(apps)} applications"
            if not apps:
                continue
            passwords = apps[0]["passwordCredentials"]
            assert len(passwords) <= MAX_CREDENTIALS, f"{name}: {len(passwords)} credentials"
            if self.last_sweep is not None:
                stale = [
                    o["keyId"]
                    for o in tenant.orphans(name)
                    if self.last_sweep - parse_time(o["startDateTime"]) >= SAFETY_AGE
                ]
                assert stale == [], f"{name}: orphans older than the safety age at the last sweep: {stale}"
            if passwords:
                latest = tenant.latest_version(f"app-{name}")
                assert latest is not None, f"{name}: a credential but no stored value"
                keys = {p["keyId"]: p for p in passwords}
                current = keys.get(latest["tags"]["keyId"])
                assert current is not None, f"{name}: the unversioned secret holds a removed credential"
                assert parse_time(current["startDateTime"]) <= now < parse_time(current["endDateTime"])
                assert self.run(
                    stored_secret_authenticates(self.emulator.settings, apps[0]["appId"], unique_name=name)
                )[0], f"{name}: the unversioned secret gets no token"


def run_model(emulator: RunningEmulator, loop: asyncio.AbstractEventLoop, examples: int, steps: int) -> None:
    Model.emulator = emulator
    Model.loop = loop
    run_state_machine_as_test(
        Model,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: every step is real I/O, and the failing sequence is printed whole.
            phases=(Phase.explicit, Phase.generate),
            print_blob=True,
            verbosity=Verbosity.verbose if VERBOSE else Verbosity.normal,
        ),
    )


@pytest.mark.long
def test_the_model_holds_bounded(emulator: RunningEmulator, session_loop: asyncio.AbstractEventLoop) -> None:
    run_model(emulator, session_loop, examples=8, steps=8)


@pytest.mark.heavy
def test_the_model_holds_long(emulator: RunningEmulator, session_loop: asyncio.AbstractEventLoop) -> None:
    run_model(emulator, session_loop, examples=60, steps=25)
