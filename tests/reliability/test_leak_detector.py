"""The leak detector (tests/leaks.py) catches a secret wherever the service could emit one."""

from __future__ import annotations

import logging

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.test_registration import sample
from tests.leaks import LeakDetector, find_leaks, known_secrets

log = logging.getLogger("tests.reliability.leaky")


async def test_a_secret_logged_on_purpose_is_caught(
    emulator: RunningEmulator, leak_detector: LeakDetector
) -> None:
    reply = await harness.register(sample("service-client"))
    assert reply["status"] == "succeeded"
    secrets = known_secrets(emulator.admin.issued_secrets(), emulator.settings)
    assert leak_detector.check(secrets) == [], "the service itself leaked"
    issued = next(s for s in emulator.admin.issued_secrets() if s not in emulator.settings.values())

    log.debug("value=%s", issued)  # in args, at DEBUG, on a logger nobody configured
    log.info("extra", extra={"detail": {"nested": [f"prefix{issued}suffix"]}})  # in an extra field
    try:
        raise RuntimeError(f"boom {issued}")
    except RuntimeError:
        log.warning("failed", exc_info=True)  # in a formatted traceback
    leaks = leak_detector.check(secrets)

    assert len(leaks) == 3
    assert {leak.hint for leak in leaks} == {issued[:3]}
    assert all(issued not in str(leak) for leak in leaks)  # the report never repeats the value
    leak_detector.forget_logs()  # so that this test's own teardown check passes


def test_every_place_the_detector_reads() -> None:
    secret = "Zx8Q~abcdefghijklmnopqrstuvwxyz0123456789"
    detector = LeakDetector()
    detector.start()
    try:
        harness.outputs.append(f'{{"status": "failed", "errors": [{{"message": "{secret}"}}]}}')
        harness.failures.append(f"Traceback ...\nValueError: {secret}")
        harness.dead_letters.append(f"MaxDeliveryCountExceeded: {secret}")
        logging.getLogger("azure.core").debug("header %r", {"Authorization": secret})
        leaks = detector.check({secret}, extra=[("the test's failure report", f"E  assert {secret!r}")])
    finally:
        detector.stop()
        del harness.outputs[-1:], harness.failures[-1:], harness.dead_letters[-1:]
    assert sorted(leak.where.split(" #")[0].split(" (")[0] for leak in leaks) == [
        "a dead-letter reason",
        "a log record",
        "a raised exception",
        "function output",
        "the test's failure report",
    ]


def test_short_values_and_near_misses_are_not_leaks() -> None:
    secret = "Zx8Q~abcdefghijklmnopqrstuvwxyz0123456789"
    texts = [
        ("hint", "hint Zx8"),
        ("one character short", secret[:-1]),
        ("test data stored in the vault", "value v first"),
    ]
    assert find_leaks(texts, {secret, "v", "first"}) == []
    assert [leak.where for leak in find_leaks([("embedded", f"x{secret}y")], {secret})] == ["embedded"]
