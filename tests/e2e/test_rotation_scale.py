"""The scheduler on a large tenant: 50,000 applications, 1,000 of them managed by the service.
Prints the Graph and Key Vault request counts and the peak Python memory of one run (a
measurement, not a benchmark: nothing is asserted on time). tracemalloc and pytest's DEBUG log
capture slow kiota's parsing of the pages many times over, so this run takes minutes."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from emulator.launcher import RunningEmulator
from tests.e2e.test_rotation import TAG, EmulatedClock, run_scheduler

TOTAL, MANAGED = 50_000, 1_000


@pytest.mark.heavy
@pytest.mark.timeout(3600)
async def test_scheduler_on_fifty_thousand_applications(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.registration import Workflow

    clock = EmulatedClock(emulator)
    monkeypatch.setattr(Workflow, "now", lambda self: clock.now())
    soon = (clock.now().replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    emulator.admin.seed_applications(count=TOTAL - MANAGED, prefix="other", servicePrincipals=True)
    emulator.admin.seed_applications(
        count=MANAGED,
        prefix="managed",
        ownedByService=True,
        servicePrincipals=True,
        tags=[TAG, "credential-lifetime:P6M"],
        passwordEndDateTime=soon,
    )
    # The first run also looks up the service's own service principal; measure a warm run too.
    for run in ("cold", "warm"):
        emulator.admin.clear_requests()
        tracemalloc.start()
        started = time.perf_counter()
        messages, _ = await run_scheduler()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        log = emulator.admin.requests()
        graph = [e for e in log["entries"] if e["service"] == "graph"]
        vault = [e for e in log["entries"] if e["service"] == "keyvault"]
        print(
            f"\nscheduler {run}: {len(messages)} messages, {len(graph)} Graph requests "
            f"({sorted({e['path'] for e in graph})}), {len(vault)} Key Vault requests, "
            f"peak traced memory {peak / 1e6:.1f} MB, {elapsed:.1f} s"
        )
        # Seeded applications have no uniqueName, so the scheduler counts them and sends nothing.
        assert len(graph) <= 2 + MANAGED * 2 // 999 + 1
