"""ISO-8601 durations with calendar months, for secret lifetimes and rotation timing.

`timedelta` cannot say "6 months": the portal's secret lifetimes are calendar months,
so a `Duration` is a number of months plus an exact `timedelta`. Adding one to a date
moves the month first (clamping the day: 31 January + 1 month is the last day of
February), then adds the exact part.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["Duration", "parse_duration"]

# Whole numbers only: fractional months have no calendar meaning. Weeks stand alone,
# as ISO-8601 says.
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d{1,6})W"
    r"|(?:(?P<years>\d{1,4})Y)?(?:(?P<months>\d{1,6})M)?(?:(?P<days>\d{1,7})D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d{1,8})H)?(?:(?P<minutes>\d{1,10})M)?(?:(?P<seconds>\d{1,12})S)?)?)"
)
DURATION_PATTERN = r"^P(?:\d+W|(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?)$"

# Bounds used only where two durations must be compared without a start date.
_SHORTEST_MONTH = timedelta(days=28)
_LONGEST_MONTH = timedelta(days=31)


class Duration:
    """A non-negative ISO-8601 duration: calendar months plus an exact `timedelta`."""

    __slots__ = ("_delta", "_months", "_text")

    def __init__(self, months: int = 0, delta: timedelta = timedelta(0), *, text: str | None = None) -> None:
        if months < 0 or delta < timedelta(0):
            raise ValueError("a duration cannot be negative")
        self._months = months
        self._delta = delta
        self._text = text or _format(months, delta)

    @property
    def months(self) -> int:
        return self._months

    @property
    def delta(self) -> timedelta:
        """The exact part: weeks, days, hours, minutes and seconds."""
        return self._delta

    def add_to(self, moment: datetime) -> datetime:
        """`moment` moved forward by this duration; raises OverflowError past year 9999."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("a duration is only added to a timezone-aware datetime")
        shifted = moment
        if self._months:
            month_index = moment.month - 1 + self._months
            year = moment.year + month_index // 12
            month = month_index % 12 + 1
            if year > 9999:
                raise OverflowError("date value out of range")
            day = min(moment.day, calendar.monthrange(year, month)[1])
            shifted = moment.replace(year=year, month=month, day=day)
        return shifted + self._delta

    def total_lower_bound(self) -> timedelta:
        """The shortest this duration can be, whatever the start date."""
        return self._months * _SHORTEST_MONTH + self._delta

    def total_upper_bound(self) -> timedelta:
        """The longest this duration can be, whatever the start date."""
        return self._months * _LONGEST_MONTH + self._delta

    def never_exceeds(self, other: Duration) -> bool:
        """True when, from any start date, this duration ends no later than `other`.

        Exact when the parts compare the same way (month addition is monotonic);
        otherwise decided conservatively from the bounds.
        """
        if self._months <= other._months and self._delta <= other._delta:
            return True
        return self.total_upper_bound() <= other.total_lower_bound()

    def __bool__(self) -> bool:
        return bool(self._months or self._delta)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return (self._months, self._delta) == (other._months, other._delta)

    def __hash__(self) -> int:
        return hash((self._months, self._delta))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Duration({self._text!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "duration", "pattern": DURATION_PATTERN}


def parse_duration(text: str) -> Duration:
    """Parse `P6M`, `P180D`, `PT48H`, `P1Y2M3DT4H5M6S`, `P2W`; raises ValueError otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError("not an ISO-8601 duration such as P6M, P180D or PT48H")
    parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    if not parts:
        raise ValueError("not an ISO-8601 duration such as P6M, P180D or PT48H")
    months = parts.get("years", 0) * 12 + parts.get("months", 0)
    delta = timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    return Duration(months, delta, text=text)


def _validate(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except (ValueError, OverflowError):
            pass
    raise PydanticCustomError("invalid_duration", "Must be an ISO-8601 duration such as P6M, P180D or PT48H.")


def _format(months: int, delta: timedelta) -> str:
    days = delta.days
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    date = (f"{months}M" if months else "") + (f"{days}D" if days else "")
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not date and not time:
        return "PT0S"
    return "P" + date + (f"T{time}" if time else "")
