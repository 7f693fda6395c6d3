"""The emulator's clock: real UTC time plus an offset that tests set or advance.

Credential validity (``startDateTime <= now < endDateTime``), Key Vault ``exp``/``nbf`` and
object timestamps use this clock. Access-token lifetimes and fault timings (latency,
replication lag, write-quota windows) run on real time, so that SDK token caches and
``Retry-After`` keep working when a test jumps the clock by days.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

_ISO_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar month arithmetic, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    days_in_month = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
                     31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]  # fmt: skip
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month))


def add_iso_duration(moment: dt.datetime, duration: str) -> dt.datetime:
    """``moment`` plus an ISO-8601 duration such as ``P1D``, ``PT36H`` or ``P6M``."""
    match = _ISO_DURATION.match(duration)
    if not match or duration in ("P", "PT", "-P"):
        raise ValueError(f"not an ISO-8601 duration: {duration!r}")
    parts = {k: v for k, v in match.groupdict().items() if k != "sign" and v is not None}
    sign = -1 if match.group("sign") else 1
    months = sign * (int(parts.get("years", 0)) * 12 + int(parts.get("months", 0)))
    delta = dt.timedelta(
        weeks=int(parts.get("weeks", 0)),
        days=int(parts.get("days", 0)),
        hours=int(parts.get("hours", 0)),
        minutes=int(parts.get("minutes", 0)),
        seconds=float(parts.get("seconds", 0)),
    )
    return add_months(moment, months) + sign * delta


class Clock:
    """Thread-safe offset clock."""

    def __init__(self) -> None:
        self._offset = dt.timedelta()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return dt.datetime.now(dt.UTC) + self._offset

    def set(self, moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware time")
        with self._lock:
            self._offset = moment - dt.datetime.now(dt.UTC)
        return self.now()

    def advance(self, duration: str) -> dt.datetime:
        return self.set(add_iso_duration(self.now(), duration))

    def reset(self) -> None:
        with self._lock:
            self._offset = dt.timedelta()


def iso(moment: dt.datetime) -> str:
    """Graph's timestamp format: UTC with a ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
