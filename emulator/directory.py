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

    def remove_owner(self, object_id: str, owner_id: str) -> None:
        owners = self.owners.get(object_id)
        if owners and owner_id in owners:
            owners.remove(owner_id)
            owned = self.owned.get(owner_id)
            if owned and object_id in owned:
                owned.remove(object_id)

    def remove_owned_object(self, object_id: str) -> None:
        for owner_id in self.owners.pop(object_id, []):
            owned = self.owned.get(owner_id)
            if owned and object_id in owned:
                owned.remove(object_id)

    def owns(self, owner_id: str, object_id: str) -> bool:
        return owner_id in self.owners.get(object_id, ())

    # -- lifecycle --------------------------------------------------------------------------
    # Each create indexes the object at once (alternate keys and uniqueness see it even while
    # it replicates); readers that must not see it yet ask ``is_replicated``.

    def add_application(self, app: Json, owner_id: str | None, lag: float) -> Json:
        self.applications[app["id"]] = app
        self.app_by_app_id[app["appId"]] = app["id"]
        if app.get("uniqueName"):
            self.app_by_unique_name[app["uniqueName"].casefold()] = app["id"]
        if owner_id:
            self.add_owner(app["id"], owner_id)
        self.lag(app["id"], lag)
        return app

    def delete_application(self, object_id: str) -> list[str]:
        """Delete an application and, as Entra does, its service principal in this (home)
        tenant. Returns the secret values that were stored for it."""
        app = self.applications.pop(object_id)
        self.app_by_app_id.pop(app["appId"], None)
        if app.get("uniqueName"):
            self.app_by_unique_name.pop(app["uniqueName"].casefold(), None)
        self.remove_owned_object(object_id)
        self.ready_at.pop(object_id, None)
        values = [
            self.secret_values.pop(c["keyId"])
            for c in app.get("passwordCredentials", [])
            if c["keyId"] in self.secret_values
        ]
        sp_id = self.sp_by_app_id.get(app["appId"])
        if sp_id is not None:
            self.delete_service_principal(sp_id)
        return values

    def add_service_principal(self, sp: Json, owner_id: str | None, lag: float) -> Json:
        self.service_principals[sp["id"]] = sp
        self.sp_by_app_id[sp["appId"]] = sp["id"]
        if owner_id:
            self.add_owner(sp["id"], owner_id)
        self.lag(sp["id"], lag)
        return sp

    def delete_service_principal(self, sp_id: str) -> None:
        """Delete a service principal with the consent given to it and by it."""
        sp = self.service_principals.pop(sp_id)
        if self.sp_by_app_id.get(sp["appId"]) == sp_id:
            del self.sp_by_app_id[sp["appId"]]
        self.remove_owned_object(sp_id)
        for object_id in self.owned.pop(sp_id, []):
            owners = self.owners.get(object_id)
            if owners and sp_id in owners:
                owners.remove(sp_id)
        self.ready_at.pop(sp_id, None)
        for grant_id in [
            g["id"]
            for g in self.oauth2_permission_grants.values()
            if sp_id in (g["clientId"], g["resourceId"])
        ]:
            del self.oauth2_permission_grants[grant_id]
        for assignment_id in [
            a["id"]
            for a in self.app_role_assignments.values()
            if sp_id in (a["principalId"], a["resourceId"])
        ]:
            del self.app_role_assignments[assignment_id]

    def sync_service_principal(self, app: Json) -> None:
        """Entra keeps the home tenant's service principal in step with its application."""
        sp_id = self.sp_by_app_id.get(app["appId"])
        if sp_id is None:
            return
        sp = self.service_principals[sp_id]
        sp["appDisplayName"] = app.get("displayName")
        sp["servicePrincipalNames"] = [app["appId"], *app.get("identifierUris", [])]
        for key, value in (
            ("appRoles", app.get("appRoles")),
            ("oauth2PermissionScopes", app.get("api", {}).get("oauth2PermissionScopes")),
            ("signInAudience", app.get("signInAudience")),
        ):
            if value is None:
                sp.pop(key, None)
            else:
                sp[key] = value

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
