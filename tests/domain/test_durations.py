"""ISO-8601 durations with calendar months: parsing, adding to a date, comparing."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.durations import Duration, parse_duration


@pytest.mark.parametrize(
    ("text", "months", "delta"),
    [
        ("P3M", 3, timedelta(0)),
        ("P6M", 6, timedelta(0)),
        ("P12M", 12, timedelta(0)),
        ("P24M", 24, timedelta(0)),
        ("P2Y", 24, timedelta(0)),
        ("P180D", 0, timedelta(days=180)),
        ("P2W", 0, timedelta(days=14)),
        ("PT48H", 0, timedelta(hours=48)),
        ("PT1H30M", 0, timedelta(minutes=90)),
        ("P1Y2M3DT4H5M6S", 14, timedelta(days=3, hours=4, minutes=5, seconds=6)),
        ("PT0S", 0, timedelta(0)),
    ],
)
def test_parse_duration(text: str, months: int, delta: timedelta) -> None:
    duration = parse_duration(text)
    assert (duration.months, duration.delta) == (months, delta)
    assert str(duration) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "6M",
        "P6",
        "P-1M",
        "P1.5M",
        "p6m",
        "P6M ",
        "P1W2D",
        "PT1D",
        "P6M\n",
        "P1H",
        "P99999999999999D",
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("start", "text", "end"),
    [
        (datetime(2025, 1, 31, 12, tzinfo=UTC), "P1M", datetime(2025, 2, 28, 12, tzinfo=UTC)),
        (datetime(2024, 1, 31, 12, tzinfo=UTC), "P1M", datetime(2024, 2, 29, 12, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P12M", datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P48M", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2025, 8, 31, tzinfo=UTC), "P6M", datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2025, 10, 15, tzinfo=UTC), "P3M", datetime(2026, 1, 15, tzinfo=UTC)),
        (datetime(2025, 12, 31, tzinfo=UTC), "P24M", datetime(2027, 12, 31, tzinfo=UTC)),
        (datetime(2025, 1, 31, tzinfo=UTC), "P1M1D", datetime(2025, 3, 1, tzinfo=UTC)),
        (datetime(2025, 1, 1, tzinfo=UTC), "P180D", datetime(2025, 6, 30, tzinfo=UTC)),
        (datetime(2025, 1, 1, 23, tzinfo=UTC), "PT48H", datetime(2025, 1, 3, 23, tzinfo=UTC)),
    ],
)
def test_add_to_uses_calendar_months(start: datetime, text: str, end: datetime) -> None:
    assert parse_duration(text).add_to(start) == end


def test_add_to_keeps_the_time_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = parse_duration("P1M").add_to(datetime(2025, 3, 31, 1, tzinfo=plus_two))
    assert result == datetime(2025, 4, 30, 1, tzinfo=plus_two)
    assert result.utcoffset() == timedelta(hours=2)


def test_add_to_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        parse_duration("P1M").add_to(datetime(2025, 1, 1))


def test_add_to_past_year_9999_overflows() -> None:
    with pytest.raises(OverflowError):
        parse_duration("P24M").add_to(datetime(9998, 6, 1, tzinfo=UTC))


def test_bounds() -> None:
    six_months = parse_duration("P6M")
    assert six_months.total_lower_bound() == timedelta(days=6 * 28)
    assert six_months.total_upper_bound() == timedelta(days=6 * 31)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for month in range(48):
        moment = parse_duration(f"P{month}M").add_to(start)
        length = six_months.add_to(moment) - moment
        assert six_months.total_lower_bound() <= length <= six_months.total_upper_bound()


@pytest.mark.parametrize(
    ("shorter", "longer", "expected"),
    [
        ("P6M", "P24M", True),
        ("P24M", "P24M", True),
        ("P25M", "P24M", False),
        ("P2Y", "P24M", True),
        ("P3M", "P100D", True),  # 3 months are at most 92 days
        ("P3M", "P90D", False),  # Feb-Apr is 89 days, but Jul-Sep is 92
        ("P180D", "P6M", False),  # decided conservatively without a start date
        ("P12M", "P180D", False),
        ("PT24H", "P1M", True),
        ("PT48H", "P1D", False),
    ],
)
def test_never_exceeds(shorter: str, longer: str, expected: bool) -> None:
    assert parse_duration(shorter).never_exceeds(parse_duration(longer)) is expected


def test_equality_is_by_length_not_spelling() -> None:
    assert parse_duration("P1Y") == parse_duration("P12M")
    assert parse_duration("P1D") == parse_duration("PT24H")
    assert parse_duration("P1M") != parse_duration("P30D")
    assert len({parse_duration("P1Y"), parse_duration("P12M")}) == 1
    assert not parse_duration("PT0S")
    assert repr(parse_duration("P6M")) == "Duration('P6M')"


def test_negative_durations_refused() -> None:
    with pytest.raises(ValueError):
        Duration(-1)
    with pytest.raises(ValueError):
        Duration(0, timedelta(seconds=-1))
