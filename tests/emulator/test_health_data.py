"""The Health Data Services data planes over HTTPS (httpx with the emulator's CA), with tokens from
azure-identity: the FHIR service's anonymous CapabilityStatement, its and the DICOM service's
401 and 403 as they answer them, and Azure RBAC's role assignments taking effect only after the
propagation delay (and lingering as long after a delete), on the emulator clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from emulator.arm import (
    DICOM_DATA_READER,
    FHIR_DATA_CONVERTER,
    FHIR_DATA_READER,
)
from emulator.launcher import RunningEmulator
from tests.emulator.clients import credential


@dataclass(frozen=True)
class Services:
    fhir_url: str
    fhir: str
    dicom_url: str
    dicom: str
    workspace: str
    subscription: str
    service_sp: str


@pytest.fixture
def services(emulator: RunningEmulator) -> Services:
    s = emulator.settings
    config = json.loads(s["HEALTH_DATA_SERVICES"])
    fhir = config["fhir"]["resourceId"]
    snapshot = emulator.admin.snapshot()
    service_sp = next(sp["id"] for sp in snapshot["servicePrincipals"] if sp["appId"] == s["AZURE_CLIENT_ID"])
    return Services(
        config["fhir"]["url"],
        fhir,
        config["dicom"]["url"],
        config["dicom"]["resourceId"],
        fhir.rsplit("/fhirservices/", 1)[0],
        "/".join(fhir.split("/")[:3]),
        service_sp,
    )


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=emulator.settings["PLATFORM_CA_FILE"]) as client:
        yield client


async def service_token(emulator: RunningEmulator, scope: str) -> dict[str, str]:
    async with credential(emulator.settings) as cred:
        return {"Authorization": f"Bearer {(await cred.get_token(scope)).token}"}


async def assign(arm: AuthorizationManagementClient, services: Services, scope: str, role_id: str) -> str:
    name = str(uuid.uuid4())
    await arm.role_assignments.create(
        scope,
        name,
        RoleAssignmentCreateParameters(
            role_definition_id=f"{services.subscription}/providers/Microsoft.Authorization/roleDefinitions/{role_id}",
            principal_id=services.service_sp,
            principal_type="ServicePrincipal",
        ),
    )
    return name


async def test_the_capability_statement_is_anonymous(
    emulator: RunningEmulator, http: httpx.AsyncClient, services: Services
) -> None:
    s = emulator.settings
    response = await http.get(f"{services.fhir_url}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert (statement["resourceType"], statement["status"], statement["kind"], statement["fhirVersion"]) == (
        "CapabilityStatement",
        "active",
        "instance",
        "4.0.1",
    )
    rest = statement["rest"][0]
    assert rest["mode"] == "server" and "Patient" in {r["type"] for r in rest["resource"]}
    (oauth,) = rest["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris["token"] == f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}/oauth2/v2.0/token"


async def test_fhir_wants_a_token_for_its_url(
    emulator: RunningEmulator, http: httpx.AsyncClient, services: Services
) -> None:
    s = emulator.settings
    url = f"{services.fhir_url}/Patient"
    for headers in ({}, await service_token(emulator, "https://graph.microsoft.com/.default")):
        refused = await http.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == (
            f'Bearer authorization_uri="{s["AZURE_AUTHORITY_HOST"]}/{s["AZURE_TENANT_ID"]}", '
            f'resource_id="{services.fhir_url}", realm="{services.fhir_url}"'
        )
        outcome = refused.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"] == [
            {"severity": "error", "code": "login", "diagnostics": "Authentication failed."}
        ]


async def test_a_fhir_role_applies_only_after_propagation(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    url = f"{services.fhir_url}/Patient"
    token = await service_token(emulator, f"{services.fhir_url}/.default")
    forbidden = await http.get(url, headers=token)
    assert forbidden.status_code == 403
    assert forbidden.json()["issue"][0]["code"] == "forbidden"

    await assign(admin_arm, services, services.fhir, FHIR_DATA_READER)
    emulator.admin.advance("PT4M")
    assert (await http.get(url, headers=token)).status_code == 403  # not yet propagated
    emulator.admin.advance("PT1M")
    found = await http.get(url, headers=token)
    assert found.status_code == 200
    assert found.headers["content-type"].startswith("application/fhir+json")
    bundle = found.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    assert bundle["link"] == [{"relation": "self", "url": url}]
    assert len(bundle["entry"]) == 2
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Patient"}


async def test_an_assignment_on_the_workspace_applies_to_its_services(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    await assign(admin_arm, services, services.workspace, FHIR_DATA_READER)
    emulator.admin.advance("PT5M")
    token = await service_token(emulator, f"{services.fhir_url}/.default")
    assert (await http.get(f"{services.fhir_url}/Patient", headers=token)).status_code == 200
    dicom = await service_token(emulator, "https://dicom.healthcareapis.azure.com/.default")
    assert (await http.get(f"{services.dicom_url}/v2/studies", headers=dicom)).status_code == 403


async def test_a_role_without_the_read_data_action_is_refused(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    await assign(admin_arm, services, services.fhir, FHIR_DATA_CONVERTER)
    emulator.admin.advance("PT10M")
    token = await service_token(emulator, f"{services.fhir_url}/.default")
    assert (await http.get(f"{services.fhir_url}/Patient", headers=token)).status_code == 403


async def test_dicom_answers_as_the_dicom_service_does(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    url = f"{services.dicom_url}/v2/studies"
    anonymous = await http.get(url)
    assert anonymous.status_code == 401 and anonymous.content == b""
    assert anonymous.headers["www-authenticate"] == "Bearer"
    fhir_token = await service_token(emulator, f"{services.fhir_url}/.default")
    wrong = await http.get(url, headers=fhir_token)
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]

    token = await service_token(emulator, "https://dicom.healthcareapis.azure.com/.default")
    forbidden = await http.get(url, headers=token)
    assert forbidden.status_code == 403 and forbidden.text == "Authorization failed."

    await assign(admin_arm, services, services.dicom, DICOM_DATA_READER)
    assert (await http.get(url, headers=token)).status_code == 403
    emulator.admin.advance("PT5M")
    found = await http.get(url, headers=token)
    assert found.status_code == 200
    assert found.headers["content-type"].startswith("application/dicom+json")
    (study,) = found.json()
    assert study["0020000D"]["vr"] == "UI" and study["0020000D"]["Value"]
    assert study["00100020"]["Value"] == ["PAT-0001"]


async def test_a_deleted_assignment_is_honoured_until_the_deletion_propagates(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    url = f"{services.fhir_url}/Patient"
    token = await service_token(emulator, f"{services.fhir_url}/.default")
    name = await assign(admin_arm, services, services.fhir, FHIR_DATA_READER)
    emulator.admin.advance("PT5M")
    assert (await http.get(url, headers=token)).status_code == 200

    await admin_arm.role_assignments.delete(services.fhir, name)
    # Resource Manager shows the change at once ...
    assert name not in {a.name async for a in admin_arm.role_assignments.list_for_scope(services.fhir)}
    deleted = emulator.admin.role_assignments()["deleted"]
    assert [d["name"] for d in deleted] == [name] and deleted[0]["deletedOn"]
    # ... the data plane only once it has propagated
    emulator.admin.advance("PT4M")
    assert (await http.get(url, headers=token)).status_code == 200
    emulator.admin.advance("PT1M")
    assert (await http.get(url, headers=token)).status_code == 403


async def test_the_propagation_delay_is_a_setting(
    emulator: RunningEmulator,
    http: httpx.AsyncClient,
    services: Services,
    admin_arm: AuthorizationManagementClient,
) -> None:
    emulator.admin.rbac_propagation(0)
    await assign(admin_arm, services, services.fhir, FHIR_DATA_READER)
    token = await service_token(emulator, f"{services.fhir_url}/.default")
    assert (await http.get(f"{services.fhir_url}/Patient", headers=token)).status_code == 200
