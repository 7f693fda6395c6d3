"""No request leaves half its work behind (issue 11): a request the platform would refuse
part-way is refused before its first change, and answers the same on redelivery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from emulator.launcher import RunningEmulator
from shared import testing
from tests import harness
from tests.e2e.tenant import Tenant, stored_secret_authenticates
from tests.e2e.test_registration import GRAPH_READER_POLICY, sample
from tests.reliability.test_privilege import revoke

DICOM_INGEST_OWNER = "CI0001001 DICOM ingest"
VIEWER_OWNER = "CI0001003 DICOM viewer"


def reference_request(action: str, unique_name: str, owner: str, request_id: str) -> dict[str, object]:
    return {
        "schemaVersion": 1,
        "requestId": request_id,
        "action": action,
        "requestedBy": "alice@contoso.com",
        "application": {"uniqueName": unique_name, "serviceManagementReference": owner},
    }


async def test_rotate_on_an_application_registered_without_a_secret_is_rejected(
    emulator: RunningEmulator,
) -> None:
    registered = await harness.register(sample("public-client"))
    assert registered["status"] == "succeeded", registered["errors"]
    before = emulator.admin.snapshot()

    reply = await harness.register(reference_request("rotate", "dicom-viewer", VIEWER_OWNER, "SNOW-ROT-PC"))

    assert reply["status"] == "rejected"
    assert [(e["field"], e["code"]) for e in reply["errors"]] == [("application.uniqueName", "no_secret")]
    after = emulator.admin.snapshot()
    assert after["applications"] == before["applications"]
    assert after["vault"] == before["vault"]
    assert Tenant.read(emulator).app("dicom-viewer")["passwordCredentials"] == []


async def test_a_decommission_graph_would_refuse_changes_nothing(emulator: RunningEmulator) -> None:
    registered = await harness.register(sample("service-client"))
    assert registered["status"] == "succeeded", registered["errors"]
    # An administrator removes the service from the application's owners: Graph will now
    # refuse the service's delete (Application.ReadWrite.OwnedBy).
    app = Tenant.read(emulator).app("dicom-ingest-prod")
    service_sp = next(
        s["id"]
        for s in emulator.admin.snapshot()["servicePrincipals"]
        if s["appId"] == emulator.settings["AZURE_CLIENT_ID"]
    )
    removed = emulator.admin.graph("DELETE", f"/applications/{app['id']}/owners/{service_sp}/$ref")
    assert removed.status_code == 204, removed.text
    before = emulator.admin.snapshot()

    settled = await harness.settle(
        reference_request("decommission", "dicom-ingest-prod", DICOM_INGEST_OWNER, "SNOW-DEC-REFUSED")
    )

    assert settled.reply is not None and settled.reply["status"] == "rejected"
    assert [(e["field"], e["code"]) for e in settled.reply["errors"]] == [
        ("application.uniqueName", "not_an_owner")
    ]
    after = emulator.admin.snapshot()
    for part in ("applications", "servicePrincipals", "oauth2PermissionGrants", "vault"):
        assert after[part] == before[part], part
    # consumers are not cut off
    assert await stored_secret_authenticates(
        emulator.settings, registered["application"]["clientId"], unique_name="dicom-ingest-prod"
    )


async def test_a_redelivered_decommission_of_a_public_client_answers_like_the_first(
    emulator: RunningEmulator,
) -> None:
    assert (await harness.register(sample("public-client")))["status"] == "succeeded"
    request = reference_request("decommission", "dicom-viewer", VIEWER_OWNER, "SNOW-DEC-PC")

    first = await harness.register(request, message_id="dec-pc", delivery_count=1)
    again = await harness.register(request, message_id="dec-pc", delivery_count=2)

    assert first["status"] == "succeeded", first["errors"]
    assert first["removed"] == {
        "application": True,
        "servicePrincipal": True,
        "keyVaultSecretVersionsDisabled": 0,
        "roleAssignments": 0,
        "keyVaultCertificateVersionsDisabled": 0,
    }
    assert again == first
    assert Tenant.read(emulator).apps("dicom-viewer") == []


async def test_a_stale_decommission_leaves_a_later_application_of_the_same_name_alone(
    emulator: RunningEmulator,
) -> None:
    assert (await harness.register(sample("service-client")))["status"] == "succeeded"
    request = reference_request("decommission", "dicom-ingest-prod", DICOM_INGEST_OWNER, "SNOW-DEC-STALE")
    first = await harness.register(request, message_id="dec-stale", delivery_count=1)
    assert first["status"] == "succeeded", first["errors"]
    # The same name is registered again by a new ticket...
    again = await harness.register(sample("service-client", requestId="SNOW-CHG0099998"))
    assert again["status"] == "succeeded", again["errors"]
    assert again["application"]["clientId"] != first["application"]["clientId"]

    # ...and only then is the decommission delivered once more (its lock was lost).
    redelivered = await harness.register(request, message_id="dec-stale", delivery_count=2)

    assert redelivered == first
    app = Tenant.read(emulator).app("dicom-ingest-prod")
    assert app["appId"] == again["application"]["clientId"]
    assert await stored_secret_authenticates(
        emulator.settings, again["application"]["clientId"], unique_name="dicom-ingest-prod"
    )


def nothing_of(emulator: RunningEmulator, unique_name: str) -> None:
    """No application, service principal, consent, credential or readable value of this name."""
    tenant = Tenant.read(emulator)
    assert tenant.apps(unique_name) == []
    assert tenant.enabled_versions(f"app-{unique_name}") == []
    client_ids = {a["appId"] for a in tenant.snapshot["applications"]}
    orphans = [
        s
        for s in tenant.snapshot["servicePrincipals"]
        if s.get("tags") == ["WindowsAzureActiveDirectoryIntegratedApp"] and s["appId"] not in client_ids
    ]
    assert orphans == []


async def test_a_tenant_policy_forbidding_secrets_leaves_no_new_application_behind(
    emulator: RunningEmulator,
) -> None:
    emulator.admin.policy(secretsAllowed=False)

    settled = await harness.settle(sample("service-client"))

    assert settled.reply is not None and settled.reply["status"] == "rejected"
    [error] = settled.reply["errors"]
    assert (error["field"], error["code"]) == ("credential", "CredentialTypeNotAllowedAsPerAppPolicy")
    assert "Nothing was left behind" in error["message"]
    nothing_of(emulator, "dicom-ingest-prod")
    assert Tenant.read(emulator).snapshot["oauth2PermissionGrants"] == before_grants(emulator)


def before_grants(emulator: RunningEmulator) -> list[dict[str, object]]:
    """The seeded tenant's grants (the two identities hold none: consent is by app role)."""
    emulator_snapshot = emulator.admin.snapshot()
    client_ids = {a["appId"] for a in emulator_snapshot["applications"]}
    sps = {s["id"] for s in emulator_snapshot["servicePrincipals"] if s["appId"] in client_ids}
    return [g for g in emulator_snapshot["oauth2PermissionGrants"] if g["clientId"] in sps]


