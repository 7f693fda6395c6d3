"""Through msgraph-sdk and plain HTTPS: the application properties the trust policy relies on,
as Graph documents them: ``serviceManagementReference`` (a string, filterable with ``eq``) and
``servicePrincipalLockConfiguration`` (an object of Booleans, replaced whole on PATCH); and the
seeded Exchange Online service principal with its application permission."""

from __future__ import annotations

import uuid

import pytest
from msgraph.generated.models.application import Application
from msgraph.generated.models.service_principal_lock_configuration import ServicePrincipalLockConfiguration

from emulator.launcher import RunningEmulator
from emulator.seed import EXCHANGE_APP_ID
from tests.emulator.graph_helpers import app_query, graph, upsert


async def test_reference_and_lock_are_written_read_and_filtered(emulator: RunningEmulator) -> None:
    name = f"owned-{uuid.uuid4()}"
    async with graph(emulator) as client:
        created = await client.applications_with_unique_name(name).patch(
            Application(
                display_name="owned",
                service_management_reference="CI0001001",
                service_principal_lock_configuration=ServicePrincipalLockConfiguration(
                    is_enabled=True, all_properties=True
                ),
            ),
            request_configuration=upsert(),
        )
        assert created is not None
        assert created.service_management_reference == "CI0001001"
        lock = created.service_principal_lock_configuration
        assert lock is not None and lock.is_enabled is True and lock.all_properties is True
        assert lock.credentials_with_usage_sign is None

        # a PATCH replaces the complex property whole
        await client.applications.by_application_id(str(created.id)).patch(
            Application(
                service_principal_lock_configuration=ServicePrincipalLockConfiguration(is_enabled=False)
            )
        )
        read = await client.applications.by_application_id(str(created.id)).get(
            request_configuration=app_query(
                select=["serviceManagementReference", "servicePrincipalLockConfiguration"]
            )
        )
        assert read is not None and read.service_principal_lock_configuration is not None
        assert read.service_principal_lock_configuration.is_enabled is False
        assert read.service_principal_lock_configuration.all_properties is None

        found = await client.applications.get(
            request_configuration=app_query(filter="serviceManagementReference eq 'CI0001001'")
        )
        assert found is not None and [a.id for a in found.value or []] == [created.id]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"servicePrincipalLockConfiguration": {"isEnabled": True, "everything": True}},
            "Invalid property 'everything'.",
        ),
        (
            {"servicePrincipalLockConfiguration": {"isEnabled": "yes"}},
            "Invalid value specified for property 'isEnabled'",
        ),
        ({"servicePrincipalLockConfiguration": True}, "servicePrincipalLockConfiguration"),
        ({"serviceManagementReference": 42}, "serviceManagementReference"),
    ],
    ids=["unknown-lock-property", "lock-not-boolean", "lock-not-object", "reference-not-string"],
)
def test_values_graph_refuses(emulator: RunningEmulator, body: dict[str, object], message: str) -> None:
    response = emulator.admin.graph(
        "PATCH",
        f"/applications(uniqueName='bad-{uuid.uuid4()}')",
        headers={"Prefer": "create-if-missing"},
        json={"displayName": "bad", **body},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "Request_BadRequest" and message in error["message"]


def test_exchange_online_is_seeded_with_its_application_permission(emulator: RunningEmulator) -> None:
    response = emulator.admin.graph(
        "GET", "/servicePrincipals", params={"$filter": f"appId eq '{EXCHANGE_APP_ID}'"}
    )
    assert response.status_code == 200, response.text
    [sp] = response.json()["value"]
    assert {(r["value"], tuple(r["allowedMemberTypes"])) for r in sp["appRoles"]} == {
        ("full_access_as_app", ("Application",))
    }
