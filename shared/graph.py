"""Microsoft Graph gateway: every Graph call the service makes, and every Graph quirk.

It owns:
- retries: 429/503/504 and dropped connections are retried here (kiota's own RetryHandler is
  off, see shared.clients). Idempotent calls (GET, upsert PATCH, DELETE) are retried on any
  transient failure; a create (POST) only on an explicit rejection (429/503/504), never on a
  lost response, because the create may have happened.
- pacing: all writes share one token bucket at Graph's per-app write rate, and a 429's
  ``Retry-After`` pauses every writer, so that a burst slows down instead of being throttled.
- replication lag: right after a create, dependent calls fail with the errors listed in
  platform-facts.md; those are retried with backoff on the dependent step only.
- error mapping: ODataError codes become shared.errors types; nothing else sees an SDK error.
- plain records: callers get frozen dataclasses, not kiota models.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import (
    NotFound,
    PermanentError,
    PermissionDenied,
    PolicyViolation,
    ReplicationPending,
    ServiceError,
    TransientError,
)
from shared.secrets import SecretValue

if TYPE_CHECKING:
    from msgraph import GraphServiceClient
    from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
        ApplicationsWithUniqueNameRequestBuilder,
    )
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
        ServicePrincipalsWithAppIdRequestBuilder,
    )

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
POLICY_CODES = frozenset(
    {"CredentialInvalidLifetimeAsPerAppPolicy", "CredentialTypeNotAllowedAsPerAppPolicy"}
)
# Messages Graph answers while an object created moments ago replicates (platform-facts.md).
REPLICATION_MESSAGES = (
    "does not reference a valid application object",
    "does not exist or one of its queried reference-property objects are not present",
    "backing application",
    "not a valid reference update",
)
# The application permissions each kind of call requires (least privilege; see emulator/graph/authz.py).
APPLICATIONS_PERMISSION = "Application.ReadWrite.OwnedBy (and, to change an object, to own it)"
GRANTS_PERMISSION = "DelegatedPermissionGrant.ReadWrite.All"
ASSIGNMENTS_PERMISSION = "AppRoleAssignment.ReadWrite.All"
APP_SELECT = ["id", "appId", "uniqueName", "displayName", "tags", "passwordCredentials", "createdDateTime"]
SP_SELECT = ["id", "appId", "displayName", "oauth2PermissionScopes", "appRoles", "servicePrincipalNames"]


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordInfo:
    key_id: str
    display_name: str
    hint: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class AppRecord:
    object_id: str
    app_id: str
    unique_name: str | None
    display_name: str
    tags: tuple[str, ...]
    passwords: tuple[PasswordInfo, ...]


@dataclass(frozen=True)
class NewPassword:
    info: PasswordInfo
    secret: SecretValue = field(repr=False)


@dataclass(frozen=True)
class ResourceApi:
    """A resource's service principal: the ids of its scopes and app roles by name."""

    service_principal_id: str
    app_id: str
    display_name: str
    scopes: dict[str, str]
    roles: dict[str, str]


@dataclass(frozen=True)
class Grant:
    id: str
    resource_id: str
    scope: str


@dataclass(frozen=True)
class RoleAssignment:
    id: str
    resource_id: str
    app_role_id: str


@dataclass(frozen=True)
class ResourceAccess:
    resource_app_id: str
    scope_ids: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DesiredApplication:
    """What a registration converges an application to."""

    display_name: str
    tags: tuple[str, ...]
    notes: str | None
    web_redirect_uris: tuple[str, ...]
    public_client_redirect_uris: tuple[str, ...]
    spa_redirect_uris: tuple[str, ...]
    is_fallback_public_client: bool
    required_resource_access: tuple[ResourceAccess, ...]


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


