"""Graph's throttling of identity writes, as Microsoft documents it.

Sources: learn.microsoft.com/graph/throttling-limits, "Identity and access service limits"
(microsoftgraph/microsoft-graph-docs-contrib ``concepts/throttling-limits.md``), and
learn.microsoft.com/graph/throttling, "Sample response".

Documented, and imitated here:

- "Throttling is based on a token bucket algorithm, which works by adding individual costs of
  requests"; the write quota of an application+tenant pair is 3,000 requests per 2 min 30 s.
- Write cost: 1 for POST, PATCH, PUT and DELETE on identity paths; 0 for the POSTs that only
  read (``directoryObjects/getByIds``, ``getObjectsById``, ``isMemberOf``, ``checkMemberGroups``,
  ``checkMemberObjects``, ``getMemberGroups``, ``getMemberObjects``); reads cost no writes.
- A request beyond the limit is answered 429 Too Many Requests with ``Retry-After`` and the
  sample's body (``TooManyRequests``, "Please retry again later.", an ``innerError`` with
  ``code``/``status`` "429" and "Please retry after"); reads are still permitted while writes
  are throttled ("writes are throttled but reads are still permitted").
- ``x-ms-throttle-limit-percentage``: "returned only when the application consumed more than
  0.8 of its limit. The value ranges from 0.8 to 1.8".
- Throttled responses carry ``x-ms-throttle-scope``
  (``<Scope>/<Limit>/<ApplicationId>/<TenantId>``, here ``Tenant_Application/Write/…``) and
  ``x-ms-throttle-information`` (``WriteLimitExceeded``).
- "Microsoft Graph continues to log resource usage while a client is being throttled": a
  throttled write is counted too.

Guessed where the documents are silent (each marked GUESS below): the bucket's capacity is the
limit and it refills continuously at limit / period; a throttled write counts up to 1.8 times the
limit (the header's documented range); the percentage has two decimals, is sent on every Graph
response of the pair (reads and 429s too) and is the write bucket's; ``Retry-After`` is whole
seconds, rounded up, at least 1, the time until the request's cost fits again.

Not modelled: the resource-unit quota (reads), the per-application (70,000 per 5 min) and
per-tenant (18,000 per 5 min) write limits, which one application in one tenant reaches only
past its own pair's limit, ``x-ms-throttle-priority`` and ``x-ms-resource-unit``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# The POSTs the cost table lists with a write cost of 0 (they read).
_READING_POSTS = re.compile(
    r"/(directoryObjects/getByIds|getObjectsById|isMemberOf|checkMemberGroups|checkMemberObjects|"
    r"getMemberGroups|getMemberObjects)$",
    re.I,
)
REPORTED_FROM = 0.8  # the percentage header appears above this share of the limit
MAX_USAGE = 1.8  # GUESS: the documented top of the header's range bounds what throttled writes add


def write_cost(method: str, path: str) -> int:
    """The write cost of one Graph request (the table in throttling-limits)."""
    if method.upper() not in WRITE_METHODS:
        return 0
    if method.upper() == "POST" and _READING_POSTS.search(path):
        return 0
    return 1


@dataclass
class WriteBucket:
    """The write quota of one application+tenant pair: ``limit`` writes per ``period`` seconds.
    ``used`` is what the bucket holds of the limit (0 = full quota left)."""

    limit: float
    period: float
    used: float
    at: float

    @property
    def refill_per_second(self) -> float:
        return self.limit / self.period  # GUESS: continuous refill at the documented average rate

    def _drain(self, now: float) -> None:
        self.used = max(0.0, self.used - max(0.0, now - self.at) * self.refill_per_second)
        self.at = now

    def take(self, cost: int, now: float) -> float | None:
        """Admit a request of write cost ``cost`` (None), or the seconds until it would fit."""
        self._drain(now)
        if cost == 0 or self.used + cost <= self.limit:
            self.used += cost
            return None
        self.used = min(self.used + cost, MAX_USAGE * self.limit)
        return (self.used + cost - self.limit) / self.refill_per_second

    def fraction(self, now: float) -> float:
        self._drain(now)
        return self.used / self.limit


@dataclass(frozen=True)
class Verdict:
    """What the throttle says of one request: the headers to add to its answer, and for a
    throttled one the ``Retry-After`` to answer 429 with."""

    headers: list[tuple[bytes, bytes]]
    retry_after: float | None = None


def limit_percentage(fraction: float) -> list[tuple[bytes, bytes]]:
    if fraction <= REPORTED_FROM:
        return []
    return [(b"x-ms-throttle-limit-percentage", f"{min(fraction, MAX_USAGE):.2f}".encode())]  # GUESS: format


def throttled_headers(app_id: str, tenant_id: str, retry_after: float) -> list[tuple[bytes, bytes]]:
    return [
        (b"retry-after", str(max(1, math.ceil(retry_after))).encode()),  # GUESS: whole seconds
        (b"x-ms-throttle-scope", f"Tenant_Application/Write/{app_id}/{tenant_id}".encode()),
        (b"x-ms-throttle-information", b"WriteLimitExceeded"),
    ]


def throttled_body(request_id: str, client_request_id: str | None) -> dict[str, Any]:
    """The body of Graph's documented 429 (throttling, "Sample response")."""
    return {
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "message": "Please retry after",
                "request-id": request_id,
                "status": "429",
                # GUESS: not in the sample; every other Graph error carries it
                "client-request-id": client_request_id or request_id,
            },
        }
    }
