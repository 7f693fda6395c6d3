"""The consent gateway against the emulator: resource APIs by appId or identifier URI, delegated
permission grants and app role assignments, each method's documented contract."""

from __future__ import annotations

import uuid

import pytest

from emulator.launcher import RunningEmulator
from shared.adapters.graph.applications import ApplicationsGateway
from shared.adapters.graph.consent import ConsentGateway
from shared.domain.errors import NotFound, PermanentError
from shared.domain.records import Grant
from tests.adapters.tenant_objects import faults_seen, new_app

HEALTHCARE_APIS_APP_ID = "4f6778d8-5aef-43dc-a1ff-b073724b9495"
DICOM_RESOURCE = "https://dicom.healthcareapis.azure.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


async def client_sp(applications: ApplicationsGateway, unique_name: str) -> str:
    """A new application's service principal: the client consent is granted to."""
    app = await new_app(applications, unique_name)
    return await applications.upsert_service_principal(app.app_id)


# ---------------------------------------------------------------- resources


async def test_find_resource_by_app_id(consent: ConsentGateway) -> None:
    resource = await consent.find_resource(HEALTHCARE_APIS_APP_ID)
    assert resource is not None
    assert resource.app_id == HEALTHCARE_APIS_APP_ID
    assert resource.display_name == "Azure Healthcare APIs"
    assert set(resource.scopes) == {"user_impersonation"}
    assert resource.roles == {}
    assert uuid.UUID(resource.service_principal_id) and uuid.UUID(resource.scopes["user_impersonation"])


async def test_find_resource_by_identifier_uri(consent: ConsentGateway) -> None:
    resource = await consent.find_resource(DICOM_RESOURCE)
    assert resource is not None
    assert set(resource.scopes) == {"user_impersonation", "Dicom.ReadWrite"}
    assert DICOM_RESOURCE in resource.names
    by_app_id = await consent.find_resource(resource.app_id)
    assert by_app_id == resource


async def test_find_resource_lists_only_application_roles(consent: ConsentGateway) -> None:
    graph = await consent.find_resource(GRAPH_APP_ID)
    assert graph is not None
    assert {"User.Read.All", "Application.ReadWrite.OwnedBy"} <= set(graph.roles)
    assert {"User.Read", "openid"} <= set(graph.scopes)


@pytest.mark.parametrize(
    "reference", [str(uuid.UUID(int=0x1234)), "https://unknown.contoso.com", "api://contoso.com/none"]
)
async def test_find_resource_of_an_unknown_reference_is_none(consent: ConsentGateway, reference: str) -> None:
    assert await consent.find_resource(reference) is None


# ---------------------------------------------------------------- delegated permission grants


async def test_grant_update_and_revoke(applications: ApplicationsGateway, consent: ConsentGateway) -> None:
    client = await client_sp(applications, "adapter-grants")
    resource = await consent.find_resource(DICOM_RESOURCE)
    assert resource is not None
    assert await consent.grants_of(client) == []

    await consent.create_grant(client, resource.service_principal_id, ["user_impersonation"])
    [grant] = await consent.grants_of(client)
    assert grant == Grant(id=grant.id, resource_id=resource.service_principal_id, scope="user_impersonation")

    await consent.update_grant(grant.id, ["user_impersonation", "Dicom.ReadWrite"])
    [updated] = await consent.grants_of(client)
    assert updated.id == grant.id
    assert set(updated.scope.split()) == {"user_impersonation", "Dicom.ReadWrite"}

    await consent.delete_grant(grant.id)
    assert await consent.grants_of(client) == []
    await consent.delete_grant(grant.id)  # already gone: succeeds


async def test_a_second_grant_for_the_same_pair_is_refused(
    applications: ApplicationsGateway, consent: ConsentGateway
) -> None:
    client = await client_sp(applications, "adapter-grant-twice")
    resource = await consent.find_resource(HEALTHCARE_APIS_APP_ID)
    assert resource is not None
    await consent.create_grant(client, resource.service_principal_id, ["user_impersonation"])
    with pytest.raises(PermanentError) as exists:
        await consent.create_grant(client, resource.service_principal_id, ["user_impersonation"])
    assert exists.value.code == "Request_MultipleObjectsWithSameKeyValue"
    assert len(await consent.grants_of(client)) == 1


