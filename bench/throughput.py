"""Scenario 2: registrations per second at Graph's write quota.

The emulator answers 429 (with ``Retry-After``) to Graph writes beyond a fixed-window quota per
calling application, as Graph does. Graph's is 3,000 writes per 150 s; this run keeps the rate
(20/s) and shortens the window to 10 s (200 writes), so that a run of minutes crosses many
windows. The registrations are delivered as Service Bus would, at the host's concurrency
(host.json ``maxConcurrentCalls``), redelivering a message whose invocation raised.
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    GRAPH_WRITES,
    Context,
    Stopwatch,
    bounded,
    host_concurrency,
    service_client_body,
)

QUOTA_WRITES, QUOTA_SECONDS = 200, 10.0  # Graph: 3,000 per 150 s; the same 20 writes/s


async def run(ctx: Context) -> dict[str, Any]:
    from tests import harness

    count = 20 if ctx.smoke else 500
    concurrency = host_concurrency()
    ctx.reset()
    # Warm: tokens, Key Vault's challenge, imports (not counted, not under the quota).
    await harness.register(service_client_body("bench-warm", "BENCH-WARM"))
    ctx.faults(
        rules=[
            {"kind": "write-quota", "service": "graph", "limit": QUOTA_WRITES, "windowSeconds": QUOTA_SECONDS}
        ]
    )
    ctx.admin.clear_requests()

    def job(n: int) -> Any:
        return lambda: harness.settle(service_client_body(f"bench-load-{n:04d}", f"BENCH-LOAD-{n:04d}"))

    watch = Stopwatch()
    settled = await bounded(concurrency, [job(n) for n in range(count)])
    seconds = watch.seconds
    entries = ctx.log()
    ctx.faults()

    succeeded = sum(1 for s in settled if s.reply is not None and s.reply["status"] == "succeeded")
    redelivered = sum(s.deliveries - 1 for s in settled)
    graph = [e for e in entries if e["service"] == "graph"]
    writes = [e for e in graph if e["method"] in GRAPH_WRITES]
    accepted_writes = [e for e in writes if e["status"] != 429]
    throttled = [e for e in entries if e["status"] == 429]
    writes_per_registration = len(accepted_writes) / max(succeeded, 1)
    quota_per_second = QUOTA_WRITES / QUOTA_SECONDS
    bound = quota_per_second / writes_per_registration
    achieved = succeeded / seconds
    requests = [e for e in entries if e["service"] in ("graph", "keyvault")]
    result = {
        "registrations": count,
        "succeeded": succeeded,
        "concurrency": concurrency,
        "quota": {
            "writes": QUOTA_WRITES,
            "windowSeconds": QUOTA_SECONDS,
            "graphEquivalent": "3000 per 150 s",
        },
        "seconds": round(seconds, 1),
        "graphWritesPerRegistration": round(writes_per_registration, 2),
        "registrationsPerSecond": round(achieved, 2),
        "boundPerSecond": round(bound, 2),
        "fractionOfBound": round(achieved / bound, 3),
        "requests": len(requests),
        "graphRequests": len(graph),
        "graphWrites": len(writes),
        "throttled": len(throttled),
        "throttledFraction": round(len(throttled) / max(len(requests), 1), 4),
        "throttledFractionOfWrites": round(len(throttled) / max(len(writes), 1), 4),
        "redeliveries": redelivered,
        "goalMet": achieved >= 0.9 * bound and len(throttled) < 0.02 * len(requests),
    }
    print(
        f"[2] throughput: {succeeded}/{count} registrations in {seconds:.1f} s = {achieved:.2f}/s "
        f"against the bound {bound:.2f}/s ({quota_per_second:.0f} writes/s / {writes_per_registration:.2f} "
        f"writes each) = {100 * achieved / bound:.1f}% (goal >= 90%); {len(throttled)} of {len(requests)} "
        f"requests drew a 429 = {100 * result['throttledFraction']:.2f}% (goal < 2%); "
        f"{redelivered} redeliveries"
    )
    return result
