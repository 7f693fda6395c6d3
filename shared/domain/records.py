"""Plain records of what the platform holds, as the workflows and decisions see it.

The adapters turn SDK models into these and back; nothing above the adapters sees a kiota
model or an azure-core object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.domain.secret_value import SecretValue


@dataclass(frozen=True)
class PasswordInfo:
    """A password credential as Graph lists it (never its value)."""

    key_id: str
    display_name: str
    hint: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class KeyInfo:
    """A certificate credential (keyCredential) as Graph lists it. ``thumbprint`` is the
    certificate's SHA-1 thumbprint in upper-case hex (Graph's ``customKeyIdentifier``, as the
    portal shows it)."""

    key_id: str
    display_name: str
    thumbprint: str
    start: dt.datetime
    end: dt.datetime
    usage: str = "Verify"


@dataclass(frozen=True)
class AppRecord:
    """An application registration: what the workflows read of it."""

    object_id: str
    app_id: str
    unique_name: str | None
    display_name: str
    tags: tuple[str, ...]
    passwords: tuple[PasswordInfo, ...]
    # The owner reference (Graph's serviceManagementReference); None on apps registered before it.
    service_management_reference: str | None = None
    keys: tuple[KeyInfo, ...] = ()


@dataclass(frozen=True)
class NewPassword:
    """addPassword's answer: the credential, and its value, which exists this once."""

    info: PasswordInfo
    secret: SecretValue = field(repr=False)


@dataclass(frozen=True)
class ResourceApi:
    """A resource's service principal: the ids of its scopes and app roles by name."""

    service_principal_id: str
    app_id: str
    display_name: str
    scopes: dict[str, str]
    roles: dict[str, str]
    # Its servicePrincipalNames: the identifier URIs (and appId) it answers to.
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """An AllPrincipals delegated permission grant (oauth2PermissionGrant)."""

    id: str
    resource_id: str
    scope: str


@dataclass(frozen=True)
class RoleAssignment:
    """An app role assignment: an application permission granted to a client."""

    id: str
    resource_id: str
    app_role_id: str


@dataclass(frozen=True)
class ResourceAccess:
    """One entry of an application's requiredResourceAccess, by permission ids."""

    resource_app_id: str
    scope_ids: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DesiredApplication:
    """What a registration converges an application to."""

    display_name: str
    tags: tuple[str, ...]
    notes: str | None
    web_redirect_uris: tuple[str, ...]
    public_client_redirect_uris: tuple[str, ...]
    spa_redirect_uris: tuple[str, ...]
    is_fallback_public_client: bool
    required_resource_access: tuple[ResourceAccess, ...]
    service_management_reference: str


@dataclass(frozen=True)
class StoredVersion:
    """One version of an application's Key Vault secret: its properties and tags, never its value."""

    id: str
    version: str
    key_id: str | None
    enabled: bool
    expires_on: dt.datetime | None
    created_on: dt.datetime | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class CertificateVersion:
    """One version of an application's Key Vault certificate: its public part and properties.
    Its private key stays in the vault; ``key_id`` is the versioned key that signs with it."""

    id: str
    version: str
    thumbprint: str
    enabled: bool
    not_before: dt.datetime | None
    expires_on: dt.datetime | None
    created_on: dt.datetime | None
    tags: Mapping[str, str]
    # Only when read one by one (a listing carries neither): the versioned key, and the DER
    # certificate (public).
    key_id: str = ""
    cer: bytes = field(default=b"", repr=False)

    def valid_at(self, now: dt.datetime) -> bool:
        return (
            self.enabled
            and (self.not_before is None or self.not_before <= now)
            and (self.expires_on is None or now < self.expires_on)
        )


@dataclass(frozen=True)
class NewKey:
    """A certificate's public part to attach to an application as a key credential."""

    display_name: str
    cer: bytes = field(repr=False)
    thumbprint: str
    start: dt.datetime
    end: dt.datetime