@pytest_asyncio.fixture
async def fresh_clients(emulator: RunningEmulator) -> AsyncIterator[RunningEmulator]:
    """The service's clients rebuilt after the test: its tokens carry the roles of their time."""
    yield emulator
    await testing.reset_clients()
    testing.forget()


async def test_a_missing_consent_permission_leaves_no_new_application_behind(
    fresh_clients: RunningEmulator, settings_env: Any
) -> None:
    emulator = fresh_clients
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    revoke(emulator, "AppRoleAssignment.ReadWrite.All")
    await testing.reset_clients()
    body = sample("service-client")
    body["apiPermissions"].append({"api": "microsoft-graph", "application": ["User.Read.All"]})

    settled = await harness.settle(body)

    assert settled.reply is not None and settled.reply["status"] == "rejected"
    [error] = settled.reply["errors"]
    assert "AppRoleAssignment.ReadWrite.All" in error["message"]
    assert "Nothing was left behind" in error["message"]
    nothing_of(emulator, "dicom-ingest-prod")


async def test_a_permanent_failure_on_an_existing_application_says_what_changed(
    fresh_clients: RunningEmulator,
) -> None:
    emulator = fresh_clients
    assert (await harness.register(sample("service-client")))["status"] == "succeeded"
    revoke(emulator, "DelegatedPermissionGrant.ReadWrite.All")
    await testing.reset_clients()
    changed = sample("service-client", requestId="SNOW-CHG0012999")
    changed["application"]["displayName"] = "DICOM ingest (renamed)"
    changed["apiPermissions"].append({"api": "microsoft-graph", "delegated": ["User.Read"]})

    settled = await harness.settle(changed)

    assert settled.reply is not None and settled.reply["status"] == "rejected"
    codes = [(e["field"], e["code"]) for e in settled.reply["errors"]]
    assert codes == [("request", "Authorization_RequestDenied"), ("application", "changed_before_failure")]
    what = settled.reply["errors"][1]["message"]
    assert "its properties" in what and "its credential" in what and "consent" not in what
    assert Tenant.read(emulator).app("dicom-ingest-prod")["displayName"] == "DICOM ingest (renamed)"


async def test_a_flood_of_rotate_tickets_retires_nothing_consumers_may_still_read(
    emulator: RunningEmulator,
) -> None:
    registered = await harness.register(sample("service-client"))
    first_key = registered["credential"]["keyId"]
    replies = [
        await harness.register(
            reference_request("rotate", "dicom-ingest-prod", DICOM_INGEST_OWNER, f"SNOW-ROT-{n}")
        )
        for n in range(3)
    ]

    assert [r["status"] for r in replies] == ["succeeded"] * 3, [r["errors"] for r in replies]
    rotated = replies[0]["credential"]["keyId"]
    assert rotated != first_key
    # the later tickets, inside the first rotation's grace period, answer with its credential
    assert [r["credential"]["keyId"] for r in replies[1:]] == [rotated, rotated]
    tenant = Tenant.read(emulator)
    keys = {p["keyId"] for p in tenant.app("dicom-ingest-prod")["passwordCredentials"]}
    assert keys == {first_key, rotated}  # the credential consumers read before is still valid
    assert tenant.stored_key_ids("app-dicom-ingest-prod") == keys
    latest = tenant.latest_version("app-dicom-ingest-prod")
    assert latest is not None and latest["tags"]["keyId"] == rotated
