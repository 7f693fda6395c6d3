"""Rotation over simulated years: the emulator's clock moves a day at a time, the scheduler and
the rotation function run each day as the host would run them (the scheduler's messages fed to
the rotation function; an exception abandons a message, which comes back with delivery_count+1),
with seeded random faults and crashes, and the invariants are checked every simulated day."""

from __future__ import annotations

import datetime as dt
import os
import random
import time
import uuid
from typing import Any

import pytest

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing
from shared.adapters.graph.applications import ApplicationsGateway
from shared.adapters.keyvault import KeyVaultGateway
from tests.e2e.tenant import Tenant, add_password_by_hand, parse_time, stored_secret_authenticates
from tests.e2e.test_rotation import (
    check_invariants,
    deliver_rotation,
    register,
    run_scheduler,
)

LIFETIMES = ["P3M", "P6M", "P12M", "custom"]


class Crash(BaseException):
    """The process dying mid-rotation: not an Exception, so nothing in the service handles it."""


def fault_rules(rate: float) -> list[dict[str, Any]]:
    writes = r"POST|PUT|PATCH"
    return [
        {"kind": "status", "status": 429, "service": "graph", "probability": rate / 4, "retryAfter": 0.01},
        {"kind": "status", "status": 503, "service": "graph", "probability": rate / 2},
        {"kind": "status", "status": 503, "service": "keyvault", "probability": rate / 2},
        {"kind": "lost-response", "service": "graph", "method": writes, "probability": rate},
        {"kind": "lost-response", "service": "keyvault", "method": writes, "probability": rate},
    ]


def install_crashes(monkeypatch: pytest.MonkeyPatch, rng: random.Random, rate: float) -> None:
    """After a successful Graph or Key Vault write, the process dies with probability ``rate``.
    (Not after the vault's store: issue_secret's own error handling would run, which a dead
    process cannot; the lost-response rule on Key Vault writes covers that moment.)"""
    for owner, names in (
        (ApplicationsGateway, ("add_password", "remove_password")),
        (KeyVaultGateway, ("disable",)),
    ):
        for name in names:
            real = getattr(owner, name)

            def crashing(real: Any) -> Any:
                async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                    result = await real(self, *args, **kwargs)
                    if rng.random() < rate:
                        raise Crash(real.__name__)
                    return result

                return call

            monkeypatch.setattr(owner, name, crashing(real))


async def simulate(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, *, apps: int, days: int, seed: int
) -> dict[str, int]:
    try:
        return await _simulate(emulator, monkeypatch, apps=apps, days=days, seed=seed)
    finally:
        testing.use_clock(None)


async def _simulate(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, *, apps: int, days: int, seed: int
) -> dict[str, int]:
    rng = random.Random(seed)
    clock = EmulatorClock(emulator.admin)
    testing.use_clock(clock.now)
    names: list[str] = []
    client_ids: dict[str, str] = {}
    for i in range(apps):
        kind = LIFETIMES[i % len(LIFETIMES)]
        if kind == "custom":
            now = clock.now()
            credential = {
                "type": "secret",
                "description": "job",
                "startDateTime": now.isoformat(),
                "endDateTime": (now + dt.timedelta(days=rng.randint(20, 120))).isoformat(),
            }
        else:
            credential = {"type": "secret", "description": "job", "lifetime": kind}
        name = f"sim-{i:03d}"
        reply = await register(name, credential)
        names.append(name)
        client_ids[name] = reply["application"]["clientId"]
    unmanaged: dict[str, str] = {}
    for name in names[:: max(1, apps // 5)]:  # some apps also hold a credential added by hand
        object_id = Tenant.read(emulator).app(name)["id"]
        unmanaged[name] = add_password_by_hand(emulator, object_id, "by hand")

    install_crashes(monkeypatch, rng, rate=0.03)
    stats = {"messages": 0, "deliveries": 0, "crashes": 0, "dead_lettered": 0, "token_checks": 0}
    emulator.admin.faults(fault_rules(0.03), seed=seed)
    timings = {"scheduler+rotation": 0.0, "snapshot+invariants": 0.0, "token": 0.0}
    for day in range(days):
        t0 = time.perf_counter()
        clock.advance("P1D")
        messages: list[str] = []
        for _attempt in range(10):  # the timer's own run, retried by the next tick if it fails
            try:
                messages, _ = await run_scheduler()
                break
            except (Exception, Crash):
                stats["crashes"] += 1
        queue = [(body, str(uuid.uuid4()), 1) for body in messages]
        stats["messages"] += len(queue)
        while queue:
            body, message_id, count = queue.pop(0)
            stats["deliveries"] += 1
            try:
                await deliver_rotation(body, message_id=message_id, delivery_count=count)
            except (Exception, Crash):
                stats["crashes"] += 1
                if count < 10:
                    queue.append((body, message_id, count + 1))
                else:
                    stats["dead_lettered"] += 1
        emulator.admin.clear_faults()
        t1 = time.perf_counter()
        tenant = Tenant.read(emulator)
        for name in names:
            check_invariants(tenant, name)
            if name in unmanaged:
                keys = {p["keyId"] for p in tenant.app(name)["passwordCredentials"]}
                assert unmanaged[name] in keys, f"day {day}: {name}'s hand-made credential was removed"
        # Token with the secret read from Key Vault: a rotating sample of apps each day, so that
        # every app is checked every `apps` days.
        t2 = time.perf_counter()
        sample = {names[day % apps]}
        for name in sorted(sample):
            assert await stored_secret_authenticates(emulator.settings, client_ids[name], unique_name=name), (
                f"day {day}: {name}'s stored secret does not authenticate"
            )
            stats["token_checks"] += 1
        emulator.admin.faults(fault_rules(0.03))
        t3 = time.perf_counter()
        for key, took in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            timings[key] += took
    print("simulation timings", {k: round(v, 1) for k, v in timings.items()})
    emulator.admin.clear_faults()
    monkeypatch.undo()

    # Final state, after one quiet day (no faults): no orphans, nothing kept past end + grace.
    clock.advance("P1D")
    for body in (await run_scheduler())[0]:
        await deliver_rotation(body)
    tenant = Tenant.read(emulator)
    grace = dt.timedelta(hours=48)
    for name in names:
        check_invariants(tenant, name)
        assert tenant.orphans(name) == [], f"{name} has orphans"
        for p in tenant.app(name)["passwordCredentials"]:
            if "[managed:" in (p["displayName"] or ""):
                assert parse_time(p["endDateTime"]) + grace > tenant.now, (
                    f"{name} keeps an expired credential"
                )
    return stats


@pytest.mark.long
async def test_ten_apps_over_four_months_with_faults(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = await simulate(
        emulator, monkeypatch, apps=10, days=int(os.environ.get("SIM_DAYS", "120")), seed=20261123
    )
    print("simulation stats", stats)
    assert stats["messages"] > 0  # how many faults hit a rotation varies with timing (Retry-After waits)


@pytest.mark.heavy
@pytest.mark.timeout(7200)
async def test_fifty_apps_over_two_years_with_faults(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = await simulate(emulator, monkeypatch, apps=52, days=730, seed=7)
    print("simulation stats", stats)
    assert stats["messages"] > 0 and stats["crashes"] > 0
