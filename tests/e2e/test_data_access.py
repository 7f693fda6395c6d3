"""From ticket to a client that reads FHIR and DICOM: Azure RBAC data roles assigned through
Resource Manager (azure-mgmt-authorization against the emulator), proven by reads against the
emulated services with a token got with the stored secret, as the client itself would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from emulator.launcher import RunningEmulator
from shared.domain.data_access import DATA_ROLES, assignment_name
from tests import harness
from tests.e2e.tenant import Tenant, token_with_stored_secret
from tests.e2e.test_registration import graph_writes, sample, service_request

PROPAGATION = "PT5M"  # the emulator's data planes honour a role change 5 minutes after it
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
READS = {"fhir": "/Patient", "dicom": "/v2/studies"}


async def read(emulator: RunningEmulator, token: str, access: dict[str, Any]) -> int:
    """The status of a read a user wants of the service: FHIR's Patient search, DICOM's studies."""
    async with httpx.AsyncClient(verify=emulator.settings["PLATFORM_CA_FILE"]) as http:
        response = await http.get(
            access["url"] + READS[access["service"]], headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def tokens(emulator: RunningEmulator, reply: dict[str, Any]) -> dict[str, str]:
    """A token per service, got with the stored (unversioned) secret for the reply's scope."""
    app = reply["application"]
    return {
        access["service"]: await token_with_stored_secret(
            emulator.settings, app["clientId"], unique_name=app["uniqueName"], scope=access["scope"]
        )
        for access in reply["dataAccess"]
    }


def assignments(emulator: RunningEmulator, principal_id: str) -> list[dict[str, Any]]:
    entries = emulator.admin.request("GET", "/_emulator/role-assignments").json()["value"]
    return [a for a in entries if a["properties"]["principalId"] == principal_id]


def role_names(entries: list[dict[str, Any]]) -> set[str]:
    by_id = {role.id: name for name, role in DATA_ROLES.items()}
    return {by_id.get(a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], "?") for a in entries}


async def test_the_new_client_reads_fhir_and_dicom(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]

    catalog = {"fhir": "/fhirservices/", "dicom": "/dicomservices/"}
    by_service = {a["service"]: a for a in reply["dataAccess"]}
    assert by_service["fhir"]["roles"] == ["FHIR Data Reader"]
    assert by_service["fhir"]["scope"] == by_service["fhir"]["url"] + "/.default"
    assert by_service["dicom"]["roles"] == ["DICOM Data Owner"]
    assert by_service["dicom"]["scope"] == "https://dicom.healthcareapis.azure.com/.default"
    sp_id = reply["application"]["servicePrincipalId"]
    made = assignments(emulator, sp_id)
    assert role_names(made) == {"FHIR Data Reader", "DICOM Data Owner"}
    for a in made:
        properties = a["properties"]
        assert properties["principalType"] == "ServicePrincipal"
        assert catalog["fhir"] in properties["scope"] or catalog["dicom"] in properties["scope"]
        role_id = properties["roleDefinitionId"].rsplit("/", 1)[-1]
        assert a["name"] == assignment_name(properties["scope"], sp_id, role_id)

    held = await tokens(emulator, reply)
    # Azure RBAC applies a new assignment within minutes: until then the services refuse.
    for access in reply["dataAccess"]:
        assert await read(emulator, held[access["service"]], access) == 403
    emulator.admin.advance(PROPAGATION)
    for access in reply["dataAccess"]:
        assert await read(emulator, held[access["service"]], access) == 200, access["service"]


async def test_without_data_roles_the_client_cannot_read(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    del body["dataAccess"]
    reply = await harness.register(body)
    assert reply["status"] == "succeeded" and reply["dataAccess"] == []
    app = reply["application"]
    access = {"service": "fhir", "url": json.loads(emulator.settings["HEALTH_DATA_SERVICES"])["fhir"]["url"]}
    token = await token_with_stored_secret(
        emulator.settings, app["clientId"], unique_name=app["uniqueName"], scope=access["url"] + "/.default"
    )
    emulator.admin.advance(PROPAGATION)
    assert await read(emulator, token, access) == 403
    assert assignments(emulator, app["servicePrincipalId"]) == []


async def test_a_redelivery_puts_the_same_assignments(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    first = await harness.register(body)
    second = await harness.register(body, delivery_count=2)
    assert first["dataAccess"] == second["dataAccess"]
    assert len(assignments(emulator, first["application"]["servicePrincipalId"])) == 2


async def test_converge_follows_the_request_and_leaves_other_assignments_alone(
    emulator: RunningEmulator, admin_arm: AuthorizationManagementClient
) -> None:
    body = service_request("fhir-sync", "SNOW-CHG0000101")
    reply = await harness.register(body)
    sp_id = reply["application"]["servicePrincipalId"]
    fhir_scope = next(
        a["properties"]["scope"]
        for a in assignments(emulator, sp_id)
        if "/fhirservices/" in a["properties"]["scope"]
    )
    subscription = fhir_scope.split("/")[2]
    # Someone assigns a role by hand, under a name of their own.
    await admin_arm.role_assignments.create(
        fhir_scope,
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/"
            + DATA_ROLES["FHIR Data Writer"].id,
            principal_id=sp_id,
            principal_type="ServicePrincipal",
        ),
    )

    converge = service_request(
        "fhir-sync",
        "SNOW-CHG0000102",
        dataAccess=[{"service": "fhir", "roles": ["FHIR Data Contributor", "FHIR Data Writer"]}],
    )
    again = await harness.register(converge)

    assert again["status"] == "succeeded", again["errors"]
    assert again["dataAccess"] == [
        {
            "service": "fhir",
            "url": reply["dataAccess"][0]["url"],
            "scope": reply["dataAccess"][0]["scope"],
            "roles": ["FHIR Data Contributor", "FHIR Data Writer"],
        }
    ]
    # Its own Reader and DICOM Owner removed; Contributor made; the hand-made Writer kept,
    # and not assigned a second time.
    now = assignments(emulator, sp_id)
    assert role_names(now) == {"FHIR Data Contributor", "FHIR Data Writer"}
    assert len(now) == 2


async def test_decommission_removes_the_roles_and_the_tokens_stop_reading(emulator: RunningEmulator) -> None:
    reply = await harness.register(sample("service-client"))
    held = await tokens(emulator, reply)
    emulator.admin.advance(PROPAGATION)
    for access in reply["dataAccess"]:
        assert await read(emulator, held[access["service"]], access) == 200

    app = reply["application"]
    request = {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0000199",
        "action": "decommission",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": app["uniqueName"],
            "serviceManagementReference": app["serviceManagementReference"],
        },
    }
    gone = await harness.register(request)
    assert gone["status"] == "succeeded", gone["errors"]
    assert gone["removed"]["roleAssignments"] == 2
    assert assignments(emulator, app["servicePrincipalId"]) == []
    again = await harness.register(request, delivery_count=2)
    assert again["removed"] == gone["removed"]

    emulator.admin.advance(PROPAGATION)
    # The tokens got before are still unexpired; the services no longer let them read.
    for access in reply["dataAccess"]:
        assert await read(emulator, held[access["service"]], access) == 403