def _odata(error: BaseException) -> tuple[int, str, str, float | None] | None:
    """(status, code, message, Retry-After seconds) of a Graph error, or None."""
    from kiota_abstractions.api_error import APIError

    if not isinstance(error, APIError):
        return None
    status = error.response_status_code or 0
    code, message = "", str(getattr(error, "message", "") or "")
    main = getattr(getattr(error, "error", None), "code", None)
    if main is not None:
        code = str(main)
        message = str(getattr(error.error, "message", "") or message)  # type: ignore[attr-defined]
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    retry_after = headers.get("retry-after")
    seconds: float | None = None
    if retry_after:
        value = retry_after[0] if isinstance(retry_after, list | tuple) else retry_after
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
    return status, code, message, seconds


def _is_transport(error: BaseException) -> bool:
    import httpx

    return isinstance(error, httpx.TransportError)


def _is_auth_failure(error: BaseException) -> bool:
    from azure.core.exceptions import ClientAuthenticationError

    return isinstance(error, ClientAuthenticationError)


def is_replication_error(status: int, code: str, message: str) -> bool:
    lowered = message.lower()
    return (status == 404 and code == "Request_ResourceNotFound") or (
        status in (400, 403, 404) and any(text in lowered for text in REPLICATION_MESSAGES)
    )


def classify(status: int, code: str, message: str, what: str, dependent: bool = False) -> Exception:
    """A Graph error answered to ``what`` as a shared.errors exception. A 404 is replication
    lag only for a call that depends on an object just created; otherwise it is not found."""
    detail = f"{what}: Graph answered {status} {code}: {message}"
    if status in RETRYABLE_STATUS:
        return TransientError("GraphUnavailable", detail)
    if code in POLICY_CODES:
        return PolicyViolation(code, detail, field="credential")
    if status == 403 or code == "Authorization_RequestDenied":
        return PermissionDenied("Authorization_RequestDenied", detail)
    if dependent and is_replication_error(status, code, message):
        return ReplicationPending(code or "ReplicationPending", detail)
    if status == 404:
        return NotFound(code or "NotFound", detail)
    if status == 401:
        return TransientError("Unauthenticated", detail)
    return PermanentError(code or f"Graph{status}", detail)


# -- the gateway ------------------------------------------------------------------------------


