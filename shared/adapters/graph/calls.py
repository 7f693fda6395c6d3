"""One engine for every Graph call: retries, pacing and error mapping, over the process's
``GraphServiceClient``. The gateways (applications, consent) describe each call; this runs it.

- retries: 429/503/504 and dropped connections are retried here (kiota's own RetryHandler is
  off, see shared.adapters.clients). Idempotent calls (GET, upsert PATCH, DELETE) are retried
  on any transient failure; a create (POST) only on an explicit rejection (429/503/504),
  never on a lost response, because the create may have happened.
- pacing: Graph's write quota is per application and tenant, shared by every instance of the
  function app. Each process paces its writes with one ``WritePacer``, which slows down from
  Graph's own signals (``x-ms-throttle-limit-percentage`` on every response, a 429's
  ``Retry-After`` for every writer of the process), so that the instances together stay under
  the quota (docs/reliability.md, "Several instances on one write quota").
- fencing: a write asks the lease's fence (shared.domain.fencing) before every attempt.
- replication lag: right after a create, dependent calls fail with the errors listed in
  platform-facts.md; those are retried with backoff on the dependent step only.
- error mapping: nothing above the adapters sees an SDK error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from shared.adapters.graph.errors import (
    RETRYABLE_STATUS,
    GraphResponseError,
    classify,
    is_auth_failure,
    is_replication_error,
    is_transport,
    odata_error,
)
from shared.domain import fencing
from shared.domain.errors import NotFound, PermanentError, PermissionDenied, ServiceError, TransientError

if TYPE_CHECKING:
    import httpx
    from azure.core.credentials_async import AsyncTokenCredential
    from kiota_abstractions.base_request_builder import BaseRequestBuilder
    from kiota_abstractions.request_information import RequestInformation
    from msgraph import GraphServiceClient
    from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
        ApplicationsWithUniqueNameRequestBuilder,
    )
    from msgraph.generated.models.application import Application
    from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
        ServicePrincipalsWithAppIdRequestBuilder,
    )

log = logging.getLogger(__name__)
T = TypeVar("T")

# The application permissions each kind of call requires (least privilege; see emulator/graph/authz.py).
APPLICATIONS_PERMISSION = "Application.ReadWrite.OwnedBy (and, to change an object, to own it)"
GRANTS_PERMISSION = "DelegatedPermissionGrant.ReadWrite.All"
ASSIGNMENTS_PERMISSION = "AppRoleAssignment.ReadWrite.All"

# Graph's identity write limit per app and tenant: 3,000 per 150 s (platform-facts.md).
GRAPH_WRITES_PER_SECOND = 20.0
GRAPH_WRITE_BURST = 20


# -- retries and pacing ----------------------------------------------------------------------


class WritePacer:
    """The pace of this process's Graph writes, under a write quota it shares with every other
    instance of the app. ``per_second`` and ``burst``: the quota's rate, all of it for one
    instance alone. What Graph reports to every instance sets each one's share of that rate:

    - ``x-ms-throttle-limit-percentage`` p (sent once the app+tenant pair has used more than 0.8
      of its quota): the share falls linearly from 1 at p = 0.8 to ``MIN_SHARE`` at p = 0.9.
      Every instance sees the same p, so they slow down together and evenly; n instances settle
      where n * share = 1, at p = 0.8 + 0.1 / n, well short of the limit (the headroom absorbs
      signals that arrive late). No header: p is below 0.8, full rate.
    - a 429 on a write: every write of the process waits its ``Retry-After``, and the share's
      ceiling halves, then climbs back linearly over ``RECOVERY_SECONDS`` (once per pause: the
      429s of one burst are one signal).
    - the burst shrinks with the share, so a slowed instance cannot release a burst of writes.

    The decisions take the time as an argument (``delay``, ``observe``, ``throttled``);
    ``acquire`` is the only part that waits."""

    REPORTED_FROM = 0.8  # Graph sends the percentage above this share of the limit
    SLOWEST_AT = 0.9  # the share is at its floor from this percentage on
    MIN_SHARE = 0.05
    RECOVERY_SECONDS = 10.0

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        now = clock()
        # One write at first, not a burst: a new instance does not know what its siblings use.
        self._tokens = 1.0
        self._last = now
        self._paused_until = 0.0
        self._signal_share = 1.0  # from the last limit percentage Graph reported
        self._ceiling = 1.0  # after a 429: cut, then recovering from ``_ceiling_at``
        self._ceiling_at = now
        self._lock = asyncio.Lock()

    def share(self, now: float) -> float:
        """The fraction of the quota's rate this process writes at, now."""
        ceiling = min(1.0, self._ceiling + max(0.0, now - self._ceiling_at) / self.RECOVERY_SECONDS)
        return max(self.MIN_SHARE, min(self._signal_share, ceiling))

    def observe(self, percentage: float | None) -> None:
        """What a Graph response said of the quota: its ``x-ms-throttle-limit-percentage``, or
        None when it had none (below 0.8 used)."""
        if percentage is None or percentage <= self.REPORTED_FROM:
            self._signal_share = 1.0
        else:
            slope = (self.SLOWEST_AT - percentage) / (self.SLOWEST_AT - self.REPORTED_FROM)
            self._signal_share = max(self.MIN_SHARE, slope)

    def throttled(self, retry_after: float, now: float) -> None:
        """A write drew a 429: every write of the process waits ``retry_after``."""
        if now >= self._paused_until:
            self._ceiling, self._ceiling_at = self.share(now) / 2, now
        self._paused_until = max(self._paused_until, now + retry_after)
        self._tokens = 0.0  # no burst when the pause ends
        self._last = max(self._last, self._paused_until)

    def delay(self, now: float) -> float:
        """Take the right to one write now (0.0), or the seconds to wait before asking again."""
        if now < self._paused_until:
            return self._paused_until - now
        share = self.share(now)
        rate = self.per_second * share
        self._tokens = min(max(1.0, self.burst * share), self._tokens + max(0.0, now - self._last) * rate)
        self._last = max(self._last, now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / rate

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                wait = self.delay(self.clock())
                if wait <= 0:
                    return
                await asyncio.sleep(wait)


class ThrottleSignals:
    """An httpx response hook that reads Graph's ``x-ms-throttle-limit-percentage`` off every
    response of the Graph client for the pacer (the SDK's calls return models, not headers)."""

    def __init__(self, pacer: WritePacer) -> None:
        self.pacer = pacer

    async def __call__(self, response: Any) -> None:
        value = response.headers.get("x-ms-throttle-limit-percentage")
        try:
            self.pacer.observe(float(value) if value is not None else None)
        except ValueError:
            self.pacer.observe(None)

    @classmethod
    def install(cls, http: httpx.AsyncClient, pacer: WritePacer) -> None:
        """Feed ``pacer`` from every response of the Graph client's ``http`` client, instead of
        any pacer fed before."""
        hooks = [h for h in http.event_hooks.get("response", []) if not isinstance(h, cls)]
        http.event_hooks = {**http.event_hooks, "response": [*hooks, cls(pacer)]}


GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@functools.cache
def _parameter_decoder() -> Callable[[str], str]:
    from kiota_http.middleware import ParametersNameDecodingHandler
    from kiota_http.middleware.options import ParametersNameDecodingHandlerOption

    handler = ParametersNameDecodingHandler()
    characters = ParametersNameDecodingHandlerOption().characters_to_decode
    return lambda query: handler.decode_uri_encoded_string(query, characters)


def _decoded_parameter_names(url: str) -> str:
    """``url`` with its query parameters' names decoded (``%24select`` -> ``$select``), as
    kiota's ParametersNameDecodingHandler decodes them."""
    path, separator, query = url.partition("?")
    return f"{path}?{_parameter_decoder()(query)}" if separator else url


def _parsed(raw: bytes | None) -> dict[str, Any] | None:
    """A Graph answer's JSON body, or None when it has none."""
    if not raw:
        return None
    body: dict[str, Any] = json.loads(raw)
    return body


@functools.cache
def _sdk_version() -> str:
    """Graph's ``SdkVersion`` header, as msgraph-sdk's telemetry handler writes it."""
    from importlib.metadata import version

    return f"graph-python/{version('msgraph-sdk')}, graph-python-core/{version('msgraph-core')}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0
    replication_attempts: int = 8

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311


class GraphCalls:
    """The process's Graph client with its retry policy and write pacer, shared by the gateways.
    ``http`` is the httpx client under ``client`` and ``credential`` its token source: ``json``
    sends through them."""

    def __init__(
        self,
        client: GraphServiceClient,
        pacer: WritePacer,
        retry: RetryPolicy | None = None,
        *,
        http: httpx.AsyncClient,
        credential: AsyncTokenCredential,
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy()
        self._http = http
        self._credential = credential
        self._base_url = f"{client.request_adapter.base_url.rstrip('/')}/"

    async def call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        write: bool = False,
        idempotent: bool = True,
        dependent: bool = False,
        needs: str = APPLICATIONS_PERMISSION,
    ) -> T:
        """Run one Graph call with the retries its kind allows (see module docstring). A 403
        names ``needs``, the application permission the call requires."""
        replication_tries = 0
        attempt = 0
        lost_response = False
        while True:
            if write:
                await self.pacer.acquire()
                fencing.check_writes()  # after the pacer's wait: the lease may have lapsed in it
            try:
                return await call()
            except Exception as error:  # classified below, outside this block; nothing escapes unmapped
                info = odata_error(error)
                if info is None and not is_transport(error) and not is_auth_failure(error):
                    raise
                transport = info is None and is_transport(error)
                failure_text = f"{type(error).__name__}" if transport else str(error)
            # Decided here, after the ``except`` block, so that no error raised below keeps the
            # SDK's exception (and the request it failed on) as its ``__context__``.
            if info is None:
                if not transport:
                    raise TransientError("TokenUnavailable", f"{what}: no Graph token: {failure_text}")
                if not idempotent:
                    raise TransientError(
                        "LostResponse", f"{what}: the connection dropped before Graph answered"
                    )
                attempt += 1
                lost_response = True
                if attempt >= self.retry.attempts:
                    raise TransientError("GraphUnreachable", f"{what}: {failure_text}")
                await asyncio.sleep(self.retry.backoff(attempt))
                continue
            status, code, message, retry_after = info
            if status in (429, 503, 504) or (idempotent and status in RETRYABLE_STATUS):
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise classify(status, code, message, what)
                wait = retry_after if retry_after is not None else self.retry.backoff(attempt)
                if status == 429 and write:
                    self.pacer.throttled(wait, self.pacer.clock())
                log.info("graph.retry", extra={"what": what, "status": status, "wait": round(wait, 2)})
                await asyncio.sleep(wait)
                continue
            if dependent and is_replication_error(status, code, message):
                replication_tries += 1
                if replication_tries >= self.retry.replication_attempts:
                    raise classify(status, code, message, what, dependent)
                await asyncio.sleep(self.retry.backoff(replication_tries))
                continue
            failure = classify(status, code, message, what, dependent)
            if isinstance(failure, PermissionDenied):
                failure = PermissionDenied(
                    failure.code,
                    f"{what}: the service identity needs {needs}; Graph answered {status} {code}: {message}",
                )
            if isinstance(failure, ServiceError):
                failure.after_lost_response = lost_response
            raise failure

    async def upsert(self, what: str, call: Callable[[], Awaitable[T]], dependent: bool = False) -> T:
        """An upsert by alternate key, which a concurrent upsert of the same key can beat to the
        create (Request_MultipleObjectsWithSameKeyValue): then the object exists, and the same
        upsert, sent again, updates it."""
        try:
            return await self.call(what, call, write=True, dependent=dependent)
        except PermanentError as error:
            if error.code != "Request_MultipleObjectsWithSameKeyValue":
                raise
        return await self.call(what, call, write=True, dependent=dependent)

    async def read_application(
        self, what: str, object_id: str, select: Sequence[str], *, dependent: bool
    ) -> Application:
        """``GET /applications/{object_id}`` with ``$select``; ``NotFound`` when Graph answers
        without the object."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.applications.item.application_item_request_builder import (
            ApplicationItemRequestBuilder,
        )

        params = ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
            select=list(select)
        )
        builder = self.client.applications.by_application_id(object_id)
        app = await self.call(
            what, lambda: builder.get(RequestConfiguration(query_parameters=params)), dependent=dependent
        )
        if app is None:
            raise NotFound("Request_ResourceNotFound", f"application {object_id}")
        return app

    # msgraph-sdk's alternate-key builders (applications(uniqueName=...), servicePrincipals(appId=...))
    # write the key into the client's own path parameters and keep that dict: concurrent calls
    # would send each other's key. Each builder here gets a copy.

    async def json(self, request: RequestInformation) -> dict[str, Any] | None:
        """Send ``request`` (a request builder's ``to_*_request_information``: its method, URL,
        headers and body, as msgraph-sdk builds them) and return its JSON body as a dict, or
        None when Graph answers without one. Errors are raised as ``GraphResponseError``.

        For the calls whose answer the service reads a field or two of. They go straight to the
        httpx client under the SDK (its connections, and the response hook that feeds the
        pacer), with a token from the process's credential, the query parameters' names
        decoded as kiota's handler decodes them, and Graph's client-request-id: kiota's request
        adapter and middleware cost about three times the rest of a request's CPU, and its
        parse of a whole directory object into a backed model more again (docs/benchmarks.md).
        The token goes to Graph's base URL only."""
        request.path_parameters["baseurl"] = self._base_url.rstrip("/")  # as kiota's adapter sets it
        url = _decoded_parameter_names(request.url)
        if not url.startswith(self._base_url):
            raise ValueError(f"not a Graph URL: {url.split('?', 1)[0]}")
        token = await self._credential.get_token(GRAPH_SCOPE)
        headers = dict(request.request_headers or {})
        headers.update(
            {
                "Authorization": f"Bearer {token.token}",
                "client-request-id": str(uuid.uuid4()),
                "SdkVersion": _sdk_version(),
            }
        )
        method = request.http_method.value if request.http_method is not None else "GET"
        response = await self._http.send(
            self._http.build_request(method, url, headers=headers, content=request.content or None)
        )
        raw = response.content
        if response.status_code >= 400:
            raise GraphResponseError.of(response.status_code, raw, response.headers.get("retry-after"))
        return _parsed(raw)

    async def json_page(self, request: RequestInformation) -> dict[str, Any] | None:
        """``json`` for a listing's page (999 applications), sent through msgraph-sdk's request
        adapter rather than straight to its httpx client: measured (bench/rotation_sweep.py), the
        direct send held more memory at the sweep's peak (10,000 managed against 1,000: 1.74
        times, against 1.13 through the adapter), and a sweep reads 11 pages, not thousands.
        Errors are raised as the adapter raises them (``ODataError``)."""
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        raw: bytes | None = await cast(Any, self.client.request_adapter).send_primitive_async(
            request, "bytes", {"XXX": ODataError}
        )
        return _parsed(raw)

    async def json_write(
        self, method: str, builder: BaseRequestBuilder, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``json`` for a write to ``builder``'s URL whose body the gateway gives as Graph's
        JSON rather than as a msgraph-sdk model: building a backed model and serializing it
        costs more CPU than the request (docs/benchmarks.md)."""
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        request = RequestInformation(Method(method), builder.url_template, dict(builder.path_parameters))
        request.headers.try_add("Accept", "application/json")
        request.headers.try_add("Content-Type", "application/json")
        request.content = json.dumps(body).encode()
        return await self.json(request)

    def app_by_unique_name(self, unique_name: str) -> ApplicationsWithUniqueNameRequestBuilder:
        from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
            ApplicationsWithUniqueNameRequestBuilder,
        )

        adapter, parameters = self.client.request_adapter, dict(self.client.path_parameters)
        return ApplicationsWithUniqueNameRequestBuilder(adapter, parameters, unique_name)

    def sp_by_app_id(self, app_id: str) -> ServicePrincipalsWithAppIdRequestBuilder:
        from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
            ServicePrincipalsWithAppIdRequestBuilder,
        )

        adapter, parameters = self.client.request_adapter, dict(self.client.path_parameters)
        return ServicePrincipalsWithAppIdRequestBuilder(adapter, parameters, app_id)

    # -- resources -------------------------------------------------------------------------