@pytest.mark.parametrize(
    ("entry", "field", "code"),
    [
        ({"service": "fhir", "roles": ["Owner"]}, "dataAccess[0].roles[0]", "role_not_allowed"),
        (
            {"service": "fhir", "roles": ["FHIR Data Reader", "User Access Administrator"]},
            "dataAccess[0].roles[1]",
            "role_not_allowed",
        ),
        (
            {"service": "dicom", "roles": ["FHIR Data Reader"]},
            "dataAccess[0].roles[0]",
            "role_not_for_service",
        ),
        (
            {"service": "pacs", "roles": ["DICOM Data Reader"]},
            "dataAccess[0].service",
            "service_not_in_catalog",
        ),
    ],
)
async def test_out_of_policy_data_access_is_rejected_before_any_write(
    emulator: RunningEmulator, entry: dict[str, Any], field: str, code: str
) -> None:
    emulator.admin.clear_requests()
    reply = await harness.register(service_request("policy-probe", dataAccess=[entry]))
    assert reply["status"] == "rejected"
    assert [(e["field"], e["code"]) for e in reply["errors"]] == [(field, code)]
    assert graph_writes(emulator) == []
    assert Tenant.read(emulator).apps("policy-probe") == []


async def test_data_roles_policy_narrows_what_a_ticket_may_ask(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    settings_env(DATA_ROLES="FHIR Data Reader,DICOM Data Reader")
    reply = await harness.register(
        service_request("policy-probe", dataAccess=[{"service": "fhir", "roles": ["FHIR Data Writer"]}])
    )
    assert [(e["field"], e["code"]) for e in reply["errors"]] == [
        ("dataAccess[0].roles[0]", "role_not_allowed")
    ]


async def test_a_public_client_gets_no_data_roles(emulator: RunningEmulator) -> None:
    body = sample("public-client", dataAccess=[{"service": "fhir", "roles": ["FHIR Data Reader"]}])
    reply = await harness.register(body)
    assert reply["status"] == "rejected"
    assert [e["field"] for e in reply["errors"]] == ["dataAccess"]


async def test_a_role_the_platform_refuses_leaves_nothing_behind(
    emulator: RunningEmulator, admin_arm: AuthorizationManagementClient
) -> None:
    # The administrator narrows the service identity's delegation to FHIR Data Reader: Azure
    # itself then refuses any other role (the ABAC condition on its assignment).
    service_sp = Tenant.read(emulator).service_principals(emulator.settings["AZURE_CLIENT_ID"])[0]["id"]
    [delegation] = [
        a
        for a in assignments(emulator, service_sp)
        if a["properties"]["roleDefinitionId"].endswith(RBAC_ADMINISTRATOR)
    ]
    properties = delegation["properties"]
    reader = DATA_ROLES["FHIR Data Reader"].id
    condition = (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        f"(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{reader}}})) "
        "AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        f"(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{reader}}}))"
    )
    await admin_arm.role_assignments.create(
        properties["scope"],
        delegation["name"],
        RoleAssignmentCreateParameters(
            role_definition_id=properties["roleDefinitionId"],
            principal_id=service_sp,
            principal_type="ServicePrincipal",
            condition=condition,
            condition_version="2.0",
        ),
    )

    reply = await harness.register(service_request("refused-roles", "SNOW-CHG0000301"))

    assert reply["status"] == "rejected"
    [problem] = reply["errors"]
    assert problem["code"] == "data_access_not_permitted"
    assert "Role Based Access Control Administrator" in problem["message"]
    assert "Nothing was left behind" in problem["message"]
    tenant = Tenant.read(emulator)
    assert tenant.apps("refused-roles") == []
    assert tenant.enabled_versions("app-refused-roles") == []
    leftover = [
        a
        for a in emulator.admin.request("GET", "/_emulator/role-assignments").json()["value"]
        if a["properties"]["principalId"] not in (service_sp,)
        and a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] in {r.id for r in DATA_ROLES.values()}
    ]
    assert leftover == []
