"""The local Functions host's pure parts: NCRONTAB schedules and %SETTING% binding expressions,
as the Functions host documents them."""

from __future__ import annotations

import datetime as dt

import pytest

from emulator.functions_host import HostOptions, Schedule, index, resolve

T0 = dt.datetime(2026, 11, 30, 2, 59, 59, tzinfo=dt.UTC)  # a Monday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 3 * * *", T0, dt.datetime(2026, 11, 30, 3, 0, 0, tzinfo=dt.UTC)),
        ("0 0 3 * * *", T0.replace(hour=3, second=0), dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)),
        ("*/15 * * * * *", T0, dt.datetime(2026, 11, 30, 3, 0, 0, tzinfo=dt.UTC)),
        ("0 30 9 * * 1-5", T0, dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)),
        ("0 0 0 * * sat", T0, dt.datetime(2026, 12, 5, 0, 0, tzinfo=dt.UTC)),
        ("0 0 12 1 jan *", T0, dt.datetime(2027, 1, 1, 12, 0, tzinfo=dt.UTC)),
        ("0 5,35 * * * *", T0, dt.datetime(2026, 11, 30, 3, 5, tzinfo=dt.UTC)),
    ],
)
def test_ncrontab_next_occurrence(expression: str, after: dt.datetime, expected: dt.datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize("expression", ["0 3 * * *", "61 * * * * *", "0 0 25 * * *", "* * * * * * *"])
def test_bad_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(expression)


def test_binding_expressions_resolve_from_settings() -> None:
    assert resolve("%REGISTRATION_QUEUE%", {"REGISTRATION_QUEUE": "q1"}) == "q1"
    with pytest.raises(ValueError, match="ROTATION_SCHEDULE"):
        resolve("%ROTATION_SCHEDULE%", {})


def test_the_app_is_indexed_as_the_worker_indexes_it() -> None:
    functions = {f.name: f for f in index()}
    assert functions["register_application"].trigger["queueName"] == "%REGISTRATION_QUEUE%"
    assert functions["rotate_application"].trigger["type"] == "serviceBusTrigger"
    assert functions["rotation_scheduler"].trigger["schedule"] == "%ROTATION_SCHEDULE%"
    assert all(not f.outputs for f in functions.values())  # every message is sent by the service


def test_host_json_is_read_as_the_host_reads_it() -> None:
    from pathlib import Path

    options = HostOptions.read(Path(__file__).resolve().parents[2] / "host.json")
    assert options.max_concurrent_calls == 8
    assert options.max_auto_lock_renewal == dt.timedelta(minutes=10)
    assert options.auto_complete
