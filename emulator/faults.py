"""Faults on demand, and the request log.

``FaultMiddleware`` is the outermost ASGI layer, so it sees every request to the emulated
services (never the control plane) before anything else does. It logs each request with its
timings, then applies the rules in force, in this order: latency, status faults, Graph's write
quota (a token bucket per application+tenant with Graph's headers, emulator.throttling), and a
lost response (the request takes effect, then the connection is dropped before
the answer). Replication lag is applied by the directory when it creates an object
(``FaultEngine.replication_lag``). All randomness comes from one seeded generator, so a
failing run can be replayed with the same seed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import Service, error_body, service_headers, service_of, storage_error_xml
from emulator.throttling import (
    Verdict,
    WriteBucket,
    limit_percentage,
    throttled_body,
    throttled_headers,
    write_cost,
)

RuleKind = Literal["status", "lost-response", "latency", "replication-lag", "write-quota"]

_STATUS_CODES: dict[tuple[str, int], tuple[str, str]] = {
    ("graph", 429): ("TooManyRequests", "Please retry again later."),  # body: emulator.throttling
    ("graph", 500): ("generalException", "An unexpected error occurred."),
    ("graph", 503): ("serviceNotAvailable", "The service is temporarily unavailable. Please retry."),
    ("graph", 504): ("UnknownError", "The gateway did not receive a timely response."),
    ("keyvault", 429): ("Throttled", "Request was not allowed because application made too many requests."),
    ("keyvault", 500): ("InternalServerError", "An unexpected error occurred."),
    ("keyvault", 503): ("ServiceUnavailable", "The service is temporarily unavailable."),
    ("keyvault", 504): ("GatewayTimeout", "The gateway timed out."),
    ("storage", 500): (
        "InternalError",
        "The server encountered an internal error. Please retry the request.",
    ),
    ("storage", 503): (
        "ServerBusy",
        "The server is currently unable to receive requests. Please retry your request.",
    ),
    # Resource Manager (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling)
    ("arm", 429): (
        "TooManyRequests",
        "Number of requests exceeded the limit for the time interval. Please try again after the "
        "number of seconds in Retry-After. See https://aka.ms/arm-throttling",
    ),
    ("arm", 500): ("InternalServerError", "Encountered internal server error. Please try again later."),
    ("arm", 503): ("ServiceUnavailable", "The service is currently unavailable. Please try again later."),
    ("arm", 504): (
        "GatewayTimeout",
        "The gateway did not receive a response from 'Microsoft.Authorization' within the specified "
        "time period.",
    ),
    # FHIR: an OperationOutcome issue type; DICOM: a plain-text message
    ("fhir", 429): ("throttled", "The request was throttled. Retry after the time in Retry-After."),
    ("fhir", 500): ("exception", "An unexpected error occurred."),
    ("fhir", 503): ("transient", "The service is temporarily unavailable."),
    ("dicom", 429): ("throttled", "Too many requests."),
    ("dicom", 500): ("exception", "An internal error occurred."),
    ("dicom", 503): (
        "transient",
        "The server is currently unable to receive requests. Please retry your request. If the "
        "issue persists, please contact support.",
    ),
    ("identity", 429): ("temporarily_unavailable", "AADSTS50196: The server is throttling this client."),
    ("identity", 500): ("server_error", "AADSTS90033: A transient error has occurred."),
    ("identity", 503): ("temporarily_unavailable", "AADSTS90033: A transient error has occurred."),
    ("identity", 504): ("temporarily_unavailable", "AADSTS90033: A transient error has occurred."),
}


@dataclass
class Rule:
    """One fault rule. ``method`` and ``path`` are regular expressions (search on the request
    path without query string); a rule fires on the ``nth`` matching request only, or on the
    first ``times`` matching requests, or on every match, each subject to ``probability``."""

    kind: RuleKind
    service: Literal["graph", "keyvault", "identity", "storage", "arm", "fhir", "dicom", "any"] = "any"
    method: str | None = None
    path: str | None = None
    probability: float = 1.0
    nth: int | None = None
    times: int | None = None
    status: int = 503
    retryAfter: float | None = None
    ms: float = 0.0
    maxMs: float | None = None
    limit: int = 0
    windowSeconds: float = 150.0
    usedAtStart: float = 0.0
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("status", "lost-response", "latency", "replication-lag", "write-quota"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.kind == "status" and self.status not in (429, 500, 503, 504):
            raise ValueError("status faults are 429, 500, 503 or 504")
        if not 0.0 <= self.usedAtStart <= 1.0:
            raise ValueError("usedAtStart is the share of the write quota used when a bucket starts, 0 to 1")
        if self.kind == "write-quota" and (self.limit <= 0 or self.windowSeconds <= 0):
            raise ValueError("a write quota needs a limit and windowSeconds above 0")
        self._method = re.compile(self.method, re.I) if self.method else None
        self._path = re.compile(self.path) if self.path else None

    def matches(self, service: str, method: str, path: str) -> bool:
        return (
            (self.service == "any" or self.service == service)
            and (self._method is None or bool(self._method.fullmatch(method)))
            and (self._path is None or bool(self._path.search(path)))
        )

    def fires(self, rng: random.Random) -> bool:
        self.matched += 1
        if self.nth is not None and self.matched != self.nth:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class LogEntry:
    seq: int
    service: str
    method: str
    path: str
    query: str
    status: int
    startMs: float
    endMs: float
    appId: str | None = None
    fault: str | None = None


@dataclass
class FaultEngine:
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    log: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=200_000))
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.epoch = time.monotonic()
        self.seq = 0
        self._buckets: dict[tuple[str, str], WriteBucket] = {}
        self._lock = threading.Lock()

    def configure(self, rules: list[dict[str, Any]], seed: int | None = None, replace: bool = True) -> None:
        parsed = [Rule(**rule) for rule in rules]
        with self._lock:
            if seed is not None:
                self.seed = seed
                self.rng = random.Random(seed)
            self.rules = parsed if replace else [*self.rules, *parsed]
            self._buckets.clear()

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()
            self.epoch = time.monotonic()

    def reset(self) -> None:
        self.configure([], seed=0)
        self.clear_log()
        self.seq = 0

    def now_ms(self) -> float:
        return (time.monotonic() - self.epoch) * 1000.0

    def decide(self, service: str, method: str, path: str) -> tuple[Rule | None, bool]:
        """(the status fault to answer with, whether to lose the response). Every status and
        lost-response rule counts every request it matches, whatever the others decide, so
        that ``nth`` means the nth matching request."""
        status_rule, lost = None, False
        with self._lock:
            for rule in self.rules:
                if rule.kind not in ("status", "lost-response") or not rule.matches(service, method, path):
                    continue
                if rule.fires(self.rng):
                    if rule.kind == "status":
                        status_rule = status_rule or rule
                    else:
                        lost = True
        return status_rule, lost

    def latency_seconds(self, service: str, method: str, path: str) -> float:
        with self._lock:
            return (
                sum(
                    rule.ms
                    for rule in self.rules
                    if rule.kind == "latency" and rule.matches(service, method, path)
                )
                / 1000.0
            )

    def replication_lag(self) -> float:
        """Seconds for which an object just created stays invisible to dependent calls."""
        with self._lock:
            for rule in self.rules:
                if rule.kind == "replication-lag":
                    if rule.maxMs is not None:
                        return self.rng.uniform(rule.ms, rule.maxMs) / 1000.0
                    return rule.ms / 1000.0
        return 0.0

    def throttle(
        self, service: str, method: str, path: str, app_id: str | None, tenant_id: str | None
    ) -> Verdict | None:
        """Graph's write quota of the caller's application+tenant pair, when a ``write-quota``
        rule is in force (limit writes per windowSeconds, a token bucket; emulator.throttling):
        the headers to answer with, and whether the request is throttled. Every matching Graph
        request of the pair gets the percentage header; writes are counted."""
        if service != "graph":
            return None
        pair = (app_id or "", tenant_id or "")
        with self._lock:
            rule = next(
                (r for r in self.rules if r.kind == "write-quota" and r.matches(service, method, path)), None
            )
            if rule is None:
                return None
            now = time.monotonic()
            bucket = self._buckets.get(pair)
            if bucket is None:
                bucket = WriteBucket(rule.limit, rule.windowSeconds, rule.usedAtStart * rule.limit, now)
                self._buckets[pair] = bucket
            wait = bucket.take(write_cost(method, path), now)
            headers = limit_percentage(bucket.fraction(now))
            if wait is None:
                return Verdict(headers)
            rule.fired += 1
        return Verdict([*headers, *throttled_headers(*pair, wait)], wait)

    def record(self, entry: LogEntry) -> None:
        with self._lock:
            self.log.append(entry)
            self.counts[entry.service] += 1
            self.counts["total"] += 1
            if entry.fault:
                self.counts[f"fault:{entry.fault}"] += 1

    def next_seq(self) -> int:
        with self._lock:
            self.seq += 1
            return self.seq


def _caller(scope: Scope) -> tuple[str | None, str | None]:
    """The caller's application id and tenant id, from its bearer token (``appid``, ``tid``)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            try:
                claims = jwt.decode(value[7:].decode(), options={"verify_signature": False})
            except jwt.PyJWTError:
                return None, None
            app_id, tenant_id = claims.get("appid"), claims.get("tid")
            return (
                app_id if isinstance(app_id, str) else None,
                tenant_id if isinstance(tenant_id, str) else None,
            )
    return None, None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value).decode("latin-1")
    return None


