"""What the gateway tests build in, and read back from, the emulated tenant: a desired
application, an application the service does not own, and the emulator's request log."""

from __future__ import annotations

import dataclasses
from typing import Any

from emulator.launcher import RunningEmulator
from shared.adapters.graph.applications import ApplicationsGateway
from shared.domain.records import AppRecord, DesiredApplication

OWNER = "CHG-OWNER-0001"
TAGS = ("managed-by:adapter-tests", "request:ADAPTER-1")


def desired(display_name: str = "Adapter test", **changes: Any) -> DesiredApplication:
    """A confidential client with one web redirect URI and no API permissions."""
    base = DesiredApplication(
        display_name=display_name,
        tags=TAGS,
        notes=None,
        web_redirect_uris=("https://app.contoso.com/signin",),
        public_client_redirect_uris=(),
        spa_redirect_uris=(),
        is_fallback_public_client=False,
        required_resource_access=(),
        service_management_reference=OWNER,
    )
    return dataclasses.replace(base, **changes)


async def new_app(
    applications: ApplicationsGateway, unique_name: str, display_name: str = "Adapter test"
) -> AppRecord:
    """A new application the service created (and so owns)."""
    app = await applications.create_application(unique_name, desired(display_name))
    assert app is not None, f"{unique_name} is taken"
    return app


def apps_named(emulator: RunningEmulator, unique_name: str) -> list[dict[str, Any]]:
    """The tenant's applications with this uniqueName, from the emulator's snapshot."""
    return [a for a in emulator.admin.snapshot()["applications"] if a.get("uniqueName") == unique_name]


def admin_app(emulator: RunningEmulator, unique_name: str) -> dict[str, Any]:
    """An application the admin created: the service does not own it."""
    created = emulator.admin.graph(
        "PATCH",
        f"/applications(uniqueName='{unique_name}')",
        headers={"Prefer": "create-if-missing"},
        json={"displayName": "Someone else's"},
    )
    assert created.status_code == 201, created.text
    app: dict[str, Any] = created.json()
    return app


def faults_seen(emulator: RunningEmulator, service: str, method: str, path_part: str) -> list[str | None]:
    """The fault (or None) each matching request of the log met, in order."""
    return [
        e["fault"]
        for e in emulator.admin.requests()["entries"]
        if e["service"] == service and e["method"] == method and path_part in e["path"]
    ]
