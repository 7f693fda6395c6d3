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