async def _send_error(
    send: Send,
    service: Service,
    status: int,
    request_id: str,
    retry_after: float | None = None,
    code: str | None = None,
    message: str | None = None,
    *,
    client_request_id: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    default_code, default_message = _STATUS_CODES.get((service, status), ("error", "Injected fault."))
    if service == "storage":
        code = code or default_code
        xml = storage_error_xml(code, message or default_message, request_id)
        headers = [
            (b"content-type", b"application/xml"),
            (b"content-length", str(len(xml)).encode()),
            (b"x-ms-request-id", request_id.encode()),
            (b"x-ms-error-code", code.encode()),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": xml})
        return
    if service == "dicom":
        body, content_type = (message or default_message).encode(), b"text/plain; charset=utf-8"
    elif service == "graph" and status == 429 and code is None and message is None:
        body, content_type = (
            json.dumps(throttled_body(request_id, client_request_id)).encode(),
            b"application/json",
        )
    else:
        body = json.dumps(
            error_body(service, status, code or default_code, message or default_message, request_id)
        ).encode()
        content_type = b"application/fhir+json" if service == "fhir" else b"application/json"
    extra = {"x-ms-request-id": request_id, **service_headers(service, request_id)}
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in extra.items()),
        *(extra_headers or []),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _drop_connection(send: Send) -> bool:
    """Abort the TCP connection under this request (uvicorn's protocol objects own it)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


class FaultMiddleware:
    def __init__(self, app: ASGIApp, engine: FaultEngine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        service = service_of(path)
        if service == "control":
            await self.app(scope, receive, send)
            return
        engine = self.engine
        method: str = scope["method"]
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        app_id, tenant_id = _caller(scope)
        entry = LogEntry(
            seq=engine.next_seq(),
            service=service,
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            status=0,
            startMs=engine.now_ms(),
            endMs=0.0,
            appId=app_id,
        )
        status_holder = {"status": 0}
        added_headers: list[tuple[bytes, bytes]] = []
        recorded = False

        def finish() -> None:
            # Recorded before the answer's last byte leaves: a client that has seen the answer
            # (and then reads or clears the log) must find the entry there, in order.
            nonlocal recorded
            if not recorded:
                recorded = True
                entry.status = status_holder["status"]
                entry.endMs = engine.now_ms()
                engine.record(entry)

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if added_headers:
                    message = {**message, "headers": [*message.get("headers", []), *added_headers]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        try:
            delay = engine.latency_seconds(service, method, path)
            if delay:
                await asyncio.sleep(delay)
            rule, lost = engine.decide(service, method, path)
            if rule is not None:
                entry.fault = f"status:{rule.status}"
                retry_after = (
                    rule.retryAfter if rule.retryAfter is not None else (1 if rule.status == 429 else None)
                )
                await _send_error(
                    logged_send,
                    service,
                    rule.status,
                    request_id,
                    retry_after,
                    client_request_id=_header(scope, b"client-request-id"),
                )
                return
            verdict = engine.throttle(service, method, path, app_id, tenant_id)
            if verdict is not None and verdict.retry_after is not None:
                entry.fault = "write-quota"
                await _send_error(
                    logged_send,
                    service,
                    429,
                    request_id,
                    client_request_id=_header(scope, b"client-request-id"),
                    extra_headers=verdict.headers,
                )
                return
            if verdict is not None:
                added_headers.extend(verdict.headers)
            if lost:
                entry.fault = "lost-response"

                async def swallow(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status_holder["status"] = message["status"]

                await self.app(scope, receive, swallow)
                finish()
                if _drop_connection(send):
                    # Let uvicorn see the connection lost, then close the ASGI cycle (the
                    # answer goes nowhere), so it does not report an app without a response.
                    await asyncio.sleep(0)
                    await send({"type": "http.response.start", "status": 500, "headers": []})
                    await send({"type": "http.response.body", "body": b""})
                else:
                    # No transport to abort: start an answer and break it off, which the
                    # client sees as a connection dropped mid-response.
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [(b"content-length", b"1000")],
                        }
                    )
                    raise ConnectionAbortedError("lost response")
                return
            await self.app(scope, receive, logged_send)
        finally:
            finish()