class GraphGateway:
    def __init__(
        self, client: GraphServiceClient, pacer: WritePacer, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.retry = retry or RetryPolicy()

    async def _call(
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
            try:
                return await call()
            except Exception as error:  # classified below; nothing escapes unmapped
                info = _odata(error)
                if info is None:
                    if _is_transport(error):
                        if not idempotent:
                            raise TransientError(
                                "LostResponse", f"{what}: the connection dropped before Graph answered"
                            ) from None
                        attempt += 1
                        lost_response = True
                        if attempt >= self.retry.attempts:
                            raise TransientError(
                                "GraphUnreachable", f"{what}: {type(error).__name__}"
                            ) from None
                        await asyncio.sleep(self.retry.backoff(attempt))
                        continue
                    if _is_auth_failure(error):
                        raise TransientError("TokenUnavailable", f"{what}: no Graph token: {error}") from None
                    raise
                status, code, message, retry_after = info
                if status in (429, 503, 504) or (idempotent and status in RETRYABLE_STATUS):
                    attempt += 1
                    if attempt >= self.retry.attempts:
                        raise classify(status, code, message, what) from None
                    wait = retry_after if retry_after is not None else self.retry.backoff(attempt)
                    if status == 429 and write:
                        self.pacer.pause(wait)
                    log.info("graph.retry", extra={"what": what, "status": status, "wait": round(wait, 2)})
                    await asyncio.sleep(wait)
                    continue
                if dependent and is_replication_error(status, code, message):
                    replication_tries += 1
                    if replication_tries >= self.retry.replication_attempts:
                        raise classify(status, code, message, what, dependent) from None
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
                raise failure from None

    async def _upsert(self, what: str, call: Callable[[], Awaitable[T]], dependent: bool = False) -> T:
        """An upsert by alternate key, which a concurrent upsert of the same key can beat to the
        create (Request_MultipleObjectsWithSameKeyValue): then the object exists, and the same
        upsert, sent again, updates it."""
        try:
            return await self._call(what, call, write=True, dependent=dependent)
        except PermanentError as error:
            if error.code != "Request_MultipleObjectsWithSameKeyValue":
                raise
        return await self._call(what, call, write=True, dependent=dependent)

    # msgraph-sdk's alternate-key builders (applications(uniqueName=...), servicePrincipals(appId=...))
    # write the key into the client's own path parameters and keep that dict: concurrent calls
    # would send each other's key. Each builder here gets a copy.

    def _app_by_unique_name(self, unique_name: str) -> ApplicationsWithUniqueNameRequestBuilder:
        from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
            ApplicationsWithUniqueNameRequestBuilder,
        )

        adapter, parameters = self.client.request_adapter, dict(self.client.path_parameters)
        return ApplicationsWithUniqueNameRequestBuilder(adapter, parameters, unique_name)

    def _sp_by_app_id(self, app_id: str) -> ServicePrincipalsWithAppIdRequestBuilder:
        from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
            ServicePrincipalsWithAppIdRequestBuilder,
        )

        adapter, parameters = self.client.request_adapter, dict(self.client.path_parameters)
        return ServicePrincipalsWithAppIdRequestBuilder(adapter, parameters, app_id)

    # -- resources -------------------------------------------------------------------------

    async def find_resource(self, reference: str) -> ResourceApi | None:
        """The service principal of a resource API, by appId (GUID) or identifier URI."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals.service_principals_request_builder import (
            ServicePrincipalsRequestBuilder,
        )

        literal = reference.replace("'", "''")  # OData string literal; contracts refuse quotes anyway
        try:
            uuid.UUID(reference)
            odata_filter = f"appId eq '{literal}'"
        except ValueError:
            odata_filter = f"servicePrincipalNames/any(n:n eq '{literal}')"
        config = RequestConfiguration(
            query_parameters=ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
                filter=odata_filter, select=SP_SELECT, top=2
            )
        )
        page = await self._call(
            f"find service principal {reference}", lambda: self.client.service_principals.get(config)
        )
        found = list(page.value or []) if page else []
        if not found:
            return None
        sp = found[0]
        return ResourceApi(
            service_principal_id=str(sp.id),
            app_id=str(sp.app_id),
            display_name=str(sp.display_name or ""),
            scopes={
                str(s.value): str(s.id) for s in sp.oauth2_permission_scopes or [] if s.value and s.is_enabled
            },
            roles={
                str(r.value): str(r.id)
                for r in sp.app_roles or []
                if r.value and r.is_enabled and "Application" in (r.allowed_member_types or [])
            },
        )

    # -- applications ----------------------------------------------------------------------

    def _application_body(self, desired: DesiredApplication) -> Application:
        from msgraph.generated.models.application import Application
        from msgraph.generated.models.public_client_application import PublicClientApplication
        from msgraph.generated.models.required_resource_access import RequiredResourceAccess
        from msgraph.generated.models.resource_access import ResourceAccess as GraphResourceAccess
        from msgraph.generated.models.spa_application import SpaApplication
        from msgraph.generated.models.web_application import WebApplication

        return Application(
            display_name=desired.display_name,
            sign_in_audience="AzureADMyOrg",
            tags=list(desired.tags),
            notes=desired.notes,
            is_fallback_public_client=desired.is_fallback_public_client,
            web=WebApplication(redirect_uris=list(desired.web_redirect_uris)),
            public_client=PublicClientApplication(redirect_uris=list(desired.public_client_redirect_uris)),
            spa=SpaApplication(redirect_uris=list(desired.spa_redirect_uris)),
            required_resource_access=[
                RequiredResourceAccess(
                    resource_app_id=access.resource_app_id,
                    resource_access=[
                        GraphResourceAccess(id=uuid.UUID(i), type="Scope") for i in access.scope_ids
                    ]
                    + [GraphResourceAccess(id=uuid.UUID(i), type="Role") for i in access.role_ids],
                )
                for access in desired.required_resource_access
            ],
        )

    async def upsert_application(
        self, unique_name: str, desired: DesiredApplication
    ) -> tuple[AppRecord, bool]:
        """Create or update the application whose uniqueName is ``unique_name`` (Graph's upsert:
        201 with the object when created, 204 when updated). Returns (app, created)."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", "create-if-missing")
        body = self._application_body(desired)
        builder = self._app_by_unique_name(unique_name)
        created = await self._upsert(f"upsert application {unique_name}", lambda: builder.patch(body, config))
        if created is not None:
            return _app_record(created), True
        # 204: updated; Graph returns no body, so read what the dependent steps need.
        app = await self.get_application_by_unique_name(unique_name, dependent=True)
        if app is None:
            raise ReplicationPending(
                "Request_ResourceNotFound", f"application {unique_name} not readable yet"
            )
        return app, False

    async def get_application_by_unique_name(
        self, unique_name: str, dependent: bool = False
    ) -> AppRecord | None:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
            ApplicationsWithUniqueNameRequestBuilder,
        )

        params = ApplicationsWithUniqueNameRequestBuilder.ApplicationsWithUniqueNameRequestBuilderGetQueryParameters(
            select=APP_SELECT
        )
        builder = self._app_by_unique_name(unique_name)
        try:
            app = await self._call(
                f"read application {unique_name}",
                lambda: builder.get(RequestConfiguration(query_parameters=params)),
                dependent=dependent,
            )
        except NotFound:
            return None
        return _app_record(app) if app else None

    async def get_application(self, object_id: str, dependent: bool = True) -> AppRecord:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.applications.item.application_item_request_builder import (
            ApplicationItemRequestBuilder,
        )

        params = ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
            select=APP_SELECT
        )
        builder = self.client.applications.by_application_id(object_id)
        app = await self._call(
            f"read application {object_id}",
            lambda: builder.get(RequestConfiguration(query_parameters=params)),
            dependent=dependent,
        )
        if app is None:
            raise NotFound("Request_ResourceNotFound", f"application {object_id}")
        return _app_record(app)

    async def delete_application(self, object_id: str) -> bool:
        """Delete; False if it was already gone."""
        builder = self.client.applications.by_application_id(object_id)
        try:
            await self._call(f"delete application {object_id}", builder.delete, write=True)
        except NotFound as gone:
            return gone.after_lost_response  # our earlier attempt deleted it
        return True

    async def owned_applications(
        self, owner_sp_id: str, page_size: int = 999, select: Sequence[str] = APP_SELECT
    ) -> AsyncIterator[AppRecord]:
        """The applications ``owner_sp_id`` owns, page by page (never all in memory), with only
        the ``select``ed properties filled in. The ``microsoft.graph.application`` cast leaves
        out the service principals it also owns: half the objects to page through and parse."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals.item.owned_objects.graph_application.graph_application_request_builder import (
            GraphApplicationRequestBuilder,
        )

        params = GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
            select=list(select), top=page_size
        )
        builder = self.client.service_principals.by_service_principal_id(
            owner_sp_id
        ).owned_objects.graph_application
        page = await self._call(
            "list owned applications", lambda: builder.get(RequestConfiguration(query_parameters=params))
        )
        while page is not None:
            for item in page.value or []:
                yield _app_record(item)
            next_link = page.odata_next_link
            if not next_link:
                return
            next_builder = builder.with_url(next_link)
            page = await self._call("list owned applications (next page)", next_builder.get)

    async def service_principal_id_of(self, app_id: str) -> str:
        """The object id of the service principal of ``app_id`` (e.g. the service's own identity)."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
            ServicePrincipalsWithAppIdRequestBuilder,
        )

        params = ServicePrincipalsWithAppIdRequestBuilder.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters(
            select=["id"]
        )
        builder = self._sp_by_app_id(app_id)
        sp = await self._call(
            f"read service principal {app_id}",
            lambda: builder.get(RequestConfiguration(query_parameters=params)),
        )
        if sp is None or not sp.id:
            raise NotFound("Request_ResourceNotFound", f"service principal of {app_id}")
        return str(sp.id)

    # -- credentials -----------------------------------------------------------------------

    async def add_password(
        self, object_id: str, display_name: str, start: dt.datetime, end: dt.datetime
    ) -> NewPassword:
        """addPassword: the only moment the secret value exists outside Key Vault. Not
        retried on a lost response (a second call would make a second secret)."""
        from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
            AddPasswordPostRequestBody,
        )
        from msgraph.generated.models.password_credential import PasswordCredential

        body = AddPasswordPostRequestBody(
            password_credential=PasswordCredential(
                display_name=display_name, start_date_time=start, end_date_time=end
            )
        )
        builder = self.client.applications.by_application_id(object_id).add_password
        created = await self._call(
            f"add password to {object_id}",
            lambda: builder.post(body),
            write=True,
            idempotent=False,
            dependent=True,
        )
        if created is None or not created.secret_text:
            raise TransientError("EmptyResponse", "addPassword answered without a secret")
        secret = SecretValue(created.secret_text)
        created.secret_text = None  # the kiota model must not keep the value around
        return NewPassword(info=_password_info(created), secret=secret)

    async def remove_password(self, object_id: str, key_id: str) -> bool:
        """removePassword; False if the credential (or the app) was already gone."""
        from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
            RemovePasswordPostRequestBody,
        )

        body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
        builder = self.client.applications.by_application_id(object_id).remove_password
        try:
            # Removing a credential twice is harmless, so a lost response may be retried.
            await self._call(f"remove password {key_id}", lambda: builder.post(body), write=True)
        except NotFound:
            return False
        except PermanentError as error:
            if "no password credential" in error.message.lower() or "keyid" in error.message.lower():
                return False
            raise
        return True

    # -- service principals, consent -------------------------------------------------------

    async def upsert_service_principal(self, app_id: str) -> str:
        """The id of the app's service principal, created if missing (Graph's upsert by appId)."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.service_principal import ServicePrincipal

        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", "create-if-missing")
        builder = self._sp_by_app_id(app_id)
        created = await self._upsert(
            f"upsert service principal {app_id}",
            lambda: builder.patch(
                ServicePrincipal(tags=["WindowsAzureActiveDirectoryIntegratedApp"]), config
            ),
            dependent=True,
        )
        if created is not None and created.id:
            return str(created.id)
        sp = await self._call(f"read service principal {app_id}", builder.get, dependent=True)
        if sp is None or not sp.id:
            raise ReplicationPending(
                "Request_ResourceNotFound", f"service principal of {app_id} not readable yet"
            )
        return str(sp.id)

    async def delete_service_principal_of(self, app_id: str) -> bool:
        builder = self._sp_by_app_id(app_id)
        try:
            await self._call(f"delete service principal {app_id}", builder.delete, write=True)
        except NotFound as gone:
            return gone.after_lost_response  # our earlier attempt deleted it
        return True

    async def grants_of(self, client_sp_id: str) -> list[Grant]:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.oauth2_permission_grants.oauth2_permission_grants_request_builder import (
            Oauth2PermissionGrantsRequestBuilder,
        )

        params = Oauth2PermissionGrantsRequestBuilder.Oauth2PermissionGrantsRequestBuilderGetQueryParameters(
            filter=f"clientId eq '{client_sp_id}'"
        )
        page = await self._call(
            "list grants",
            lambda: self.client.oauth2_permission_grants.get(RequestConfiguration(query_parameters=params)),
            dependent=True,
            needs=GRANTS_PERMISSION,
        )
        return [
            Grant(id=str(g.id), resource_id=str(g.resource_id), scope=g.scope or "")
            for g in (page.value or [] if page else [])
            if g.consent_type == "AllPrincipals"
        ]

    async def create_grant(self, client_sp_id: str, resource_sp_id: str, scopes: Sequence[str]) -> None:
        from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant

        body = OAuth2PermissionGrant(
            client_id=client_sp_id,
            consent_type="AllPrincipals",
            resource_id=resource_sp_id,
            scope=" ".join(scopes),
        )
        await self._call(
            "grant delegated permissions",
            lambda: self.client.oauth2_permission_grants.post(body),
            write=True,
            idempotent=False,
            dependent=True,
            needs=GRANTS_PERMISSION,
        )

    async def update_grant(self, grant_id: str, scopes: Sequence[str]) -> None:
        from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant

        builder = self.client.oauth2_permission_grants.by_o_auth2_permission_grant_id(grant_id)
        await self._call(
            "update grant",
            lambda: builder.patch(OAuth2PermissionGrant(scope=" ".join(scopes))),
            write=True,
            needs=GRANTS_PERMISSION,
        )

    async def delete_grant(self, grant_id: str) -> None:
        builder = self.client.oauth2_permission_grants.by_o_auth2_permission_grant_id(grant_id)
        try:
            await self._call("delete grant", builder.delete, write=True, needs=GRANTS_PERMISSION)
        except NotFound:
            pass

    async def role_assignments_of(self, client_sp_id: str) -> list[RoleAssignment]:
        builder = self.client.service_principals.by_service_principal_id(client_sp_id).app_role_assignments
        page = await self._call("list app role assignments", builder.get, dependent=True)
        return [
            RoleAssignment(id=str(a.id), resource_id=str(a.resource_id), app_role_id=str(a.app_role_id))
            for a in (page.value or [] if page else [])
        ]

    async def assign_role(self, client_sp_id: str, resource_sp_id: str, app_role_id: str) -> None:
        from msgraph.generated.models.app_role_assignment import AppRoleAssignment

        body = AppRoleAssignment(
            principal_id=uuid.UUID(client_sp_id),
            resource_id=uuid.UUID(resource_sp_id),
            app_role_id=uuid.UUID(app_role_id),
        )
        builder = self.client.service_principals.by_service_principal_id(resource_sp_id).app_role_assigned_to
        try:
            await self._call(
                "grant application permission",
                lambda: builder.post(body),
                write=True,
                idempotent=False,
                dependent=True,
                needs=ASSIGNMENTS_PERMISSION,
            )
        except PermanentError as error:
            # A concurrent copy of the request assigned it first: the outcome we wanted.
            if "already exists" not in error.message.lower():
                raise

    async def delete_role_assignment(self, client_sp_id: str, assignment_id: str) -> None:
        builder = self.client.service_principals.by_service_principal_id(
            client_sp_id
        ).app_role_assignments.by_app_role_assignment_id(assignment_id)
        try:
            await self._call(
                "revoke application permission", builder.delete, write=True, needs=ASSIGNMENTS_PERMISSION
            )
        except NotFound:
            pass


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _password_info(credential: PasswordCredential) -> PasswordInfo:
    return PasswordInfo(
        key_id=str(credential.key_id),
        display_name=credential.display_name or "",
        hint=credential.hint or "",
        start=_utc(credential.start_date_time),
        end=_utc(credential.end_date_time),
    )


def _app_record(app: Application) -> AppRecord:
    return AppRecord(
        object_id=str(app.id),
        app_id=str(app.app_id),
        unique_name=app.unique_name,
        display_name=app.display_name or "",
        tags=tuple(app.tags or ()),
        passwords=tuple(_password_info(p) for p in app.password_credentials or []),
    )
