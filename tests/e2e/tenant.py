"""What a user would check in the tenant and the vault after the service ran, read from the
emulator's snapshot (secret values are never in it) and through the official SDKs."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from emulator.launcher import RunningEmulator
from tests.emulator.clients import credential, secret_client

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Tenant:
    snapshot: dict[str, Any]

    @classmethod
    def read(cls, emulator: RunningEmulator) -> Tenant:
        return cls(emulator.admin.snapshot())

    @property
    def now(self) -> dt.datetime:
        return parse_time(self.snapshot["clock"])

    def apps(self, unique_name: str) -> list[dict[str, Any]]:
        return [a for a in self.snapshot["applications"] if (a.get("uniqueName") or "") == unique_name]

    def app(self, unique_name: str) -> dict[str, Any]:
        apps = self.apps(unique_name)
        assert len(apps) == 1, f"{len(apps)} applications named {unique_name}"
        return apps[0]

    def service_principals(self, app_id: str) -> list[dict[str, Any]]:
        return [s for s in self.snapshot["servicePrincipals"] if s["appId"] == app_id]

    def grants(self, client_sp_id: str) -> list[dict[str, Any]]:
        return [g for g in self.snapshot["oauth2PermissionGrants"] if g["clientId"] == client_sp_id]

    def assignments(self, principal_id: str) -> list[dict[str, Any]]:
        return [a for a in self.snapshot["appRoleAssignments"] if a["principalId"] == principal_id]

    def secret(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.snapshot["vault"]["secrets"] if s["name"] == name), None)

    def enabled_versions(self, name: str) -> list[dict[str, Any]]:
        secret = self.secret(name)
        return [v for v in (secret or {}).get("versions", []) if v["attributes"]["enabled"]]

    def stored_key_ids(self, name: str) -> set[str]:
        return {v["tags"].get("keyId") for v in self.enabled_versions(name)}

    def orphans(self, unique_name: str) -> list[dict[str, Any]]:
        """Credentials the service created whose value is in no enabled Key Vault version
        (none when no application of the name exists)."""
        apps = self.apps(unique_name)
        if not apps:
            return []
        app = self.app(unique_name)
        stored = self.stored_key_ids(f"app-{unique_name}")
        return [
            p
            for p in app["passwordCredentials"]
            if "[managed:" in (p["displayName"] or "") and p["keyId"] not in stored
        ]

    def certificate_versions(self, name: str) -> list[dict[str, Any]]:
        """The versions of Key Vault certificate ``name`` (thumbprint ``x5t``, validity, tags)."""
        found = next((c for c in self.snapshot["certificates"] if c["name"] == name), None)
        return [] if found is None else list(found["versions"])

    def managed_keys(self, unique_name: str) -> list[dict[str, Any]]:
        """The key credentials the service put on the application (its marker in the name)."""
        return [k for k in self.app(unique_name)["keyCredentials"] if "[managed:" in (k["displayName"] or "")]

    def latest_version(self, name: str) -> dict[str, Any] | None:
        secret = self.secret(name)
        if not secret:
            return None
        latest = secret.get("latest")
        return next((v for v in secret["versions"] if v["version"] == latest), None)


def add_password_by_hand(emulator: RunningEmulator, object_id: str, display_name: str) -> str:
    """A password credential added outside the service, as an administrator (or, by its name, a
    rotation) adds one: its keyId."""
    added = emulator.admin.graph(
        "POST",
        f"/applications/{object_id}/addPassword",
        json={"passwordCredential": {"displayName": display_name}},
    )
    assert added.status_code == 200, added.text
    return str(added.json()["keyId"])


async def token_with_stored_secret(
    settings: dict[str, str],
    client_id: str,
    key_vault_secret_id: str | None = None,
    unique_name: str | None = None,
    scope: str = "https://graph.microsoft.com/.default",
) -> str:
    """Read the secret from Key Vault as the service identity (by versioned id, or the
    unversioned name) and acquire a token with it, as a consumer of the secret would."""
    service = credential(settings)
    vault = secret_client(settings, service)
    try:
        if key_vault_secret_id:
            name, version = key_vault_secret_id.rstrip("/").split("/secrets/", 1)[1].split("/")
            value = (await vault.get_secret(name, version)).value
        else:
            value = (await vault.get_secret(f"app-{unique_name}")).value
        assert value
        client = credential(settings, client_id, value)
        try:
            token = await client.get_token(scope)
        finally:
            await client.close()
        return token.token
    finally:
        await vault.close()
        await service.close()


async def stored_secret_authenticates(
    settings: dict[str, str],
    client_id: str,
    key_vault_secret_id: str | None = None,
    unique_name: str | None = None,
) -> bool:
    """Whether the stored secret gets a token (see ``token_with_stored_secret``)."""
    return bool(await token_with_stored_secret(settings, client_id, key_vault_secret_id, unique_name))


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the emulator signed it; the test only reads what it says)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded
