"""Registration end to end: the real function entry point, real Service Bus message objects,
the official SDKs, the emulated tenant and vault. Each test asserts what a user would check."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from emulator.launcher import RunningEmulator
from shared.domain.errors import TransientError
from tests import harness
from tests.e2e.tenant import GRAPH_APP_ID, Tenant, parse_time, stored_secret_authenticates

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
HEALTHCARE_APIS = "4f6778d8-5aef-43dc-a1ff-b073724b9495"
# An operator's widening of the default policy: Graph's User.Read.All app role.
GRAPH_READER_POLICY = {
    "resource": GRAPH_APP_ID,
    "delegated": ["openid", "profile", "email", "offline_access", "User.Read"],
    "application": ["User.Read.All"],
}


def sample(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    body.update(copy.deepcopy(changes))
    return body


def service_request(unique_name: str, request_id: str = "SNOW-CHG0000001", **changes: Any) -> dict[str, Any]:
    body = sample("service-client", requestId=request_id, **changes)
    body["application"] = {**body["application"], "uniqueName": unique_name}
    return body


def graph_writes(emulator: RunningEmulator) -> list[dict[str, Any]]:
    return [
        e
        for e in emulator.admin.requests()["entries"]
        if e["service"] in ("graph", "keyvault") and e["method"] in ("POST", "PATCH", "PUT", "DELETE")
    ]


@pytest.mark.parametrize("name", ["service-client", "confidential-web-client", "public-client"])
async def test_each_client_type_of_the_portal_procedure(emulator: RunningEmulator, name: str) -> None:
    body = sample(name)
    reply = await harness.register(body)

    assert reply["status"] == "succeeded", reply["errors"]
    tenant = Tenant.read(emulator)
    unique_name = body["application"]["uniqueName"]
    app = tenant.app(unique_name)
    assert app["signInAudience"] == "AzureADMyOrg"
    assert "managed-by:entra-app-registration-service" in app["tags"]
    assert f"request:{body['requestId']}" in app["tags"]
    uris = body["application"].get("redirectUris", {})
    assert app["web"]["redirectUris"] == uris.get("web", [])
    assert app["publicClient"]["redirectUris"] == uris.get("publicClient", [])
    assert app["spa"]["redirectUris"] == uris.get("spa", [])
    assert app["isFallbackPublicClient"] is (body["application"]["clientType"] == "public")
    assert reply["application"]["clientId"] == app["appId"]
    assert reply["application"]["tenantId"] == emulator.settings["AZURE_TENANT_ID"]
    [sp] = tenant.service_principals(app["appId"])
    assert reply["application"]["servicePrincipalId"] == sp["id"]
    # admin consent: one AllPrincipals grant per API, with exactly the requested scopes
    grants = {g["resourceId"]: set(g["scope"].split()) for g in tenant.grants(sp["id"])}
    assert sorted(map(sorted, grants.values())) == sorted(
        sorted(p["delegated"]) for p in body["apiPermissions"]
    )

    if body.get("credential", {}).get("type") == "none":
        assert reply["credential"] is None
        assert app["passwordCredentials"] == []
        return
    [password] = app["passwordCredentials"]
    credential = reply["credential"]
    assert credential["keyId"] == password["keyId"]
    assert credential["hint"] == password["hint"]
    assert password["secretText"] is None
    assert tenant.orphans(unique_name) == []
    [version] = tenant.enabled_versions(f"app-{unique_name}")
    assert credential["keyVaultSecretId"].endswith(f"/secrets/app-{unique_name}/{version['version']}")
    assert version["tags"]["keyId"] == password["keyId"]
    assert version["attributes"]["exp"] == int(parse_time(password["endDateTime"]).timestamp())
    assert await stored_secret_authenticates(emulator.settings, app["appId"], credential["keyVaultSecretId"])
    assert "secretText" not in json.dumps(reply) or reply.get("secretText") is None


@pytest.mark.parametrize("lifetime, months", [("P3M", 3), ("P6M", 6), ("P12M", 12), ("P24M", 24)])
async def test_secret_lifetimes_of_the_portal(emulator: RunningEmulator, lifetime: str, months: int) -> None:
    body = service_request(
        "lifetime-app", credential={"type": "secret", "description": "job", "lifetime": lifetime}
    )
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]
    start, end = (
        parse_time(reply["credential"]["startDateTime"]),
        parse_time(reply["credential"]["endDateTime"]),
    )
    elapsed_months = (end.year - start.year) * 12 + end.month - start.month
    assert elapsed_months == months
    assert f"credential-lifetime:{lifetime}" in Tenant.read(emulator).app("lifetime-app")["tags"]


async def test_custom_start_and_end(emulator: RunningEmulator) -> None:
    body = service_request(
        "custom-dates",
        credential={
            "type": "secret",
            "description": "custom",
            "startDateTime": "2026-12-01T00:00:00Z",
            "endDateTime": "2027-03-15T12:00:00Z",
        },
    )
    emulator.admin.set_clock("2026-12-02T00:00:00Z")
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]
    assert parse_time(reply["credential"]["startDateTime"]) == parse_time("2026-12-01T00:00:00Z")
    assert parse_time(reply["credential"]["endDateTime"]) == parse_time("2027-03-15T12:00:00Z")


async def test_delegated_and_application_permissions_are_consented(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    # Application permissions only where an operator's policy allows them (the default has none).
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    body = service_request(
        "graph-reader",
        apiPermissions=[
            {"api": "microsoft-graph", "delegated": ["User.Read"], "application": ["User.Read.All"]},
            {"api": HEALTHCARE_APIS, "delegated": ["user_impersonation"]},
        ],
    )
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]
    tenant = Tenant.read(emulator)
    app = tenant.app("graph-reader")
    sp_id = reply["application"]["servicePrincipalId"]
    graph_sp = tenant.service_principals(GRAPH_APP_ID)[0]
    [assignment] = tenant.assignments(sp_id)
    assert assignment["resourceId"] == graph_sp["id"]
    role_ids = {r["value"]: r["id"] for r in graph_sp["appRoles"]}
    assert assignment["appRoleId"] == role_ids["User.Read.All"]
    scopes = {g["resourceId"]: g["scope"] for g in tenant.grants(sp_id)}
    assert scopes[graph_sp["id"]] == "User.Read"
    required = {r["resourceAppId"]: r["resourceAccess"] for r in app["requiredResourceAccess"]}
    assert {a["type"] for a in required[GRAPH_APP_ID]} == {"Scope", "Role"}
    assert reply["consent"][0] == {
        "api": "microsoft-graph",
        "delegated": ["User.Read"],
        "application": ["User.Read.All"],
    }


async def test_converging_adds_a_redirect_uri_and_a_permission_to_the_same_app(
    emulator: RunningEmulator,
) -> None:
    first = sample("confidential-web-client")
    unique_name = first["application"]["uniqueName"]
    reply1 = await harness.register(first)
    second = copy.deepcopy(first)
    second["requestId"] = "SNOW-CHG0099999"
    second["application"]["redirectUris"]["web"].append("https://fhir-viewer.contoso.com/auth/second")
    second["apiPermissions"].append({"api": "dicom", "delegated": ["Dicom.ReadWrite"]})
    reply2 = await harness.register(second)

    assert reply2["status"] == "succeeded", reply2["errors"]
    tenant = Tenant.read(emulator)
    app = tenant.app(unique_name)
    assert reply2["application"]["clientId"] == reply1["application"]["clientId"]
    assert "https://fhir-viewer.contoso.com/auth/second" in app["web"]["redirectUris"]
    assert f"request:{second['requestId']}" in app["tags"]
    assert len(tenant.grants(reply2["application"]["servicePrincipalId"])) == len(second["apiPermissions"])
    # the stored secret is kept, not multiplied
    assert reply2["credential"]["keyId"] == reply1["credential"]["keyId"]
    assert len(app["passwordCredentials"]) == 1


async def test_redelivery_has_exactly_one_effect(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    first = await harness.register(body, message_id="m-1", delivery_count=1)
    again = await harness.register(body, message_id="m-1", delivery_count=2)
    assert first == again
    tenant = Tenant.read(emulator)
    app = tenant.app("dicom-ingest-prod")
    assert len(app["passwordCredentials"]) == 1
    assert len(tenant.service_principals(app["appId"])) == 1
    assert len(tenant.enabled_versions("app-dicom-ingest-prod")) == 1


async def test_concurrent_copies_leave_one_app_one_secret(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    replies = await asyncio.gather(*(harness.register(body) for _ in range(3)))
    assert all(r["status"] == "succeeded" for r in replies), replies
    tenant = Tenant.read(emulator)
    app = tenant.app("dicom-ingest-prod")
    assert len(tenant.service_principals(app["appId"])) == 1
    sp_id = tenant.service_principals(app["appId"])[0]["id"]
    assert len(tenant.grants(sp_id)) == 2
    assert len(app["passwordCredentials"]) == 1, app["passwordCredentials"]
    assert tenant.stored_key_ids("app-dicom-ingest-prod") == {app["passwordCredentials"][0]["keyId"]}
    latest = tenant.latest_version("app-dicom-ingest-prod")
    assert latest is not None and latest["tags"]["keyId"] == app["passwordCredentials"][0]["keyId"]


async def test_decommission_removes_the_app_and_disables_its_stored_secret(emulator: RunningEmulator) -> None:
    body = sample("service-client")
    registered = await harness.register(body)
    request = {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0012346",
        "action": "decommission",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": "dicom-ingest-prod",
            "serviceManagementReference": "CI0001001 DICOM ingest",
        },
    }
    reply = await harness.register(request)
    assert reply["status"] == "succeeded", reply["errors"]
    assert reply["removed"] == {
        "application": True,
        "servicePrincipal": True,
        "keyVaultSecretVersionsDisabled": 1,
        "roleAssignments": 2,
        "keyVaultCertificateVersionsDisabled": 0,
    }
    tenant = Tenant.read(emulator)
    assert tenant.apps("dicom-ingest-prod") == []
    assert tenant.service_principals(registered["application"]["clientId"]) == []
    assert tenant.enabled_versions("app-dicom-ingest-prod") == []
    again = await harness.register(request, delivery_count=2)
    assert again == reply, "a redelivered decommission answers as the first delivery did"
    later = await harness.register({**request, "requestId": "SNOW-CHG0012347"})
    assert later["status"] == "succeeded"
    assert later["removed"] == {
        "application": False,
        "servicePrincipal": False,
        "keyVaultSecretVersionsDisabled": 1,
        "roleAssignments": 0,
        "keyVaultCertificateVersionsDisabled": 0,
    }


async def test_an_app_the_service_does_not_own_is_refused(emulator: RunningEmulator) -> None:
    created = emulator.admin.graph(
        "PATCH",
        "/applications(uniqueName='someone-elses-app')",
        headers={"Prefer": "create-if-missing"},
        json={"displayName": "Someone else's"},
    )
    assert created.status_code == 201
    reply = await harness.register(service_request("someone-elses-app"))
    assert reply["status"] == "rejected"
    assert reply["errors"][0]["field"] == "application.uniqueName"
    app = Tenant.read(emulator).app("someone-elses-app")
    assert app["passwordCredentials"] == [] and app["displayName"] == "Someone else's"


async def test_tenant_lifetime_policy_is_a_rejection_that_says_why(emulator: RunningEmulator) -> None:
    emulator.admin.policy(maxSecretLifetime="P90D")
    reply = await harness.register(sample("service-client"))
    assert reply["status"] == "rejected"
    [error] = reply["errors"]
    assert error["field"] == "credential"
    assert error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    # The rejected request leaves the tenant as it found it: the application it created is gone.
    assert "Nothing was left behind" in error["message"]
    assert Tenant.read(emulator).apps("dicom-ingest-prod") == []


async def test_replication_lag_after_create_is_waited_out(emulator: RunningEmulator) -> None:
    emulator.admin.faults([{"kind": "replication-lag", "ms": 300, "maxMs": 1500}], seed=7)
    reply = await harness.register(sample("service-client"))
    assert reply["status"] == "succeeded", reply["errors"]
    assert Tenant.read(emulator).orphans("dicom-ingest-prod") == []


async def test_a_429_storm_is_ridden_out(emulator: RunningEmulator) -> None:
    emulator.admin.faults(
        [{"kind": "status", "status": 429, "retryAfter": 0, "service": "graph", "probability": 0.3}], seed=3
    )
    reply, _ = await harness.deliver_until_settled(sample("service-client"))
    assert reply["status"] == "succeeded", reply["errors"]
    tenant = Tenant.read(emulator)
    assert len(tenant.app("dicom-ingest-prod")["passwordCredentials"]) == 1
    assert tenant.orphans("dicom-ingest-prod") == []


@pytest.mark.long
async def test_the_last_delivery_replies_failed_with_the_reason(emulator: RunningEmulator) -> None:
    emulator.admin.faults([{"kind": "status", "status": 503, "service": "graph"}])
    with pytest.raises(TransientError):  # raised: the host abandons the message, Service Bus redelivers
        await harness.register(sample("service-client"), delivery_count=1)
    reply = await harness.register(sample("service-client"), delivery_count=10)
    assert reply["status"] == "failed"
    assert reply["errors"][0]["code"] == "GraphUnavailable"
    assert "503" in reply["errors"][0]["message"]


BAD_INPUTS: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("not json", b"{not json", "body"),
    ("not utf-8", b"\xff\xfe{", "body"),
    ("unknown field", {**sample("service-client"), "extra": 1}, "extra"),
    ("unknown action", {**sample("service-client"), "action": "explode"}, "action"),
    ("quote in uniqueName", service_request("bad'name"), "application.uniqueName"),
    ("path in uniqueName", service_request("a/../b"), "application.uniqueName"),
    (
        "http reply URL",
        sample(
            "confidential-web-client",
            application={
                "uniqueName": "web",
                "serviceManagementReference": "CI0001002 FHIR viewer",
                "displayName": "w",
                "clientType": "confidential",
                "redirectUris": {"web": ["http://evil.example.com/cb"]},
            },
        ),
        "application.redirectUris.web[0]",
    ),
    (
        "public client with a secret",
        sample("public-client", credential={"type": "secret", "description": "x", "lifetime": "P6M"}),
        "credential.type",
    ),
    (
        "lifetime beyond the portal",
        service_request("x", credential={"type": "secret", "description": "x", "lifetime": "P36M"}),
        "credential.lifetime",
    ),
    (
        "graph permission not allowed",
        service_request(
            "x", apiPermissions=[{"api": "microsoft-graph", "application": ["Application.ReadWrite.All"]}]
        ),
        "apiPermissions[0].application[0]",
    ),
    (
        "unknown catalog api",
        service_request("x", apiPermissions=[{"api": "no-such-api", "delegated": ["x"]}]),
        "apiPermissions[0].api",
    ),
    (
        "unknown scope",
        service_request("x", apiPermissions=[{"api": "dicom", "delegated": ["Dicom.Everything"]}]),
        "apiPermissions[0].delegated[0]",
    ),
    (
        "api not in tenant",
        service_request("x", apiPermissions=[{"api": "https://nothing.example.com", "delegated": ["x"]}]),
        "apiPermissions[0].api",
    ),
]


@pytest.mark.parametrize("case, body, field", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
async def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(
    emulator: RunningEmulator, case: str, body: bytes | dict[str, Any], field: str
) -> None:
    emulator.admin.clear_requests()
    reply = await harness.register(body)
    assert reply["status"] == "rejected"
    assert field in [e["field"] for e in reply["errors"]], reply["errors"]
    assert graph_writes(emulator) == []
