"""Least privilege: with one of its three Graph application permissions taken away the service
refuses clearly, naming the permission it lacks; and it cannot change an application it does
not own, whatever a request names."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from emulator.launcher import RunningEmulator
from emulator.seed import SERVICE_ROLES
from shared import testing
from tests import harness
from tests.e2e.tenant import GRAPH_APP_ID, Tenant
from tests.e2e.test_registration import GRAPH_READER_POLICY, sample, service_request


async def _fresh_token() -> None:
    """Tokens carry the roles granted when they were issued: start the service's clients anew."""
    await testing.reset_clients()
    testing.forget()


@pytest_asyncio.fixture
async def service(emulator: RunningEmulator, settings_env: Any) -> AsyncIterator[RunningEmulator]:
    """The emulator, with the service's clients rebuilt before and after (after: so that the
    next test does not inherit a token with fewer roles), and a policy that allows one
    application permission, so that every one of the service's permissions is exercised."""
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    await _fresh_token()
    yield emulator
    await _fresh_token()


def revoke(emulator: RunningEmulator, role: str) -> None:
    """As the admin: remove one of the service identity's Graph app role assignments."""
    tenant = Tenant.read(emulator)
    [service_sp] = tenant.service_principals(emulator.settings["AZURE_CLIENT_ID"])
    [graph_sp] = tenant.service_principals(GRAPH_APP_ID)
    role_id = next(r["id"] for r in graph_sp["appRoles"] if r["value"] == role)
    [assignment] = [a for a in tenant.assignments(service_sp["id"]) if a["appRoleId"] == role_id]
    response = emulator.admin.graph(
        "DELETE", f"/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo/{assignment['id']}"
    )
    assert response.status_code == 204, response.text


def with_application_permission(body: dict[str, Any]) -> dict[str, Any]:
    body["apiPermissions"] = [{"api": "microsoft-graph", "application": ["User.Read.All"]}]
    return body


@pytest.mark.parametrize(
    "role, body",
    [
        ("DelegatedPermissionGrant.ReadWrite.All", sample("public-client")),
        ("AppRoleAssignment.ReadWrite.All", with_application_permission(sample("public-client"))),
        ("Application.ReadWrite.OwnedBy", sample("public-client")),
    ],
    ids=["grants", "app-role-assignments", "applications"],
)
async def test_less_privilege_fails_naming_the_missing_permission(
    service: RunningEmulator, role: str, body: dict[str, Any]
) -> None:
    assert role in SERVICE_ROLES
    revoke(service, role)
    await _fresh_token()

    settled = await harness.settle(body)

    assert settled.reply is not None, settled.dead_letter_reason
    assert settled.reply["status"] in ("rejected", "failed")
    messages = " ".join(error["message"] for error in settled.reply["errors"])
    assert role in messages, settled.reply["errors"]


async def test_with_least_privilege_the_service_works(service: RunningEmulator) -> None:
    tenant = Tenant.read(service)
    [service_sp] = tenant.service_principals(service.settings["AZURE_CLIENT_ID"])
    [graph_sp] = tenant.service_principals(GRAPH_APP_ID)
    names = {r["id"]: r["value"] for r in graph_sp["appRoles"]}
    assert sorted(names[a["appRoleId"]] for a in tenant.assignments(service_sp["id"])) == sorted(
        SERVICE_ROLES
    )
    reply = await harness.register(with_application_permission(sample("service-client")))
    assert reply["status"] == "succeeded", reply["errors"]


def admin_app(emulator: RunningEmulator, unique_name: str, tags: list[str]) -> dict[str, Any]:
    """An application (and service principal) the admin created: the service does not own it."""
    created = emulator.admin.graph(
        "PATCH",
        f"/applications(uniqueName='{unique_name}')",
        headers={"Prefer": "create-if-missing"},
        json={"displayName": "Someone else's", "tags": tags},
    )
    assert created.status_code == 201, created.text
    app: dict[str, Any] = created.json()
    sp = emulator.admin.graph("POST", "/servicePrincipals", json={"appId": app["appId"]})
    assert sp.status_code == 201, sp.text
    return app


def decommission(unique_name: str) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0066666",
        "action": "decommission",
        "requestedBy": "mallory@contoso.com",
        "application": {"uniqueName": unique_name, "serviceManagementReference": "CI0006666"},
    }


# Tagged as if the service managed it: the tag is not what protects the app, ownership is.
@pytest.mark.parametrize(
    "tags", [[], ["managed-by:entra-app-registration-service"]], ids=["untagged", "tagged"]
)
async def test_an_application_the_service_does_not_own_is_left_unchanged(
    emulator: RunningEmulator, tags: list[str]
) -> None:
    admin_app(emulator, "not-ours", tags)
    before = Tenant.read(emulator)

    registered = await harness.register(
        service_request("not-ours", credential={"type": "secret", "lifetime": "P3M"})
    )
    decommissioned = (await harness.settle(decommission("not-ours"))).reply

    for reply in (registered, decommissioned):
        assert reply is not None and reply["status"] == "rejected", reply
        assert reply["errors"][0]["field"] in (
            "application.uniqueName",
            "application.serviceManagementReference",
            "request",
        ), reply["errors"]
    after = Tenant.read(emulator)
    assert after.app("not-ours") == before.app("not-ours")
    app_id = before.app("not-ours")["appId"]
    assert after.service_principals(app_id) == before.service_principals(app_id)
    assert after.secret("app-not-ours") is None
