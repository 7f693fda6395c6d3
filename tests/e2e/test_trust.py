"""A ticket may do only what the service's policy allows, and only to its own application.

Each test is an attack a sender with rights on the requests queue could try with well-formed
tickets (docs/security.md). Each goes through the real entry point against the emulator and
checks the tenant, the vault and the roles in a token, not the reply alone.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.tenant import (
    GRAPH_APP_ID,
    Tenant,
    claims,
    stored_secret_authenticates,
    token_with_stored_secret,
)
from tests.e2e.test_registration import GRAPH_READER_POLICY, sample, service_request

# Seeded by the emulator: Exchange Online, whose full_access_as_app reads every mailbox.
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
DICOM_URI = "https://dicom.healthcareapis.azure.com"
OWNER = "CI0001001 DICOM ingest"  # samples/service-client.json
OTHER_OWNER = "CI0006666 someone else"


def fields(reply: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in reply["errors"]]


def nothing_written(emulator: RunningEmulator, before: dict[str, Any]) -> None:
    """The tenant and the vault as the request found them."""
    after = emulator.admin.snapshot()
    for part in (
        "applications",
        "servicePrincipals",
        "oauth2PermissionGrants",
        "appRoleAssignments",
        "vault",
    ):
        assert after[part] == before[part], part


# ---------------------------------------------------------------- permissions: default deny


@pytest.mark.parametrize(
    "permission, field, code",
    [
        (
            {"api": EXCHANGE_APP_ID, "application": ["full_access_as_app"]},
            "apiPermissions[0].api",
            "api_not_allowed",
        ),
        (
            {"api": "microsoft-graph", "application": ["User.Read.All"]},
            "apiPermissions[0].application[0]",
            "permission_not_allowed",
        ),
        (
            {"api": "https://graph.microsoft.com", "application": ["Directory.ReadWrite.All"]},
            "apiPermissions[0].application[0]",
            "permission_not_allowed",
        ),
        (
            {"api": "microsoft-graph", "delegated": ["Directory.AccessAsUser.All"]},
            "apiPermissions[0].delegated[0]",
            "permission_not_allowed",
        ),
    ],
    ids=["exchange-app-role", "graph-app-role", "graph-by-uri", "graph-delegated"],
)
async def test_permissions_outside_the_policy_are_refused_before_any_write(
    emulator: RunningEmulator, permission: dict[str, Any], field: str, code: str
) -> None:
    before = emulator.admin.snapshot()
    body = service_request("greedy", apiPermissions=[permission], grantAdminConsent=True)

    reply = await harness.register(body)

    assert reply["status"] == "rejected"
    assert fields(reply) == [(field, code)]
    nothing_written(emulator, before)


async def test_an_operator_widens_the_policy_and_the_token_carries_the_role(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    body = service_request(
        "graph-reader",
        apiPermissions=[{"api": "microsoft-graph", "application": ["User.Read.All"]}],
        grantAdminConsent=True,
    )
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]
    token = await token_with_stored_secret(
        emulator.settings, reply["application"]["clientId"], reply["credential"]["keyVaultSecretId"]
    )
    assert claims(token)["roles"] == ["User.Read.All"]


async def test_one_api_named_twice_is_refused(emulator: RunningEmulator) -> None:
    [dicom] = [
        s
        for s in Tenant.read(emulator).snapshot["servicePrincipals"]
        if DICOM_URI in s["servicePrincipalNames"]
    ]
    before = emulator.admin.snapshot()
    body = service_request(
        "twice",
        apiPermissions=[
            {"api": "dicom", "delegated": ["user_impersonation"]},
            {"api": dicom["appId"], "delegated": ["Dicom.ReadWrite"]},
        ],
        grantAdminConsent=True,
    )

    reply = await harness.register(body)

    assert reply["status"] == "rejected"
    assert fields(reply) == [("apiPermissions[1].api", "duplicate")]
    nothing_written(emulator, before)


# ---------------------------------------------------------------- ownership


async def _registered(emulator: RunningEmulator) -> tuple[dict[str, Any], dict[str, Any]]:
    body = sample("service-client")
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]
    return body, reply


def _as_other_owner(body: dict[str, Any], request_id: str = "SNOW-CHG0066666") -> dict[str, Any]:
    hostile = copy.deepcopy(body)
    hostile["requestId"] = request_id
    hostile["requestedBy"] = "mallory@contoso.com"
    hostile["application"]["serviceManagementReference"] = OTHER_OWNER
    return hostile


@pytest.mark.parametrize(
    "change",
    [
        {"clientType": "confidential", "redirectUris": {"web": ["https://mallory.example.com/cb"]}},
        {"clientType": "public", "redirectUris": {"spa": ["https://mallory.example.com"]}},
        {},
    ],
    ids=["redirect-to-own-site", "turn-public", "add-consent"],
)
async def test_another_owners_ticket_cannot_converge_the_application(
    emulator: RunningEmulator, change: dict[str, Any]
) -> None:
    body, registered = await _registered(emulator)
    before = emulator.admin.snapshot()
    hostile = _as_other_owner(body)
    hostile["application"].update(change)
    hostile["apiPermissions"].append({"api": "microsoft-graph", "delegated": ["User.Read"]})
    if change.get("clientType") == "public":
        hostile["credential"] = {"type": "none"}
        hostile.pop("dataAccess", None)  # a public client holds no data roles

    reply = await harness.register(hostile)

    assert reply["status"] == "rejected"
    assert fields(reply) == [("application.serviceManagementReference", "not_owner")]
    assert reply["application"] is None and reply["credential"] is None
    assert registered["application"]["clientId"] not in json.dumps(reply)
    nothing_written(emulator, before)
    app = Tenant.read(emulator).app("dicom-ingest-prod")
    assert app["serviceManagementReference"] == OWNER


async def test_two_owners_registering_one_new_name_at_once_get_one_application(
    emulator: RunningEmulator,
) -> None:
    # Both read "no application" (beside taking the lease); the second to hold the lease finds
    # the name taken when it creates, reads the first one's application and is refused.
    body = sample("service-client")
    replies = await asyncio.gather(harness.register(body), harness.register(_as_other_owner(body)))

    assert sorted(r["status"] for r in replies) == ["rejected", "succeeded"]
    [winner] = [r for r in replies if r["status"] == "succeeded"]
    [loser] = [r for r in replies if r["status"] == "rejected"]
    assert fields(loser) == [("application.serviceManagementReference", "not_owner")]
    [app] = Tenant.read(emulator).apps("dicom-ingest-prod")
    assert app["appId"] == winner["application"]["clientId"]
    assert app["serviceManagementReference"] == winner["application"]["serviceManagementReference"]
    assert [p["keyId"] for p in app["passwordCredentials"]] == [winner["credential"]["keyId"]]


@pytest.mark.parametrize("action", ["rotate", "decommission"])
async def test_another_owners_ticket_cannot_rotate_or_decommission(
    emulator: RunningEmulator, action: str
) -> None:
    _, registered = await _registered(emulator)
    before = emulator.admin.snapshot()
    hostile = {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0066667",
        "action": action,
        "requestedBy": "mallory@contoso.com",
        "application": {"uniqueName": "dicom-ingest-prod", "serviceManagementReference": OTHER_OWNER},
    }

    reply = await harness.register(hostile)

    assert reply["status"] == "rejected"
    assert fields(reply) == [("application.serviceManagementReference", "not_owner")]
    assert reply["credential"] is None and reply["application"] is None
    nothing_written(emulator, before)
    assert await stored_secret_authenticates(
        emulator.settings, registered["application"]["clientId"], unique_name="dicom-ingest-prod"
    )


async def test_the_owner_reference_and_the_lock_are_written_on_the_application(
    emulator: RunningEmulator,
) -> None:
    _, reply = await _registered(emulator)
    app = Tenant.read(emulator).app("dicom-ingest-prod")
    assert app["serviceManagementReference"] == OWNER
    assert app["servicePrincipalLockConfiguration"]["isEnabled"] is True
    assert app["servicePrincipalLockConfiguration"]["allProperties"] is True
    assert reply["application"]["serviceManagementReference"] == OWNER


# ---------------------------------------------------------------- names


async def test_request_ids_that_would_derive_one_name_cannot_share_an_application(
    emulator: RunningEmulator,
) -> None:
    first = sample("service-client", requestId="x-1")
    del first["application"]["uniqueName"]
    registered = await harness.register(first)
    assert registered["status"] == "succeeded", registered["errors"]
    assert registered["application"]["uniqueName"] == "x-1"
    before = emulator.admin.snapshot()

    second = sample("service-client", requestId="X.1")
    del second["application"]["uniqueName"]
    second["application"]["displayName"] = "rewritten"
    reply = await harness.register(second)

    assert reply["status"] == "rejected"
    assert fields(reply) == [("application.uniqueName", "missing")]
    nothing_written(emulator, before)
    assert "request:x-1" in Tenant.read(emulator).app("x-1")["tags"]


async def test_duplicate_json_keys_are_refused(emulator: RunningEmulator) -> None:
    before = emulator.admin.snapshot()
    text = json.dumps(sample("service-client"))
    # A second uniqueName after the first: some parsers keep the first, pydantic the last.
    body = text.replace(
        '"uniqueName": "dicom-ingest-prod"', '"uniqueName": "dicom-ingest-prod", "uniqueName": "victim"'
    )
    body = body.replace('"action": "register"', '"action": "register", "action": "decommission"')

    reply = await harness.register(body)

    assert reply["status"] == "rejected"
    assert sorted(fields(reply)) == [("action", "duplicate_key"), ("application.uniqueName", "duplicate_key")]
    nothing_written(emulator, before)


# ---------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize(
    "platform, uri",
    [
        ("publicClient", "view-source:https://contoso.com/"),
        ("publicClient", "blob:https://contoso.com/1"),
        ("publicClient", "about:blank"),
        ("publicClient", "intent://auth"),
        ("publicClient", "jar:https://contoso.com/a.jar!/"),
        ("publicClient", "myapp://auth"),
        ("spa", "https://169.254.169.254/latest"),
        ("spa", "https://10.1.2.3/cb"),
        ("spa", "https://intranet/cb"),
        ("spa", "https://xn--cntoso-bua.com/cb"),
    ],
)
async def test_redirect_uris_outside_the_documented_forms_are_refused(
    emulator: RunningEmulator, platform: str, uri: str
) -> None:
    before = emulator.admin.snapshot()
    body = sample("public-client")
    body["application"]["redirectUris"] = {platform: [uri]}

    reply = await harness.register(body)

    assert reply["status"] == "rejected"
    [(field, _)] = fields(reply)
    assert field == f"application.redirectUris.{platform}[0]"
    nothing_written(emulator, before)


@pytest.mark.parametrize(
    "uri", ["https://169.254.169.254/cb", "https://192.168.0.10/cb", "https://[fd00::1]/cb"]
)
async def test_web_redirect_uris_to_private_and_link_local_addresses_are_refused(
    emulator: RunningEmulator, uri: str
) -> None:
    body = sample("confidential-web-client")
    body["application"]["redirectUris"] = {"web": [uri]}
    reply = await harness.register(body)
    assert fields(reply) == [("application.redirectUris.web[0]", "ip_address_not_allowed")]
    assert Tenant.read(emulator).apps("fhir-viewer-prod") == []


async def test_an_operator_restricts_redirect_uris_to_its_domains(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    settings_env(REDIRECT_URI_DOMAINS="contoso.com")
    body = sample("confidential-web-client")
    body["application"]["redirectUris"] = {
        "web": ["https://fhir-viewer.contoso.com/cb", "https://contoso.com.evil.example/cb"]
    }
    reply = await harness.register(body)
    assert fields(reply) == [("application.redirectUris.web[1]", "domain_not_allowed")]
    assert Tenant.read(emulator).apps("fhir-viewer-prod") == []


# ---------------------------------------------------------------- consent follows the request


async def test_dropping_a_permission_revokes_its_consent_without_granting_anything(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    body = service_request(
        "consent-follows",
        apiPermissions=[
            {"api": "microsoft-graph", "delegated": ["User.Read"], "application": ["User.Read.All"]},
            {"api": "azure-healthcare-apis", "delegated": ["user_impersonation"]},
        ],
        grantAdminConsent=True,
    )
    first = await harness.register(body)
    assert first["status"] == "succeeded", first["errors"]
    client_id = first["application"]["clientId"]
    token = await token_with_stored_secret(emulator.settings, client_id, unique_name="consent-follows")
    assert claims(token)["roles"] == ["User.Read.All"]

    dropped = copy.deepcopy(body)
    dropped["requestId"] = "SNOW-CHG0000002"
    dropped["grantAdminConsent"] = False
    dropped["apiPermissions"] = [{"api": "azure-healthcare-apis", "delegated": ["user_impersonation"]}]
    reply = await harness.register(dropped)

    assert reply["status"] == "succeeded", reply["errors"]
    tenant = Tenant.read(emulator)
    sp_id = reply["application"]["servicePrincipalId"]
    assert tenant.assignments(sp_id) == []
    [graph_sp] = tenant.service_principals(GRAPH_APP_ID)
    assert [g for g in tenant.grants(sp_id) if g["resourceId"] == graph_sp["id"]] == []
    # what the tenant still holds: the scope the request keeps, granted before
    assert reply["consent"] == [
        {"api": "azure-healthcare-apis", "delegated": ["user_impersonation"], "application": []}
    ]
    token = await token_with_stored_secret(emulator.settings, client_id, unique_name="consent-follows")
    assert "roles" not in claims(token) or claims(token)["roles"] == []


# ---------------------------------------------------------------- the requester, recorded


async def test_the_requester_is_recorded_on_the_application_in_key_vault_in_the_logs_and_the_reply(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body, reply = await _registered(emulator)
    tenant = Tenant.read(emulator)
    app = tenant.app("dicom-ingest-prod")
    assert "requested-by:alice@contoso.com" in app["tags"]
    assert f"request:{body['requestId']}" in app["tags"]
    [version] = tenant.enabled_versions("app-dicom-ingest-prod")
    assert version["tags"]["requestedBy"] == "alice@contoso.com"
    assert version["tags"]["origin"] == body["requestId"]
    assert version["tags"]["serviceManagementReference"] == OWNER
    assert reply["requestedBy"] == "alice@contoso.com"
    assert any(getattr(r, "requestedBy", None) == "alice@contoso.com" for r in caplog.records)
