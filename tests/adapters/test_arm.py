"""The Resource Manager gateway against the emulator: role assignments made under the
service's names, listed at exactly their scope, removed by name; Resource Manager's errors as
the service's, told apart by code."""

from __future__ import annotations

import uuid

import pytest
from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from emulator.launcher import RunningEmulator
from shared.adapters.arm import RoleAssignmentsGateway
from shared.domain import fencing
from shared.domain.data_access import DATA_ROLES, Assignment, DataRole, HealthDataService
from shared.domain.errors import PermissionDenied
from shared.services.dependencies import Dependencies

OWNER = DataRole("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "fhir")


@pytest.fixture
async def principal(deps: Dependencies) -> str:
    """A service principal to hold roles: the service's own (it exists since the seed)."""
    return await deps.applications.service_principal_id_of(deps.settings.azure_client_id or "")


@pytest.fixture
def fhir(deps: Dependencies) -> HealthDataService:
    return deps.settings.data_access_policy.services["fhir"]


async def test_assign_is_idempotent_and_listed_at_its_scope(
    role_assignments: RoleAssignmentsGateway, fhir: HealthDataService, principal: str
) -> None:
    reader = Assignment(fhir, DATA_ROLES["FHIR Data Reader"], principal)
    assert await role_assignments.assign(reader)
    assert await role_assignments.assign(reader)  # the same name again: the same assignment
    [listed] = await role_assignments.assigned(fhir.resource_id, principal)
    assert (listed.name, listed.principal_id) == (reader.name, principal)
    assert listed.role_definition_id.endswith(reader.role.id)
    assert await role_assignments.remove(reader)
    assert not await role_assignments.remove(reader)  # gone already
    assert await role_assignments.assigned(fhir.resource_id, principal) == []


async def test_a_role_held_under_another_name_is_reported_not_duplicated(
    role_assignments: RoleAssignmentsGateway,
    fhir: HealthDataService,
    principal: str,
    admin_arm: AuthorizationManagementClient,
) -> None:
    reader = Assignment(fhir, DATA_ROLES["FHIR Data Reader"], principal)
    await admin_arm.role_assignments.create(
        fhir.resource_id,
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=fhir.role_definition_id(reader.role),
            principal_id=principal,
            principal_type="ServicePrincipal",
        ),
    )
    assert await role_assignments.assign(reader) is False  # RoleAssignmentExists, by its code
    [listed] = await role_assignments.assigned(fhir.resource_id, principal)
    assert listed.name != reader.name


async def test_a_role_the_condition_refuses_is_permission_denied(
    role_assignments: RoleAssignmentsGateway, fhir: HealthDataService, principal: str
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        await role_assignments.assign(Assignment(fhir, OWNER, principal))
    assert refused.value.code == "data_access_not_permitted"
    assert "Role Based Access Control Administrator" in refused.value.message
    assert await role_assignments.assigned(fhir.resource_id, principal) == []


class _Lost:
    def check(self) -> None:
        raise fencing.ExclusivityLost("LeaseLost", "the application's lease lapsed")


async def test_no_write_once_the_lease_is_lost(
    emulator: RunningEmulator,
    role_assignments: RoleAssignmentsGateway,
    fhir: HealthDataService,
    principal: str,
) -> None:
    emulator.admin.clear_requests()
    with fencing.fenced(_Lost()), pytest.raises(fencing.ExclusivityLost):
        await role_assignments.assign(Assignment(fhir, DATA_ROLES["FHIR Data Reader"], principal))
    assert [e for e in emulator.admin.requests()["entries"] if e["service"] == "arm"] == []
