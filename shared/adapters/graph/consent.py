"""Microsoft Graph gateway for admin consent: resource APIs' permission ids, delegated
permission grants and app role assignments.

Every method says what it returns, what it raises (shared.domain.errors types, never an SDK
error) and the Graph application permission it needs. Calls run through ``GraphCalls``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.adapters.graph.calls import ASSIGNMENTS_PERMISSION, GRANTS_PERMISSION, GraphCalls
from shared.domain.errors import NotFound, PermanentError
from shared.domain.records import Grant, ResourceApi, RoleAssignment

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation

SP_SELECT = ["id", "appId", "displayName", "oauth2PermissionScopes", "appRoles", "servicePrincipalNames"]
# How long a resource API's service principal and permission ids are reused without reading
# them again. They are stable within a tenant (a scope's id never changes), so this bounds only
# how late the service sees a scope or role disabled or an API's service principal deleted.
RESOURCE_TTL_SECONDS = 600.0


class ConsentGateway:
    """Resource APIs and the consent a client holds on them, through one ``GraphCalls``.

    Resource APIs found are kept for ``RESOURCE_TTL_SECONDS`` (one gateway per process), so a
    warm registration resolves its permissions without a round trip. Not-found is never kept,
    and a consent write that Graph refuses forgets every kept resource."""

    def __init__(self, calls: GraphCalls, clock: Callable[[], float] = time.monotonic) -> None:
        self.calls = calls
        self._clock = clock
        self._resources: dict[str, tuple[float, ResourceApi]] = {}

    # -- resources -------------------------------------------------------------------------

    async def find_resource(self, reference: str, *, fresh: bool = False) -> ResourceApi | None:
        """The service principal of a resource API, by appId (GUID) or identifier URI, with the
        ids of its enabled scopes and application roles by name: the one found within the last
        ``RESOURCE_TTL_SECONDS`` unless ``fresh``.

        Returns None when the tenant has no such service principal. Raises ``TransientError``.
        Needs ``Application.ReadWrite.OwnedBy`` (which reads service principals).
        """
        key = reference.casefold()
        kept = None if fresh else self._resources.get(key)
        if kept is not None and self._clock() < kept[0]:
            return kept[1]
        found = await self._read_resource(reference)
        if found is None:
            self._resources.pop(key, None)
        else:
            self._resources[key] = (self._clock() + RESOURCE_TTL_SECONDS, found)
        return found

    def kept_resource(self, reference: str) -> ResourceApi | None:
        """The resource API ``find_resource`` would answer without a request, if any."""
        kept = self._resources.get(reference.casefold())
        return kept[1] if kept is not None and self._clock() < kept[0] else None

    def forget_resources(self) -> None:
        """Read every resource API again on next use."""
        self._resources.clear()

    async def _read_resource(self, reference: str) -> ResourceApi | None:
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
        page = await self.calls.call(
            f"find service principal {reference}", lambda: self.calls.client.service_principals.get(config)
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
            names=tuple(str(n) for n in sp.service_principal_names or []),
        )

    # -- applications ----------------------------------------------------------------------

    async def grants_of(self, client_sp_id: str) -> list[Grant]:
        """The AllPrincipals delegated permission grants held by client ``client_sp_id``.

        Raises ``ReplicationPending`` while a new service principal replicates, ``PermissionDenied``,
        ``TransientError``. Needs ``DelegatedPermissionGrant.ReadWrite.All``."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.oauth2_permission_grants.oauth2_permission_grants_request_builder import (
            Oauth2PermissionGrantsRequestBuilder,
        )

        params = Oauth2PermissionGrantsRequestBuilder.Oauth2PermissionGrantsRequestBuilderGetQueryParameters(
            filter=f"clientId eq '{client_sp_id}'"
        )
        page = await self.calls.call(
            "list grants",
            lambda: self.calls.client.oauth2_permission_grants.get(
                RequestConfiguration(query_parameters=params)
            ),
            dependent=True,
            needs=GRANTS_PERMISSION,
        )
        return [
            Grant(id=str(g.id), resource_id=str(g.resource_id), scope=g.scope or "")
            for g in (page.value or [] if page else [])
            if g.consent_type == "AllPrincipals"
        ]

    async def create_grant(self, client_sp_id: str, resource_sp_id: str, scopes: Sequence[str]) -> None:
        """Grant ``scopes`` of resource ``resource_sp_id`` to client ``client_sp_id`` for all users.

        Not retried on a lost response. Raises ``PermanentError`` with code
        ``Request_MultipleObjectsWithSameKeyValue`` when a grant for the pair exists,
        ``ReplicationPending``, ``PermissionDenied``, ``TransientError``. Needs
        ``DelegatedPermissionGrant.ReadWrite.All``."""
        from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant

        body = OAuth2PermissionGrant(
            client_id=client_sp_id,
            consent_type="AllPrincipals",
            resource_id=resource_sp_id,
            scope=" ".join(scopes),
        )
        grants = self.calls.client.oauth2_permission_grants
        await self._post(
            "grant delegated permissions", lambda: grants.to_post_request_information(body), GRANTS_PERMISSION
        )

    async def _post(self, what: str, request: Callable[[], RequestInformation], needs: str) -> None:
        """POST one grant or app role assignment, never resent after a lost answer. A refusal
        other than "it exists already" forgets the kept resource APIs: one may have been kept
        too long, so the next attempt reads them again. Raises what ``GraphCalls.call`` raises."""
        try:
            await self.calls.call(
                what,
                lambda: self.calls.json(request()),
                write=True,
                idempotent=False,
                dependent=True,
                needs=needs,
            )
        except PermanentError as error:
            if not _exists(error):
                self.forget_resources()
            raise

    async def update_grant(self, grant_id: str, scopes: Sequence[str]) -> None:
        """Set the grant's scopes to exactly ``scopes``.

        Raises ``NotFound``, ``PermissionDenied``, ``TransientError``. Needs
        ``DelegatedPermissionGrant.ReadWrite.All``."""
        from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant

        builder = self.calls.client.oauth2_permission_grants.by_o_auth2_permission_grant_id(grant_id)
        await self.calls.call(
            "update grant",
            lambda: builder.patch(OAuth2PermissionGrant(scope=" ".join(scopes))),
            write=True,
            needs=GRANTS_PERMISSION,
        )

    async def delete_grant(self, grant_id: str) -> None:
        """Revoke the grant; succeeds when it is already gone.

        Raises ``PermissionDenied``, ``TransientError``. Needs ``DelegatedPermissionGrant.ReadWrite.All``."""
        builder = self.calls.client.oauth2_permission_grants.by_o_auth2_permission_grant_id(grant_id)
        try:
            await self.calls.call("delete grant", builder.delete, write=True, needs=GRANTS_PERMISSION)
        except NotFound:
            pass

    async def role_assignments_of(self, client_sp_id: str) -> list[RoleAssignment]:
        """The app role assignments (application permissions) held by client ``client_sp_id``.

        Raises ``ReplicationPending`` while a new service principal replicates, ``PermissionDenied``,
        ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` (reading assignments of an owned
        principal)."""
        builder = self.calls.client.service_principals.by_service_principal_id(
            client_sp_id
        ).app_role_assignments
        page = await self.calls.call("list app role assignments", builder.get, dependent=True)
        return [
            RoleAssignment(id=str(a.id), resource_id=str(a.resource_id), app_role_id=str(a.app_role_id))
            for a in (page.value or [] if page else [])
        ]

    async def assign_role(self, client_sp_id: str, resource_sp_id: str, app_role_id: str) -> None:
        """Grant app role ``app_role_id`` of resource ``resource_sp_id`` to client ``client_sp_id``.

        Succeeds when the assignment exists already. Not retried on a lost response. Raises
        ``ReplicationPending``, ``PermissionDenied``, ``TransientError``. Needs
        ``AppRoleAssignment.ReadWrite.All``."""
        from msgraph.generated.models.app_role_assignment import AppRoleAssignment

        body = AppRoleAssignment(
            principal_id=uuid.UUID(client_sp_id),
            resource_id=uuid.UUID(resource_sp_id),
            app_role_id=uuid.UUID(app_role_id),
        )
        builder = self.calls.client.service_principals.by_service_principal_id(
            resource_sp_id
        ).app_role_assigned_to
        try:
            await self._post(
                "grant application permission",
                lambda: builder.to_post_request_information(body),
                ASSIGNMENTS_PERMISSION,
            )
        except PermanentError as error:
            # A concurrent copy of the request assigned it first: the outcome we wanted.
            if not _exists(error):
                raise

    async def delete_role_assignment(self, client_sp_id: str, assignment_id: str) -> None:
        """Revoke one app role assignment of client ``client_sp_id``; succeeds when already gone.

        Raises ``PermissionDenied``, ``TransientError``. Needs ``AppRoleAssignment.ReadWrite.All``."""
        builder = self.calls.client.service_principals.by_service_principal_id(
            client_sp_id
        ).app_role_assignments.by_app_role_assignment_id(assignment_id)
        try:
            await self.calls.call(
                "revoke application permission", builder.delete, write=True, needs=ASSIGNMENTS_PERMISSION
            )
        except NotFound:
            pass


def _exists(error: PermanentError) -> bool:
    """Whether Graph refused a grant or an app role assignment because it exists already."""
    return (
        error.code == "Request_MultipleObjectsWithSameKeyValue" or "already exists" in error.message.lower()
    )
