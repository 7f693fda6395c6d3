"""Azure Resource Manager gateway: the data-plane role assignments a client holds on FHIR and
DICOM services (Azure RBAC), through azure-mgmt-authorization's async client (api-version
2022-04-01).

Every assignment is PUT under the name the service gives it (shared.domain.data_access), with
``principalType: ServicePrincipal``: the documented way past ``PrincipalNotFound`` for a
service principal created a moment ago (the SDK's model would otherwise send ``User``).
Errors are told apart by Resource Manager's error **code**, never its message, which ARM has
changed without a version bump. Retries are this gateway's (shared.adapters.azure_calls); a
write asks the lease's fence before every attempt.

The service identity needs *Role Based Access Control Administrator* on the workspace (or
each service), with the condition that limits it to the FHIR and DICOM data roles (README).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from shared.adapters.azure_calls import call_azure
from shared.domain.data_access import Assignment, Existing
from shared.domain.errors import (
    NotFound,
    PermanentError,
    PermissionDenied,
    ReplicationPending,
    ServiceError,
    TransientError,
)

if TYPE_CHECKING:
    from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient

# A service principal created a moment ago: tries, ``REPLICATION_WAIT`` seconds apart, before
# the delivery is retried as a whole.
REPLICATION_TRIES = 4
REPLICATION_WAIT = 2.0
NEEDS = (
    "Role Based Access Control Administrator on the Health Data Services workspace, with the condition "
    "that allows assigning and deleting the FHIR and DICOM data roles (README)"
)


def _code(error: Exception) -> str:
    """Resource Manager's error code (``{"error": {"code"}}``), or the HTTP status."""
    code = getattr(getattr(error, "error", None), "code", None)
    return str(code) if code else str(getattr(error, "status_code", "") or "")


def _mapped(what: str, error: Exception) -> ServiceError | None:
    """A shared.domain.errors error for one of azure-core's, holding only text."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError("ResourceManagerUnreachable", f"{what}: {type(error).__name__}")
    if not isinstance(error, HttpResponseError):
        return None
    status, code = error.status_code or 0, _code(error)
    detail = f"{what}: Resource Manager answered {status} {code}"
    if code == "PrincipalNotFound":
        return ReplicationPending(code, f"{detail}: the service principal has not replicated yet")
    if isinstance(error, ClientAuthenticationError) and status == 401:
        return TransientError("TokenUnavailable", detail)
    if status == 429 or status >= 500:
        return TransientError("ResourceManagerUnavailable", detail)
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return PermissionDenied(
            "data_access_not_permitted", f"{detail}; the service identity needs {NEEDS}", field="dataAccess"
        )
    if code in ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound"):
        return NotFound(
            "data_service_not_found",
            f"{detail}: the catalog (HEALTH_DATA_SERVICES) names a service that does not exist",
            field="dataAccess",
        )
    return PermanentError(code or str(status), detail, field="dataAccess")


class RoleAssignmentsGateway:
    def __init__(self, client: AuthorizationManagementClient) -> None:
        self.client = client

    async def assigned(self, scope: str, principal_id: str) -> list[Existing]:
        """The principal's role assignments at exactly ``scope`` (inherited ones from above,
        and ones on resources below, are not this scope's). Needs
        ``Microsoft.Authorization/roleAssignments/read``."""

        async def collect() -> list[Existing]:
            found: list[Existing] = []
            pages = self.client.role_assignments.list_for_scope(
                scope, filter=f"principalId eq '{principal_id}'"
            )
            async for item in pages:
                if str(item.scope or "").lower() == scope.lower():
                    found.append(
                        Existing(
                            scope=str(item.scope),
                            name=str(item.name),
                            role_definition_id=str(item.role_definition_id),
                            principal_id=str(item.principal_id),
                        )
                    )
            return found

        return await call_azure(f"list role assignments at {scope}", collect, _mapped)

    async def assign(self, assignment: Assignment) -> bool:
        """PUT the assignment under its name: True once it exists; False when Resource Manager
        answers ``RoleAssignmentExists``, the principal holding the role at the scope through an
        assignment of another name (someone else's, which converge never removes). Raises
        ``ReplicationPending`` if the principal is still unknown after ``REPLICATION_TRIES``,
        ``PermissionDenied`` when the identity may not assign this role. Needs
        ``Microsoft.Authorization/roleAssignments/write``."""
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        parameters = RoleAssignmentCreateParameters(
            role_definition_id=assignment.service.role_definition_id(assignment.role),
            principal_id=assignment.principal_id,
            principal_type="ServicePrincipal",
            description="managed by entra-app-registration-service",
        )
        what = f"assign {assignment.role.name} on {assignment.service.name}"
        for tries in range(1, REPLICATION_TRIES + 1):
            try:
                await call_azure(
                    what,
                    lambda: self.client.role_assignments.create(
                        assignment.scope, assignment.name, parameters
                    ),
                    _mapped,
                    write=True,
                )
                return True
            except ReplicationPending:
                if tries == REPLICATION_TRIES:
                    raise
            except PermanentError as error:
                if error.code == "RoleAssignmentExists":
                    return False
                raise
            await asyncio.sleep(REPLICATION_WAIT * tries)
        raise AssertionError("unreachable")

    async def remove(self, assignment: Assignment) -> bool:
        """DELETE the assignment by its name: True if it existed. Needs
        ``Microsoft.Authorization/roleAssignments/delete``."""
        deleted = await call_azure(
            f"remove {assignment.role.name} on {assignment.service.name}",
            lambda: self.client.role_assignments.delete(assignment.scope, assignment.name),
            _mapped,
            write=True,
        )
        return deleted is not None
