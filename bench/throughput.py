"""Scenario 2: registrations per second at Graph's write quota, from one instance and from four
instances sharing it.

The emulator throttles Graph writes as Graph documents it (emulator/throttling.py): a token
bucket per application+tenant pair, 429 with ``Retry-After`` when it is empty, and
``x-ms-throttle-limit-percentage`` on responses once more than 80% of it is used. Graph's
bucket is 3,000 writes per 150 s; this run keeps the rate (20 writes/s) and scales the bucket
down in time to 200 writes (10 s), so that a run of a minute crosses many refills. The bucket
starts 80% used, as after a busy minute, so that the figure is the sustained rate and not an
idle bucket's burst; the bound counts the 40 writes left in it all the same.

Each instance is its own Python process (``python -m bench.throughput --instance``), as a
scaled-out Functions app has: it imports the app, warms up (tokens, Key Vault's challenge) with
one registration before the quota is set, then delivers its share of the messages to the real
``register_application`` entry point at the host's ``maxConcurrentCalls``, redelivering a
message whose invocation raised, as Service Bus would. All instances run as the same service
identity, so they share one bucket. This process reads the replies from the results queue,
as the ticketing system would, and the requests from the emulator's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any

from bench.common import (
    GRAPH_WRITES,
    ROOT,
    Context,
    Stopwatch,
    bounded,
    host_concurrency,
    service_client_body,
)

QUOTA_WRITES, QUOTA_SECONDS = 200, 10.0  # Graph: 3,000 per 150 s; the same 20 writes/s
USED_AT_START = 0.8
INSTANCES = (1, 4)
REGISTRATIONS = {1: 150, 4: 300}  # per round, split evenly among its instances
SMOKE_REGISTRATIONS = {1: 6, 4: 12}
MAX_DELIVERIES = 10  # the queue's maxDeliveryCount
MARK = "@bench "
READY_TIMEOUT = 180.0


async def run(ctx: Context) -> dict[str, Any]:
    concurrency = host_concurrency()
    sizes = SMOKE_REGISTRATIONS if ctx.smoke else REGISTRATIONS
    rounds = {str(n): await _round(ctx, n, sizes[n], concurrency) for n in INSTANCES}
    one, four = rounds["1"], rounds[str(INSTANCES[-1])]
    result = {
        "concurrency": concurrency,
        "quota": {
            "writes": QUOTA_WRITES,
            "windowSeconds": QUOTA_SECONDS,
            "usedAtStart": USED_AT_START,
            "graphEquivalent": "3000 per 150 s",
        },
        "instances": rounds,
        # the row's figures: the four instances sharing one quota (the goal), one for comparison
        **{k: four[k] for k in ("registrations", "succeeded", "seconds", "registrationsPerSecond")},
        **{k: four[k] for k in ("boundPerSecond", "fractionOfBound", "requests", "throttled")},
        "throttledFraction": four["throttledFraction"],
        "single": {k: one[k] for k in ("registrationsPerSecond", "fractionOfBound", "throttledFraction")},
        "goalMet": four["goalMet"],
    }
    return result


async def _round(ctx: Context, instances: int, count: int, concurrency: int) -> dict[str, Any]:
    from tests import harness

    ctx.reset()
    harness.forget()
    per_instance = count // instances
    tag = f"i{instances}"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.throughput",
            "--instance",
            f"{tag}-{i}",
            "--count",
            str(per_instance),
            "--concurrency",
            str(concurrency),
            cwd=ROOT,
            env=dict(os.environ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(instances)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(_expect(p, "ready") for p in processes)), READY_TIMEOUT)
        await _replies()  # the warm-ups' replies
        rule = {
            "kind": "write-quota",
            "service": "graph",
            "limit": QUOTA_WRITES,
            "windowSeconds": QUOTA_SECONDS,
            "usedAtStart": USED_AT_START,
        }
        ctx.faults(rules=[rule])  # a new bucket per pair, USED_AT_START used
        ctx.admin.clear_requests()
        watch = Stopwatch()
        for p in processes:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        done = await asyncio.gather(*(_expect(p, "done") for p in processes))
        seconds = watch.seconds
        entries = ctx.log()
        ctx.faults()
        replies = await _replies()
    finally:
        for p in processes:
            if p.returncode is None and p.stdin is not None:
                p.stdin.close()
        await asyncio.gather(*(p.wait() for p in processes))

    load = [r for r in replies if str(r.get("requestId", "")).startswith("BENCH-LOAD-")]
    succeeded = sum(1 for r in load if r.get("status") == "succeeded")
    redelivered = sum(d - 1 for out in done for d in out["deliveries"])
    graph = [e for e in entries if e["service"] == "graph"]
    writes = [e for e in graph if e["method"] in GRAPH_WRITES]
    accepted_writes = sum(1 for e in writes if e["status"] != 429)
    requests = [e for e in entries if e["service"] in ("graph", "keyvault")]
    first = min((e["startMs"] for e in requests), default=0.0)
    throttled = sum(1 for e in requests if e["status"] == 429)
    writes_per_registration = accepted_writes / max(succeeded, 1)
    rate = QUOTA_WRITES / QUOTA_SECONDS
    # The most the bucket could admit in this run: what was left in it, and its refill.
    admissible = QUOTA_WRITES * (1 - USED_AT_START) + rate * seconds
    bound = admissible / writes_per_registration / seconds
    achieved = succeeded / seconds
    figures = {
        "instances": instances,
        "registrations": per_instance * instances,
        "succeeded": succeeded,
        "seconds": round(seconds, 1),
        "graphWritesPerRegistration": round(writes_per_registration, 2),
        "registrationsPerSecond": round(achieved, 2),
        "boundPerSecond": round(bound, 2),
        "steadyBoundPerSecond": round(rate / writes_per_registration, 2),
        "fractionOfBound": round(achieved / bound, 3),
        "requests": len(requests),
        "graphRequests": len(graph),
        "graphWrites": len(writes),
        "throttled": throttled,
        "throttledFraction": round(throttled / max(len(requests), 1), 4),
        "redeliveries": redelivered,
        # when the 429s came, in seconds from the start of the round (the emulator's clock)
        "throttledAt": [round((e["startMs"] - first) / 1000, 1) for e in requests if e["status"] == 429],
        "goalMet": achieved >= 0.9 * bound and throttled < 0.02 * len(requests),
    }
    print(
        f"[2] throughput, {instances} instance(s) on one quota: {succeeded}/{figures['registrations']} "
        f"registrations in {seconds:.1f} s = {achieved:.2f}/s against the bound {bound:.2f}/s "
        f"({writes_per_registration:.2f} writes each) = {100 * achieved / bound:.1f}% (goal >= 90%); "
        f"{throttled} of {len(requests)} Graph and Key Vault requests drew a 429 = "
        f"{100 * figures['throttledFraction']:.2f}% (goal < 2%); {redelivered} redeliveries",
        flush=True,
    )
    return figures


async def _expect(process: asyncio.subprocess.Process, word: str) -> dict[str, Any]:
    """The instance's next ``@bench <word> {json}`` line (other output is passed through)."""
    assert process.stdout is not None
    while True:
        line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError(
                f"a bench instance exited before saying {word!r} (exit {await process.wait()})"
            )
        if line.startswith(MARK + word):
            payload = line[len(MARK + word) :].strip()
            return json.loads(payload) if payload else {}
        print(line, end="")


