"""The inventory an operator or integrator asks for: every application the service manages,
its credentials and the days until each expires. Reads only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.services.dependencies import Dependencies
from shared.services.ownership import own_service_principal


@dataclass(frozen=True)
class CredentialRow:
    key_id: str
    description: str
    end: dt.datetime
    days_left: int


@dataclass(frozen=True)
class InventoryRow:
    unique_name: str | None
    display_name: str
    client_id: str
    owner: str | None
    credentials: tuple[CredentialRow, ...]

    @property
    def days_left(self) -> int | None:
        """Days until the last credential expires: what the application has left."""
        return max((c.days_left for c in self.credentials), default=None)


async def inventory(deps: Dependencies) -> list[InventoryRow]:
    """The applications the service identity owns and tags as managed, by uniqueName."""
    now = deps.now()
    owner = await own_service_principal(deps)
    rows = []
    async for app in deps.applications.owned_applications(owner):
        if deps.settings.service_tag not in app.tags:
            continue
        # Secrets and certificates alike (a certificate's description is its display name).
        held = [(p.key_id, p.display_name, p.end) for p in app.passwords]
        held += [(k.key_id, k.display_name, k.end) for k in app.keys]
        credentials = tuple(
            CredentialRow(key_id, name, end, (end - now).days)
            for key_id, name, end in sorted(held, key=lambda c: c[2])
        )
        rows.append(
            InventoryRow(
                app.unique_name, app.display_name, app.app_id, app.service_management_reference, credentials
            )
        )
    return sorted(rows, key=lambda r: r.unique_name or "")
