"""Azure Resource Manager's role assignments, seen only through azure-mgmt-authorization's async
client (api-version 2022-04-01): create, read, list and delete, ARM's conflict and principal
rules (replication lag included, on the emulator clock), Azure RBAC's decision with the
constrained-delegation ABAC condition the service identity holds, and ARM's errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignment, RoleAssignmentCreateParameters
from msgraph.generated.models.service_principal import ServicePrincipal

from emulator.arm import (
    CONTRIBUTOR,
    DICOM_DATA_READER,
    FHIR_DATA_READER,
    FHIR_DATA_WRITER,
    OWNER,
    RBAC_ADMINISTRATOR,
    READER,
    constrained_delegation_condition,
)
from emulator.launcher import RunningEmulator
from tests.emulator.clients import authorization_client, credential
from tests.emulator.graph_helpers import graph, upsert, upsert_app


@dataclass(frozen=True)
class Azure:
    subscription_id: str
    subscription: str
    group: str
    workspace: str
    fhir: str
    dicom: str
    service_sp: str
    admin_sp: str
    alice: str

    def role(self, role_id: str) -> str:
        return f"{self.subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"


@pytest.fixture
def azure(emulator: RunningEmulator) -> Azure:
    s = emulator.settings
    services = json.loads(s["HEALTH_DATA_SERVICES"])
    fhir, dicom = services["fhir"]["resourceId"], services["dicom"]["resourceId"]
    workspace = fhir.rsplit("/fhirservices/", 1)[0]
    group = workspace.split("/providers/", 1)[0]
    snapshot = emulator.admin.snapshot()
    sps = {sp["appId"]: sp["id"] for sp in snapshot["servicePrincipals"]}
    alice = next(u["id"] for u in snapshot["users"] if u["givenName"] == "Alice")
    subscription_id = fhir.split("/")[2]
    return Azure(
        subscription_id,
        f"/subscriptions/{subscription_id}",
        group,
        workspace,
        fhir,
        dicom,
        sps[s["AZURE_CLIENT_ID"]],
        sps[s["EMULATOR_ADMIN_CLIENT_ID"]],
        alice,
    )


@pytest.fixture
async def service_arm(emulator: RunningEmulator) -> AsyncIterator[AuthorizationManagementClient]:
    async with credential(emulator.settings) as cred, authorization_client(emulator.settings, cred) as client:
        yield client


def code(error: HttpResponseError) -> str | None:
    return error.error.code if error.error else None


def params(
    azure: Azure, role_id: str, principal_id: str, **more: str | None
) -> RoleAssignmentCreateParameters:
    """What the service sends: principalType set, since the SDK would otherwise send 'User'."""
    more.setdefault("principal_type", "ServicePrincipal")
    return RoleAssignmentCreateParameters(
        role_definition_id=azure.role(role_id), principal_id=principal_id, **more
    )


async def listed(client: AuthorizationManagementClient, scope: str, filter: str | None = None) -> list[str]:
    return [a.name or "" async for a in client.role_assignments.list_for_scope(scope, filter=filter)]


async def test_an_assignment_is_created_read_listed_and_deleted(
    admin_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    name = str(uuid.uuid4())
    created = await admin_arm.role_assignments.create(
        azure.fhir, name, params(azure, FHIR_DATA_READER, azure.service_sp, description="read FHIR")
    )
    assert (created.id, created.name, created.type) == (
        f"{azure.fhir}/providers/Microsoft.Authorization/roleAssignments/{name}",
        name,
        "Microsoft.Authorization/roleAssignments",
    )
    assert (created.scope, created.role_definition_id, created.principal_id, created.principal_type) == (
        azure.fhir,
        azure.role(FHIR_DATA_READER),
        azure.service_sp,
        "ServicePrincipal",
    )
    assert created.description == "read FHIR" and created.condition is None
    assert created.created_by == azure.admin_sp and created.created_on is not None

    got = await admin_arm.role_assignments.get(azure.fhir, name)
    assert isinstance(got, RoleAssignment) and got.id == created.id

    # no filter: at, above and below the scope; atScope(): at and above only
    assert name in await listed(admin_arm, azure.group)
    assert name not in await listed(admin_arm, azure.group, "atScope()")
    at_fhir = await listed(admin_arm, azure.fhir, "atScope()")
    assert name in at_fhir and len(at_fhir) == 3  # with the seeded Owner and delegated administrator
    assert await listed(admin_arm, azure.subscription, f"principalId eq '{azure.service_sp}'") == [
        next(iter(await listed(admin_arm, azure.workspace, f"assignedTo('{azure.service_sp}')"))),
        name,
    ]
    with pytest.raises(HttpResponseError) as bad_filter:
        await listed(admin_arm, azure.fhir, "roleDefinitionId eq 'x'")
    assert bad_filter.value.status_code == 400 and code(bad_filter.value) == "UnsupportedQuery"

    deleted = await admin_arm.role_assignments.delete(azure.fhir, name)
    assert deleted is not None and deleted.id == created.id
    assert await admin_arm.role_assignments.delete(azure.fhir, name) is None  # 204
    with pytest.raises(ResourceNotFoundError) as gone:
        await admin_arm.role_assignments.get(azure.fhir, name)
    assert code(gone.value) == "RoleAssignmentNotFound"


async def test_a_re_put_is_idempotent_and_conflicts_are_named(
    admin_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    name = str(uuid.uuid4())
    first = await admin_arm.role_assignments.create(
        azure.dicom, name, params(azure, DICOM_DATA_READER, azure.alice, principal_type="User")
    )
    again = await admin_arm.role_assignments.create(
        azure.dicom,
        name,
        params(azure, DICOM_DATA_READER, azure.alice, principal_type="User", description="again"),
    )
    assert (again.id, again.created_on, again.description) == (first.id, first.created_on, "again")

    with pytest.raises(ResourceExistsError) as exists:
        await admin_arm.role_assignments.create(
            azure.dicom,
            str(uuid.uuid4()),
            params(azure, DICOM_DATA_READER, azure.alice, principal_type="User"),
        )
    assert exists.value.status_code == 409 and code(exists.value) == "RoleAssignmentExists"

    with pytest.raises(ResourceExistsError) as changed:
        await admin_arm.role_assignments.create(
            azure.dicom, name, params(azure, READER, azure.alice, principal_type="User")
        )
    assert code(changed.value) == "RoleAssignmentUpdateNotPermitted"
    with pytest.raises(ResourceExistsError) as moved:
        await admin_arm.role_assignments.create(
            azure.fhir, name, params(azure, DICOM_DATA_READER, azure.alice, principal_type="User")
        )
    assert code(moved.value) == "RoleAssignmentUpdateNotPermitted"


async def test_a_new_service_principal_needs_principal_type_until_it_replicates(
    emulator: RunningEmulator, admin_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    async with graph(emulator, admin=True) as client:
        app = await upsert_app(client, f"ticket-{uuid.uuid4()}")
        sp = await client.service_principals_with_app_id(app.app_id).patch(
            ServicePrincipal(), request_configuration=upsert()
        )
    assert sp is not None and sp.id
    new_sp = sp.id

    with pytest.raises(HttpResponseError) as lagging:
        await admin_arm.role_assignments.create(
            azure.fhir, str(uuid.uuid4()), params(azure, FHIR_DATA_READER, new_sp, principal_type=None)
        )
    assert lagging.value.status_code == 400 and code(lagging.value) == "PrincipalNotFound"
    assert "set the role assignment principalType property" in str(lagging.value)

    # principalType is the documented way past the replication delay
    created = await admin_arm.role_assignments.create(
        azure.fhir, str(uuid.uuid4()), params(azure, FHIR_DATA_READER, new_sp)
    )
    assert created.principal_type == "ServicePrincipal"

    emulator.admin.advance("PT61S")
    replicated = await admin_arm.role_assignments.create(
        azure.dicom, str(uuid.uuid4()), params(azure, DICOM_DATA_READER, new_sp, principal_type=None)
    )
    assert replicated.principal_type == "ServicePrincipal"
    with pytest.raises(HttpResponseError) as unmatched:  # the SDK's default principalType is 'User'
        await admin_arm.role_assignments.create(
            azure.workspace,
            str(uuid.uuid4()),
            RoleAssignmentCreateParameters(role_definition_id=azure.role(READER), principal_id=new_sp),
        )
    assert unmatched.value.status_code == 400 and code(unmatched.value) == "UnmatchedPrincipalType"

    with pytest.raises(HttpResponseError) as unknown:
        await admin_arm.role_assignments.create(
            azure.fhir,
            str(uuid.uuid4()),
            params(azure, FHIR_DATA_WRITER, str(uuid.uuid4()), principal_type=None),
        )
    assert code(unknown.value) == "PrincipalNotFound"


async def test_the_service_assigns_only_the_roles_its_condition_lists(
    admin_arm: AuthorizationManagementClient, service_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    reader = str(uuid.uuid4())
    await service_arm.role_assignments.create(
        azure.fhir, reader, params(azure, FHIR_DATA_READER, azure.alice, principal_type="User")
    )
    for role_id, scope in (
        (OWNER, azure.fhir),
        (CONTRIBUTOR, azure.workspace),
        (FHIR_DATA_READER, azure.group),
    ):
        with pytest.raises(HttpResponseError) as refused:
            await service_arm.role_assignments.create(
                scope, str(uuid.uuid4()), params(azure, role_id, azure.alice, principal_type="User")
            )
        assert refused.value.status_code == 403 and code(refused.value) == "AuthorizationFailed"
        assert "ABAC condition not fulfilled" in str(refused.value)

    # The admin narrows the delegation to FHIR Data Writer by re-PUT of the seeded assignment.
    seeded = [
        a
        async for a in admin_arm.role_assignments.list_for_scope(
            azure.workspace, filter=f"principalId eq '{azure.service_sp}'"
        )
    ]
    assert [(a.scope, a.role_definition_id) for a in seeded] == [
        (azure.workspace, azure.role(RBAC_ADMINISTRATOR))
    ]
    assert seeded[0].condition_version == "2.0" and FHIR_DATA_READER in (seeded[0].condition or "")
    await admin_arm.role_assignments.create(
        azure.workspace,
        seeded[0].name or "",
        params(
            azure,
            RBAC_ADMINISTRATOR,
            azure.service_sp,
            condition=constrained_delegation_condition([FHIR_DATA_WRITER]),
            condition_version="2.0",
        ),
    )
    with pytest.raises(HttpResponseError) as narrowed:
        await service_arm.role_assignments.create(
            azure.dicom,
            str(uuid.uuid4()),
            params(azure, FHIR_DATA_READER, azure.alice, principal_type="User"),
        )
    assert code(narrowed.value) == "AuthorizationFailed"
    with pytest.raises(HttpResponseError) as undeletable:  # the condition guards deletes too
        await service_arm.role_assignments.delete(azure.fhir, reader)
    assert undeletable.value.status_code == 403 and code(undeletable.value) == "AuthorizationFailed"

    writer = str(uuid.uuid4())
    await service_arm.role_assignments.create(
        azure.fhir, writer, params(azure, FHIR_DATA_WRITER, azure.alice, principal_type="User")
    )
    assert await service_arm.role_assignments.delete(azure.fhir, writer) is not None
    assert await service_arm.role_assignments.get(azure.fhir, reader) is not None  # */read


async def test_conditions_outside_the_grammar_are_refused(
    admin_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    for condition in (
        "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] StringLike 'x'",
        "(ActionMatches{'Microsoft.Authorization/roleAssignments/write'}",
        "@Request[Microsoft.Storage/storageAccounts:name] ForAnyOfAnyValues:GuidEquals {x}",
    ):
        with pytest.raises(HttpResponseError) as invalid:
            await admin_arm.role_assignments.create(
                azure.fhir,
                str(uuid.uuid4()),
                params(azure, RBAC_ADMINISTRATOR, azure.alice, principal_type="User", condition=condition),
            )
        assert invalid.value.status_code == 400 and code(invalid.value) == "InvalidCondition"


async def test_requests_are_checked_as_arm_checks_them(
    admin_arm: AuthorizationManagementClient, azure: Azure
) -> None:
    missing = [
        (f"{azure.subscription}/resourceGroups/nowhere", "ResourceGroupNotFound"),
        (f"{azure.workspace}/fhirservices/nothing", "ResourceNotFound"),
        (f"/subscriptions/{uuid.uuid4()}", "SubscriptionNotFound"),
    ]
    for scope, expected in missing:
        with pytest.raises(ResourceNotFoundError) as not_found:
            await admin_arm.role_assignments.get(scope, str(uuid.uuid4()))
        assert code(not_found.value) == expected
    with pytest.raises(HttpResponseError) as bad_name:
        await admin_arm.role_assignments.create(azure.fhir, "not-a-guid", params(azure, READER, azure.alice))
    assert bad_name.value.status_code == 400 and code(bad_name.value) == "InvalidRoleAssignmentId"
    with pytest.raises(HttpResponseError) as no_role:
        await admin_arm.role_assignments.create(
            azure.fhir, str(uuid.uuid4()), params(azure, str(uuid.uuid4()), azure.alice)
        )
    assert no_role.value.status_code == 400 and code(no_role.value) == "RoleDefinitionDoesNotExist"


async def test_a_token_for_resource_manager_and_an_api_version_are_required(
    emulator: RunningEmulator, azure: Azure
) -> None:
    s = emulator.settings
    url = f"{s['RESOURCE_MANAGER_URL']}{azure.fhir}/providers/Microsoft.Authorization/roleAssignments"
    async with credential(s) as cred, httpx.AsyncClient(verify=s["PLATFORM_CA_FILE"]) as http:
        anonymous = await http.get(url, params={"api-version": "2022-04-01"})
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "AuthenticationFailed"
        challenge = anonymous.headers["www-authenticate"]
        assert challenge.startswith(
            f'Bearer authorization_uri="{s["AZURE_AUTHORITY_HOST"]}/{s["AZURE_TENANT_ID"]}"'
        )
        assert 'error="invalid_token"' in challenge

        graph_token = (await cred.get_token("https://graph.microsoft.com/.default")).token
        wrong = await http.get(
            url, params={"api-version": "2022-04-01"}, headers={"Authorization": f"Bearer {graph_token}"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"

        token = (await cred.get_token(s["RESOURCE_MANAGER_AUDIENCE"] + "/.default")).token
        auth = {"Authorization": f"Bearer {token}"}
        no_version = await http.get(url, headers=auth)
        assert no_version.status_code == 400
        assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"
        old = await http.get(url, params={"api-version": "2015-07-01"}, headers=auth)
        assert old.status_code == 400 and old.json()["error"]["code"] == "InvalidApiVersionParameter"
        listed = await http.get(url, params={"api-version": "2022-04-01"}, headers=auth)
        assert listed.status_code == 200 and listed.headers["x-ms-request-id"]
        assert {a["properties"]["principalId"] for a in listed.json()["value"]} == {
            azure.service_sp,
            azure.admin_sp,
        }


def test_arm_faults_answer_in_arm_format(emulator: RunningEmulator, azure: Azure) -> None:
    s = emulator.settings
    emulator.admin.faults([{"kind": "status", "service": "arm", "status": 429, "retryAfter": 3}])
    url = f"{s['RESOURCE_MANAGER_URL']}{azure.fhir}/providers/Microsoft.Authorization/roleAssignments"
    throttled = httpx.get(url, params={"api-version": "2022-04-01"}, verify=s["PLATFORM_CA_FILE"])
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert emulator.admin.requests()["entries"][-1]["service"] == "arm"


def test_the_control_plane_shows_every_assignment_and_sets_the_propagation_delay(
    emulator: RunningEmulator, azure: Azure
) -> None:
    every = emulator.admin.role_assignments()
    assert every["propagationSeconds"] == 300 and every["deleted"] == []
    assert sorted(
        (a["properties"]["scope"], a["properties"]["principalId"]) for a in every["value"]
    ) == sorted([(azure.workspace, azure.service_sp), (azure.subscription, azure.admin_sp)])
    emulator.admin.rbac_propagation(0)
    assert emulator.admin.request("GET", "/_emulator/rbac").json() == {"propagationSeconds": 0}
    emulator.admin.reset()
    assert emulator.admin.role_assignments()["propagationSeconds"] == 300
