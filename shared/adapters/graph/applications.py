"""Microsoft Graph gateway for applications, their service principals, their client secrets and
(shared.adapters.graph.federated) their federated identity credentials.

Every method says what it returns, what it raises (shared.domain.errors types, never an SDK
error) and the Graph application permission it needs. Calls run through ``GraphCalls``
(retries, pacing, error mapping); callers get plain records (shared.domain.records).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from shared.adapters.graph.calls import GraphCalls
from shared.adapters.graph.federated import FederatedCredentialsGateway
from shared.adapters.graph.keys import graph_time, key_info_from_json
from shared.domain.errors import NotFound, PermanentError, ReplicationPending, TransientError
from shared.domain.records import AppRecord, DesiredApplication, NewPassword, PasswordInfo
from shared.domain.secret_value import SecretValue

if TYPE_CHECKING:
    from msgraph.generated.service_principals.item.owned_objects.graph_application.graph_application_request_builder import (
        GraphApplicationRequestBuilder,
    )

KNOWN_NAMES = 10_000
APP_SELECT = [
    "id",
    "appId",
    "uniqueName",
    "displayName",
    "tags",
    "passwordCredentials",
    "keyCredentials",
    "createdDateTime",
    "serviceManagementReference",
]


class ApplicationsGateway(FederatedCredentialsGateway):
    """Applications, service principals, password credentials and (inherited, in
    shared.adapters.graph.federated) federated identity credentials, through one ``GraphCalls``."""

    def __init__(self, calls: GraphCalls) -> None:
        self.calls = calls
        # uniqueNames this process has seen taken (most recently seen last): a registration
        # creates early only an application it has no reason to think exists.
        self._existing: OrderedDict[str, None] = OrderedDict()

    def known_to_exist(self, unique_name: str) -> bool:
        """Whether this process has seen an application of ``unique_name`` (lately)."""
        return unique_name.casefold() in self._existing

    def _seen(self, unique_name: str | None) -> None:
        if unique_name:
            self._existing[unique_name.casefold()] = None
            self._existing.move_to_end(unique_name.casefold())
            if len(self._existing) > KNOWN_NAMES:
                self._existing.popitem(last=False)

    # -- applications ----------------------------------------------------------------------

    @staticmethod
    def _application_json(desired: DesiredApplication) -> dict[str, Any]:
        """The application's properties as Graph's JSON (what msgraph-sdk's ``Application``
        model would serialize: a property left None is not sent, so a PATCH leaves it alone)."""
        body: dict[str, Any] = {
            "displayName": desired.display_name,
            "signInAudience": "AzureADMyOrg",
            "serviceManagementReference": desired.service_management_reference,
            # App instance property lock, all sensitive properties (Microsoft's recommendation).
            "servicePrincipalLockConfiguration": {"isEnabled": True, "allProperties": True},
            "tags": list(desired.tags),
            "notes": desired.notes,
            "isFallbackPublicClient": desired.is_fallback_public_client,
            "web": {"redirectUris": list(desired.web_redirect_uris)},
            "publicClient": {"redirectUris": list(desired.public_client_redirect_uris)},
            "spa": {"redirectUris": list(desired.spa_redirect_uris)},
            "requiredResourceAccess": [
                {
                    "resourceAppId": access.resource_app_id,
                    "resourceAccess": [{"id": str(uuid.UUID(i)), "type": "Scope"} for i in access.scope_ids]
                    + [{"id": str(uuid.UUID(i)), "type": "Role"} for i in access.role_ids],
                }
                for access in desired.required_resource_access
            ],
        }
        return {name: value for name, value in body.items() if value is not None}

    async def create_application(self, unique_name: str, desired: DesiredApplication) -> AppRecord | None:
        """Create the application ``unique_name``, only if no application has that uniqueName:
        ``POST /applications`` with it, which Graph refuses for a taken one
        (``Request_MultipleObjectsWithSameKeyValue``). Never updates an existing application.

        Returns the new application, or None when the uniqueName is taken. Raises
        ``PermissionDenied``, ``TransientError``. Needs ``Application.ReadWrite.OwnedBy``.
        """
        body = {**self._application_json(desired), "uniqueName": unique_name}
        applications = self.calls.client.applications
        try:
            created = await self.calls.call(
                f"create application {unique_name}",
                lambda: self.calls.json_write("POST", applications, body),
                write=True,
                idempotent=False,
            )
        except PermanentError as error:
            if error.code == "Request_MultipleObjectsWithSameKeyValue":
                self._seen(unique_name)
                return None
            raise
        if created is None:
            raise TransientError(
                "Request_Empty", f"create application {unique_name}: Graph answered no object"
            )
        self._seen(unique_name)
        return _app_record_from_json(created)

    async def update_application(self, existing: AppRecord, desired: DesiredApplication) -> AppRecord:
        """Set ``existing``'s properties to ``desired`` (``PATCH /applications/{id}``), read
        just before under the application's lease: what Graph's 204 leaves out is what
        ``existing`` says (the credentials and ids, which this request does not change).

        Raises ``PermissionDenied`` when the service does not own it, ``NotFound`` when it is
        gone, ``TransientError``. Needs ``Application.ReadWrite.OwnedBy``.
        """
        body = self._application_json(desired)
        builder = self.calls.client.applications.by_application_id(existing.object_id)
        await self.calls.call(
            f"update application {existing.unique_name}",
            lambda: self.calls.json_write("PATCH", builder, body),
            write=True,
        )
        return dataclasses.replace(
            existing,
            display_name=desired.display_name,
            tags=tuple(desired.tags),
            service_management_reference=desired.service_management_reference,
        )

    async def get_application_by_unique_name(
        self, unique_name: str, dependent: bool = False
    ) -> AppRecord | None:
        """The application whose uniqueName is ``unique_name``, or None when there is none.

        Raises ``PermissionDenied`` without read access, ``ReplicationPending`` (``dependent``: right
        after a create), ``TransientError``. Needs ``Application.ReadWrite.OwnedBy``."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
            ApplicationsWithUniqueNameRequestBuilder,
        )

        params = ApplicationsWithUniqueNameRequestBuilder.ApplicationsWithUniqueNameRequestBuilderGetQueryParameters(
            select=APP_SELECT
        )
        builder = self.calls.app_by_unique_name(unique_name)
        config = RequestConfiguration(query_parameters=params)
        try:
            app = await self.calls.call(
                f"read application {unique_name}",
                lambda: self.calls.json(builder.to_get_request_information(config)),
                dependent=dependent,
            )
        except NotFound:
            self._existing.pop(unique_name.casefold(), None)
            return None
        if not app:
            return None
        self._seen(unique_name)
        return _app_record_from_json(app)

    async def get_application(self, object_id: str, dependent: bool = True) -> AppRecord:
        """The application with object id ``object_id``.

        Raises ``NotFound`` when it does not exist (``ReplicationPending`` instead when
        ``dependent``, right after a create), ``TransientError``. Needs ``Application.ReadWrite.OwnedBy``."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.applications.item.application_item_request_builder import (
            ApplicationItemRequestBuilder,
        )

        params = ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
            select=APP_SELECT
        )
        builder = self.calls.client.applications.by_application_id(object_id)
        config = RequestConfiguration(query_parameters=params)
        app = await self.calls.call(
            f"read application {object_id}",
            lambda: self.calls.json(builder.to_get_request_information(config)),
            dependent=dependent,
        )
        if app is None:
            raise NotFound("Request_ResourceNotFound", f"application {object_id}")
        return _app_record_from_json(app)

    async def delete_application(self, object_id: str) -> bool:
        """Delete the application (Entra keeps it restorable for 30 days).

        Returns True when this call (or its earlier attempt whose response was lost) deleted it,
        False when it was already gone. Raises ``PermissionDenied`` when the service does not
        own it, ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` and ownership.
        """
        builder = self.calls.client.applications.by_application_id(object_id)
        try:
            await self.calls.call(f"delete application {object_id}", builder.delete, write=True)
        except NotFound as gone:
            return gone.after_lost_response  # our earlier attempt deleted it
        return True

    async def owned_applications(
        self, owner_sp_id: str, page_size: int = 999, select: Sequence[str] = APP_SELECT
    ) -> AsyncIterator[AppRecord]:
        """The applications ``owner_sp_id`` owns, page by page (never all in memory), with only
        the ``select``ed properties filled in. The ``microsoft.graph.application`` cast leaves
        out the service principals it also owns: half the objects to page through and parse.

        Yields ``AppRecord``s. Raises ``NotFound`` for an unknown owner, ``TransientError``.
        Needs ``Application.ReadWrite.OwnedBy``.
        """
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals.item.owned_objects.graph_application.graph_application_request_builder import (
            GraphApplicationRequestBuilder,
        )

        params = GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
            select=list(select), top=page_size
        )
        builder = self.calls.client.service_principals.by_service_principal_id(
            owner_sp_id
        ).owned_objects.graph_application
        # Read as JSON: kiota's backed models cost about 0.5 ms of CPU per application, and a
        # parsed page is a web of reference cycles that only the cyclic collector frees
        # (measured: 10,000 applications took seconds and 88 MB).
        config = RequestConfiguration(query_parameters=params)
        page = await self.calls.call(
            "list owned applications",
            lambda: self.calls.json_page(builder.to_get_request_information(config)),
        )
        while page is not None:
            records = [_app_record_from_json(item) for item in page.get("value") or []]
            next_link = page.get("@odata.nextLink")
            del page
            for record in records:
                yield record
            del records
            if not next_link:
                return
            next_page = builder.with_url(next_link)
            page = await self.calls.call(
                "list owned applications (next page)",
                functools.partial(self._json_page, next_page),
            )

    async def _json_page(self, page: GraphApplicationRequestBuilder) -> dict[str, Any] | None:
        return await self.calls.json_page(page.to_get_request_information())

    async def owner_ids(self, object_id: str) -> set[str]:
        """The object ids of the application's owners (users and service principals).

        Raises ``NotFound`` when the application does not exist, ``TransientError``. Needs
        ``Application.ReadWrite.OwnedBy``.
        """
        builder = self.calls.client.applications.by_application_id(object_id).owners
        page = await self.calls.call(f"list owners of {object_id}", builder.get)
        return {str(o.id) for o in (page.value or [] if page else []) if o.id}

    async def service_principal_id_of(self, app_id: str) -> str:
        """The object id of the service principal of ``app_id`` (e.g. the service's own identity).

        Raises ``NotFound`` when the app has none, ``TransientError``. Needs
        ``Application.ReadWrite.OwnedBy`` (which reads service principals).
        """
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
            ServicePrincipalsWithAppIdRequestBuilder,
        )

        params = ServicePrincipalsWithAppIdRequestBuilder.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters(
            select=["id"]
        )
        builder = self.calls.sp_by_app_id(app_id)
        sp = await self.calls.call(
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
        """A new client secret on the application (``addPassword``): the only moment the value
        exists outside Key Vault. Not retried on a lost response (a second call would make a
        second secret).

        Returns ``NewPassword`` (the value as a ``SecretValue``). Raises ``PolicyViolation``
        when a tenant app-management policy refuses it, ``TransientError`` (``LostResponse``
        when the call may have taken effect), ``PermissionDenied``. Needs
        ``Application.ReadWrite.OwnedBy`` and ownership.
        """
        from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
            AddPasswordPostRequestBody,
        )
        from msgraph.generated.models.password_credential import PasswordCredential

        body = AddPasswordPostRequestBody(
            password_credential=PasswordCredential(
                display_name=display_name, start_date_time=start, end_date_time=end
            )
        )
        builder = self.calls.client.applications.by_application_id(object_id).add_password
        created = await self.calls.call(
            f"add password to {object_id}",
            lambda: self.calls.json(builder.to_post_request_information(body)),
            write=True,
            idempotent=False,
            dependent=True,
        )
        # The value goes into a SecretValue at once, and out of the answer.
        text = (created or {}).pop("secretText", None)
        if not text or created is None:
            raise TransientError("EmptyResponse", "addPassword answered without a secret")
        secret = SecretValue(str(text))
        del text
        return NewPassword(info=_password_info_from_json(created), secret=secret)

    async def remove_password(self, object_id: str, key_id: str) -> bool:
        """Remove one client secret (``removePassword``).

        Returns False when the credential (or the app) was already gone. Raises
        ``PermissionDenied``, ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` and
        ownership.
        """
        from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
            RemovePasswordPostRequestBody,
        )

        body = RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
        builder = self.calls.client.applications.by_application_id(object_id).remove_password
        try:
            # Removing a credential twice is harmless, so a lost response may be retried.
            await self.calls.call(f"remove password {key_id}", lambda: builder.post(body), write=True)
        except NotFound:
            return False
        except PermanentError as error:
            if "no password credential" in error.message.lower() or "keyid" in error.message.lower():
                return False
            raise
        return True

    # -- service principals, consent -------------------------------------------------------

    async def upsert_service_principal(self, app_id: str) -> str:
        """The id of the app's service principal, created if missing (Graph's upsert by appId).

        Raises ``ReplicationPending`` while the new app replicates, ``PermissionDenied``,
        ``TransientError``. Needs ``Application.ReadWrite.OwnedBy``.
        """
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.service_principal import ServicePrincipal

        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", "create-if-missing")
        builder = self.calls.sp_by_app_id(app_id)
        body = ServicePrincipal(tags=["WindowsAzureActiveDirectoryIntegratedApp"])
        created = await self.calls.upsert(
            f"upsert service principal {app_id}",
            lambda: self.calls.json(builder.to_patch_request_information(body, config)),
            dependent=True,
        )
        if created is not None and created.get("id"):
            return str(created["id"])
        sp = await self.calls.call(f"read service principal {app_id}", builder.get, dependent=True)
        if sp is None or not sp.id:
            raise ReplicationPending(
                "Request_ResourceNotFound", f"service principal of {app_id} not readable yet"
            )
        return str(sp.id)

    async def delete_service_principal_of(self, app_id: str) -> bool:
        """Delete the service principal of ``app_id``, and with it its consent.

        Returns False when it was already gone. Raises ``PermissionDenied``, ``TransientError``.
        Needs ``Application.ReadWrite.OwnedBy`` and ownership."""
        builder = self.calls.sp_by_app_id(app_id)
        try:
            await self.calls.call(f"delete service principal {app_id}", builder.delete, write=True)
        except NotFound as gone:
            return gone.after_lost_response  # our earlier attempt deleted it
        return True


def _app_record_from_json(app: dict[str, Any]) -> AppRecord:
    """An application read as JSON (``GraphCalls.json``)."""
    return AppRecord(
        object_id=str(app.get("id")),
        app_id=str(app.get("appId")),
        unique_name=app.get("uniqueName"),
        display_name=app.get("displayName") or "",
        tags=tuple(app.get("tags") or ()),
        passwords=tuple(_password_info_from_json(p) for p in app.get("passwordCredentials") or []),
        service_management_reference=app.get("serviceManagementReference"),
        keys=tuple(key_info_from_json(k) for k in app.get("keyCredentials") or []),
    )


def _password_info_from_json(password: dict[str, Any]) -> PasswordInfo:
    """A password credential read as JSON, without its value (``secretText``)."""
    return PasswordInfo(
        key_id=str(password.get("keyId")),
        display_name=password.get("displayName") or "",
        hint=password.get("hint") or "",
        start=graph_time(password.get("startDateTime")),
        end=graph_time(password.get("endDateTime")),
    )
