"""One engine for every Graph call: retries, pacing and error mapping, over the process's
``GraphServiceClient``. The gateways (applications, consent) describe each call; this runs it.

- retries: 429/503/504 and dropped connections are retried here (kiota's own RetryHandler is
  off, see shared.adapters.clients). Idempotent calls (GET, upsert PATCH, DELETE) are retried
  on any transient failure; a create (POST) only on an explicit rejection (429/503/504),
  never on a lost response, because the create may have happened.
- pacing: all writes share one token bucket at Graph's per-app write rate, and a 429's
  ``Retry-After`` pauses every writer, so that a burst slows down instead of being throttled.
- fencing: a write asks the lease's fence (shared.domain.fencing) before every attempt.
- replication lag: right after a create, dependent calls fail with the errors listed in
  platform-facts.md; those are retried with backoff on the dependent step only.
- error mapping: nothing above the adapters sees an SDK error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from shared.adapters.graph.errors import (
    RETRYABLE_STATUS,
    classify,
    is_auth_failure,
    is_replication_error,
    is_transport,
    odata_error,
)
from shared.domain import fencing
from shared.domain.errors import NotFound, PermanentError, PermissionDenied, ServiceError, TransientError

if TYPE_CHECKING:
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
    """A token bucket shared by all writes of this process, paused by ``Retry-After``."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.per_second)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0
    replication_attempts: int = 8

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311


class GraphCalls:
    """The process's Graph client with its retry policy and write pacer, shared by the gateways."""

    def __init__(
        self, client: GraphServiceClient, pacer: WritePacer, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy()

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
                    self.pacer.pause(wait)
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