async def test_delete_grant_of_a_missing_id_succeeds(consent: ConsentGateway) -> None:
    await consent.delete_grant(str(uuid.uuid4()))


async def test_update_grant_of_a_missing_id_is_not_found(consent: ConsentGateway) -> None:
    with pytest.raises(NotFound):
        await consent.update_grant(str(uuid.uuid4()), ["user_impersonation"])


# ---------------------------------------------------------------- app role assignments


async def test_assign_and_revoke_an_application_permission(
    applications: ApplicationsGateway, consent: ConsentGateway
) -> None:
    client = await client_sp(applications, "adapter-roles")
    graph = await consent.find_resource(GRAPH_APP_ID)
    assert graph is not None
    role_id = graph.roles["User.Read.All"]
    assert await consent.role_assignments_of(client) == []

    await consent.assign_role(client, graph.service_principal_id, role_id)
    await consent.assign_role(client, graph.service_principal_id, role_id)  # exists already: succeeds
    [assignment] = await consent.role_assignments_of(client)
    assert (assignment.resource_id, assignment.app_role_id) == (graph.service_principal_id, role_id)

    await consent.delete_role_assignment(client, assignment.id)
    assert await consent.role_assignments_of(client) == []
    await consent.delete_role_assignment(client, assignment.id)  # already gone: succeeds


async def test_a_503_on_a_resource_lookup_is_retried(
    emulator: RunningEmulator, consent: ConsentGateway
) -> None:
    emulator.admin.faults(
        [
            {
                "kind": "status",
                "service": "graph",
                "status": 503,
                "method": "GET",
                "path": "/servicePrincipals$",
                "times": 1,
            }
        ]
    )
    emulator.admin.clear_requests()
    resource = await consent.find_resource(HEALTHCARE_APIS_APP_ID)
    assert resource is not None and resource.app_id == HEALTHCARE_APIS_APP_ID
    assert faults_seen(emulator, "graph", "GET", "/servicePrincipals") == ["status:503", None]


# ---------------------------------------------------------------- resources kept by the process


def _resource_reads(emulator: RunningEmulator) -> int:
    return len(faults_seen(emulator, "graph", "GET", "/servicePrincipals"))


async def test_a_found_resource_is_kept_for_its_time_to_live(
    emulator: RunningEmulator, consent: ConsentGateway
) -> None:
    from shared.adapters.graph.consent import RESOURCE_TTL_SECONDS

    now = [0.0]
    kept = ConsentGateway(consent.calls, clock=lambda: now[0])
    emulator.admin.clear_requests()
    first = await kept.find_resource(DICOM_RESOURCE)
    assert await kept.find_resource(DICOM_RESOURCE.upper()) == first  # identifier URIs: no case
    assert _resource_reads(emulator) == 1

    assert await kept.find_resource(DICOM_RESOURCE, fresh=True) == first
    assert _resource_reads(emulator) == 2
    now[0] += RESOURCE_TTL_SECONDS
    assert await kept.find_resource(DICOM_RESOURCE) == first
    assert _resource_reads(emulator) == 3

    kept.forget_resources()
    await kept.find_resource(DICOM_RESOURCE)
    assert _resource_reads(emulator) == 4


async def test_not_found_is_never_kept(emulator: RunningEmulator, consent: ConsentGateway) -> None:
    kept = ConsentGateway(consent.calls)
    emulator.admin.clear_requests()
    assert await kept.find_resource("api://not-in-this-tenant") is None
    assert await kept.find_resource("api://not-in-this-tenant") is None
    assert _resource_reads(emulator) == 2


async def test_a_refused_grant_forgets_the_kept_resources(
    emulator: RunningEmulator, applications: ApplicationsGateway, consent: ConsentGateway
) -> None:
    kept = ConsentGateway(consent.calls)
    client = await client_sp(applications, "adapter-forget")
    resource = await kept.find_resource(DICOM_RESOURCE)
    assert resource is not None
    emulator.admin.clear_requests()
    with pytest.raises(PermanentError):  # a resource id the tenant does not have
        await kept.create_grant(client, str(uuid.uuid4()), ["user_impersonation"])
    await kept.find_resource(DICOM_RESOURCE)
    assert _resource_reads(emulator) == 1
