"""The tenant's directory: applications, service principals, users, grants and assignments,
kept as Graph JSON objects (camelCase), with the indexes Graph's alternate keys need.

Secret values are kept apart from the objects (``secret_values``), so that no read path can
return them by accident: Graph returns ``secretText`` only in the ``addPassword`` response.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import Clock, parse_iso

Json = dict[str, Any]


@dataclass
class Directory:
    clock: Clock
    tenant_id: str
    applications: dict[str, Json] = field(default_factory=dict)
    app_by_app_id: dict[str, str] = field(default_factory=dict)
    app_by_unique_name: dict[str, str] = field(default_factory=dict)
    service_principals: dict[str, Json] = field(default_factory=dict)
    sp_by_app_id: dict[str, str] = field(default_factory=dict)
    users: dict[str, Json] = field(default_factory=dict)
    oauth2_permission_grants: dict[str, Json] = field(default_factory=dict)
    app_role_assignments: dict[str, Json] = field(default_factory=dict)
    # object id -> ids of its owners (service principals or users)
    owners: dict[str, list[str]] = field(default_factory=dict)
    # owner id -> ids of the objects it owns
    owned: dict[str, list[str]] = field(default_factory=dict)
    # keyId -> secretText of a password credential
    secret_values: dict[str, str] = field(default_factory=dict)
    # object id -> time.monotonic() at which it is replicated (absent: replicated)
    ready_at: dict[str, float] = field(default_factory=dict)

    # -- identity ---------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def add_owner(self, object_id: str, owner_id: str) -> None:
        owners = self.owners.setdefault(object_id, [])
        if owner_id not in owners:
            owners.append(owner_id)
            self.owned.setdefault(owner_id, []).append(object_id)

    def remove_owned_object(self, object_id: str) -> None:
        for owner_id in self.owners.pop(object_id, []):
            owned = self.owned.get(owner_id)
            if owned and object_id in owned:
                owned.remove(object_id)

    # -- replication lag --------------------------------------------------------------------

    def lag(self, object_id: str, seconds: float) -> None:
        if seconds > 0:
            self.ready_at[object_id] = time.monotonic() + seconds

    def is_replicated(self, object_id: str) -> bool:
        ready = self.ready_at.get(object_id)
        if ready is None:
            return True
        if time.monotonic() >= ready:
            del self.ready_at[object_id]
            return True
        return False

    # -- credentials ------------------------------------------------------------------------

    def valid_secret(self, app: Json, secret: str, now: dt.datetime) -> tuple[bool, bool]:
        """(matches a password credential, that credential is valid at ``now``)."""
        for credential in app.get("passwordCredentials", []):
            if self.secret_values.get(credential["keyId"]) != secret:
                continue
            start = parse_iso(credential["startDateTime"])
            end = parse_iso(credential["endDateTime"])
            return True, start <= now < end
        return False, False

    def graph_roles(self, client_sp_id: str, resource_app_id: str) -> list[str]:
        """Values of the app roles ``client_sp_id`` holds on the resource ``resource_app_id``."""
        resource_sp_id = self.sp_by_app_id.get(resource_app_id)
        if resource_sp_id is None:
            return []
        resource = self.service_principals[resource_sp_id]
        by_id = {role["id"]: role["value"] for role in resource.get("appRoles", [])}
        return sorted(
            by_id[a["appRoleId"]]
            for a in self.app_role_assignments.values()
            if a["principalId"] == client_sp_id
            and a["resourceId"] == resource_sp_id
            and a["appRoleId"] in by_id
        )
