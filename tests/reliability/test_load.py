"""Load with faults: many registrations at the host's concurrency against a throttling,
failing, lagging emulator; every request settles with a reason, and the tenant holds exactly
one application per uniqueName and no credential without its stored value.

The figures (wall time, replies by status, 429s, platform requests per registration) are
printed and kept in pytest's cache (when the run has one) under ``reliability/load/<n>``; nothing
asserts on time.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.tenant import Tenant
from tests.e2e.test_registration import sample

HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
KINDS = ("service-client", "confidential-web-client", "public-client")


def max_concurrent_calls() -> int:
    """The concurrency the Functions host uses for the Service Bus trigger."""
    return int(json.loads(HOST_JSON.read_text())["extensions"]["serviceBus"]["maxConcurrentCalls"])


def faults(writes_per_second: int, window_seconds: int) -> list[dict[str, Any]]:
    """10% of Graph and Key Vault requests answered 429 or 503, replication lag up to 2 s, and
    a per-app Graph write quota."""
    status = [
        {"kind": "status", "status": code, "service": service, "probability": 0.05}
        for service in ("graph", "keyvault")
        for code in (429, 503)
    ]
    return [
        *status,
        {"kind": "replication-lag", "ms": 0, "maxMs": 2000},
        {"kind": "write-quota", "limit": writes_per_second * window_seconds, "windowSeconds": window_seconds},
    ]


def messages(count: int) -> list[dict[str, Any]]:
    """``count`` messages: distinct registrations of each client type, and for one in ten a
    duplicate (same body, its own message id) queued right behind it, so that two of the
    host's workers pick the pair up at the same moment."""
    duplicates = count // 10
    queue: list[dict[str, Any]] = []
    for n in range(count - duplicates):
        kind = KINDS[n % len(KINDS)]
        body = sample(kind, requestId=f"LOAD-{n:05d}")
        body["application"] = {**body["application"], "uniqueName": f"load-{kind}-{n:05d}"}
        queue.append(body)
        if n < duplicates:
            queue.append(copy.deepcopy(body))
    return queue


async def run_load(emulator: RunningEmulator, count: int) -> dict[str, Any]:
    emulator.admin.faults(faults(writes_per_second=20, window_seconds=5), seed=20251123)
    emulator.admin.clear_requests()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in messages(count):
        queue.put_nowait(body)
    settled: list[tuple[dict[str, Any], harness.Settled]] = []

    async def worker() -> None:  # one of the host's concurrent calls
        while not queue.empty():
            body = queue.get_nowait()
            settled.append((body, await harness.settle(body)))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(max_concurrent_calls())))
    wall = time.monotonic() - started
    log = emulator.admin.requests()
    emulator.admin.clear_faults()

    tenant = Tenant.read(emulator)
    names = {body["application"]["uniqueName"] for body, _ in settled}
    statuses = Counter(s.reply["status"] if s.reply else "dead-lettered" for _, s in settled)
    platform = [e for e in log["entries"] if e["service"] in ("graph", "keyvault", "identity")]
    figures = {
        "messages": count,
        "distinctRequests": len(names),
        "concurrency": max_concurrent_calls(),
        "wallSeconds": round(wall, 1),
        "replies": dict(statuses),
        "reasons": dict(
            Counter(
                f"{s.reply['status']} {e['code']}: {e['message'][:120]}"
                for _, s in settled
                if s.reply and s.reply["status"] != "succeeded"
                for e in s.reply["errors"]
            )
        ),
        "deliveries": sum(s.deliveries for _, s in settled),
        "redeliveries": sum(s.deliveries - 1 for _, s in settled),
        "answered429": sum(1 for e in platform if e["status"] == 429),
        "answered503": sum(1 for e in platform if e["status"] == 503),
        "writeQuota429": log["counts"].get("fault:write-quota", 0),
        "platformRequests": len(platform),
        "platformRequestsPerMessage": round(len(platform) / count, 1),
    }

    for body, outcome in settled:
        assert outcome.reply is not None, f"dead-lettered: {outcome.dead_letter_reason}"
        reply = outcome.reply
        assert reply["requestId"] == body["requestId"]
        assert reply["status"] == "succeeded" or reply["errors"], reply  # a reason for every failure
    duplicates = {name: len(tenant.apps(name)) for name in names if len(tenant.apps(name)) > 1}
    assert duplicates == {}, f"duplicate applications: {duplicates}"
    orphans = {name: tenant.orphans(name) for name in names if tenant.apps(name) and tenant.orphans(name)}
    assert orphans == {}, f"credentials without a stored value: {orphans}"
    for body, outcome in settled:
        if outcome.reply and outcome.reply["status"] == "succeeded":
            app = tenant.app(body["application"]["uniqueName"])
            assert outcome.reply["application"]["clientId"] == app["appId"]
    return figures


def report(request: pytest.FixtureRequest, figures: dict[str, Any]) -> None:
    # pytest's cache is a plugin a run may leave out (-p no:cacheprovider, a read-only checkout).
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        cache.set(f"reliability/load/{figures['messages']}", figures)
    print(json.dumps(figures))


@pytest.mark.long
async def test_load_with_faults(emulator: RunningEmulator, request: pytest.FixtureRequest) -> None:
    figures = await run_load(emulator, 100)
    report(request, figures)


@pytest.mark.heavy
@pytest.mark.timeout(1800)  # about 10 minutes: throttling paces it, as designed
async def test_load_with_faults_heavy(emulator: RunningEmulator, request: pytest.FixtureRequest) -> None:
    figures = await run_load(emulator, 1000)
    report(request, figures)