async def _replies() -> list[dict[str, Any]]:
    """Every reply waiting in the results queue, with its properties (requestId, status)."""
    from tests import harness

    queue = os.environ.get("RESULTS_QUEUE", "app-registration-results")
    waiting = harness.queue_counts().get(queue, 0)
    messages = await harness.namespace.take(queue, waiting) if waiting else []
    return [json.loads(harness.text(m)) for m in messages]


# -- one instance (a child process) -------------------------------------------------------------


async def _instance(name: str, count: int, concurrency: int) -> None:
    from shared.testing import reset_clients
    from tests import harness

    register = harness.functions()["register_application"]

    async def deliver(body: dict[str, Any]) -> int:
        """Deliver as Service Bus does; the deliveries it took (dead-lettered after the last)."""
        message_id = str(uuid.uuid4())
        for delivery in range(1, MAX_DELIVERIES + 1):
            try:
                await register(harness.message(body, message_id=message_id, delivery_count=delivery))
            except Exception:  # the host abandons the message on any exception
                continue
            return delivery
        return MAX_DELIVERIES

    def job(n: int) -> Any:
        return lambda: deliver(
            service_client_body(f"bench-load-{name}-{n:04d}", f"BENCH-LOAD-{name}-{n:04d}")
        )

    try:
        await deliver(service_client_body(f"bench-warm-{name}", f"BENCH-WARM-{name}"))
        print(f"{MARK}ready", flush=True)
        if not await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline):
            return  # the coordinator gave up
        deliveries = await bounded(concurrency, [job(n) for n in range(count)])
        print(f"{MARK}done {json.dumps({'deliveries': deliveries})}", flush=True)
    finally:
        await reset_clients()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--instance", required=True, help="this instance's name (in uniqueNames)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_instance(args.instance, args.count, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
