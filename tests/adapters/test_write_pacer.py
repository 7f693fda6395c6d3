"""The Graph write pacer's decisions, without I/O and without timers: every decision takes the
time as an argument, and a simulated clock stands in for the real one. The last test runs
four pacers against the emulator's model of Graph's write bucket (emulator.throttling), the
signal arriving one round trip late, as four instances of the app would meet it."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

import pytest

from emulator.throttling import WriteBucket, limit_percentage
from shared.adapters.graph.calls import ThrottleSignals, WritePacer


def granted(pacer: WritePacer, start: float, seconds: float, step: float = 0.001) -> int:
    """Writes the pacer allows when asked at every ``step`` from ``start`` for ``seconds``."""
    count, ticks = 0, round(seconds / step)
    for i in range(ticks):
        if pacer.delay(start + i * step) == 0.0:
            count += 1
    return count


def test_alone_below_the_reporting_threshold_it_writes_at_the_quota_rate() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    assert granted(pacer, 0.0, 10.0) == 200  # one at once, then one each 50 ms


def test_a_new_pacer_allows_one_write_not_a_burst() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    assert pacer.delay(0.0) == 0.0
    assert pacer.delay(0.0) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("percentage", "share"),
    [
        (None, 1.0),
        (0.5, 1.0),
        (0.8, 1.0),
        (0.825, 0.75),
        (0.85, 0.5),
        (0.875, 0.25),
        (0.9, 0.05),
        (1.4, 0.05),
    ],
)
def test_the_share_falls_with_the_reported_limit_percentage(percentage: float | None, share: float) -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    pacer.observe(percentage)
    assert pacer.share(0.0) == pytest.approx(share)


def test_a_slowed_pacer_writes_at_its_share_and_keeps_no_burst() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    pacer.observe(0.85)  # half the rate
    assert granted(pacer, 0.0, 10.0) == 100
    # idle for a minute: at half the rate the bucket holds 10, not 20
    assert granted(pacer, 70.0, 0.001) == 1
    assert sum(1 for _ in range(30) if pacer.delay(70.0) == 0.0) == 9


def test_a_429_holds_every_write_for_its_retry_after_then_allows_one() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    pacer.throttled(2.0, now=100.0)
    assert pacer.delay(100.5) == pytest.approx(1.5)
    assert pacer.delay(101.999) == pytest.approx(0.001)
    assert pacer.delay(102.0) > 0.0  # no token was earned during the pause
    assert granted(pacer, 102.0, 1.0) > 0


def test_after_a_429_the_rate_halves_and_recovers_linearly() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    pacer.throttled(1.0, now=0.0)
    assert pacer.share(0.0) == pytest.approx(0.5)
    assert pacer.share(WritePacer.RECOVERY_SECONDS / 4) == pytest.approx(0.75)
    assert pacer.share(WritePacer.RECOVERY_SECONDS / 2) == pytest.approx(1.0)


def test_the_429s_of_one_burst_halve_the_rate_once() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    for _ in range(5):
        pacer.throttled(1.0, now=0.0)
    assert pacer.share(0.0) == pytest.approx(0.5)
    pacer.throttled(1.0, now=1.0)  # after the pause: a new signal
    assert pacer.share(1.0) == pytest.approx((0.5 + 1.0 / WritePacer.RECOVERY_SECONDS) / 2)


def test_the_response_hook_reads_the_percentage_header() -> None:
    pacer = WritePacer(20.0, 20, clock=lambda: 0.0)
    hook = ThrottleSignals(pacer)
    asyncio.run(hook(SimpleNamespace(headers={"x-ms-throttle-limit-percentage": "0.85"})))
    assert pacer.share(0.0) == pytest.approx(0.5)
    asyncio.run(hook(SimpleNamespace(headers={})))
    assert pacer.share(0.0) == 1.0
    asyncio.run(hook(SimpleNamespace(headers={"x-ms-throttle-limit-percentage": "n/a"})))
    assert pacer.share(0.0) == 1.0


@pytest.mark.parametrize("instances", [1, 2, 4, 8])
def test_instances_sharing_one_bucket_fill_it_and_are_rarely_throttled(instances: int) -> None:
    """Each instance wants more than the whole quota; each write reaches the bucket half a
    round trip after the pacer allowed it, and its answer (with the headers) a round trip after."""
    limit, period, rtt, step, seconds = 200, 10.0, 0.05, 0.001, 60.0
    bucket = WriteBucket(limit, period, used=0.8 * limit, at=0.0)
    pacers = [WritePacer(limit / period, 20, clock=lambda: 0.0) for _ in range(instances)]
    in_flight: deque[tuple[float, int]] = deque()  # (reaches the bucket at, instance)
    answers: deque[tuple[float, int, float | None, float]] = deque()  # (at, instance, retry, fraction)
    admitted = throttled = 0
    for i in range(round(seconds / step)):
        now = i * step
        for n, pacer in enumerate(pacers):
            if pacer.delay(now) == 0.0:
                in_flight.append((now + rtt / 2, n))
        while in_flight and in_flight[0][0] <= now:
            _, n = in_flight.popleft()
            retry = bucket.take(1, now)
            admitted += retry is None
            throttled += retry is not None
            answers.append((now + rtt / 2, n, retry, bucket.fraction(now)))
        while answers and answers[0][0] <= now:
            _, n, retry, fraction = answers.popleft()
            header = limit_percentage(fraction)
            pacers[n].observe(float(header[0][1]) if header else None)
            if retry is not None:
                pacers[n].throttled(max(1.0, retry), now)
    admissible = 0.2 * limit + limit / period * seconds
    assert admitted >= 0.9 * admissible
    assert throttled < 0.02 * (admitted + throttled)
