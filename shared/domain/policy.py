"""The service's request policy: which APIs and permissions a ticket may ask for, where its
redirect URIs may point, and which secret it gets. Pure: the settings are handed in as a
``RequestPolicy``.

**Default deny.** The API policy is the catalog: each entry names a resource (appId or
identifier URI), the delegated scopes and the application roles a ticket may request of it.
Anything else, on any API, is refused before a single write. The default allows what the
seeds need (Azure Healthcare APIs ``user_impersonation``; the DICOM service's
``user_impersonation`` and ``Dicom.ReadWrite``; Microsoft Graph's sign-in scopes) and no
application role at all; an operator widens it with ``API_POLICY``.

A request may name an API by catalog name, appId or identifier URI; ``check_policy`` decides
what it can from the names alone, and the registration workflow decides the rest once each
reference is resolved to its service principal (``resolved_problems``), before any write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from shared.domain.durations import Duration, parse_duration
from shared.domain.records import ResourceApi
from shared.messages.base import FieldError
from shared.messages.fields import CATALOG_NAME_PATTERN, GUID_PATTERN
from shared.messages.redirect_uris import http_host, is_loopback
from shared.messages.requests import (
    DEFAULT_SECRET_DESCRIPTION,
    ApiPermission,
    CertificateCredential,
    NoCredential,
    RegisterRequest,
    RegistrationRequest,
    SecretCredential,
)

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
AZURE_HEALTHCARE_APIS_APP_ID = "4f6778d8-5aef-43dc-a1ff-b073724b9495"
DICOM_RESOURCE = "https://dicom.healthcareapis.azure.com"


@dataclass(frozen=True)
class ApiEntry:
    """One API a ticket may ask permissions of, and exactly which."""

    name: str
    resource: str
    delegated: frozenset[str] = frozenset()
    application: frozenset[str] = frozenset()

    def allows(self, kind: str, permission: str) -> bool:
        """Whether ``permission`` (a scope for ``delegated``, an app role for ``application``)
        is allowed. Entra compares permission names case-insensitively."""
        allowed = self.delegated if kind == "delegated" else self.application
        folded = permission.casefold()
        return any(folded == name.casefold() for name in allowed)


DEFAULT_API_POLICY: Mapping[str, ApiEntry] = MappingProxyType(
    {
        "microsoft-graph": ApiEntry(
            "microsoft-graph",
            MICROSOFT_GRAPH_APP_ID,
            delegated=frozenset({"openid", "profile", "email", "offline_access", "User.Read"}),
        ),
        "azure-healthcare-apis": ApiEntry(
            "azure-healthcare-apis", AZURE_HEALTHCARE_APIS_APP_ID, delegated=frozenset({"user_impersonation"})
        ),
        "dicom": ApiEntry(
            "dicom", DICOM_RESOURCE, delegated=frozenset({"user_impersonation", "Dicom.ReadWrite"})
        ),
    }
)


@dataclass(frozen=True)
class RequestPolicy:
    """The settings a request is checked against (shared.settings builds it)."""

    apis: Mapping[str, ApiEntry]
    max_secret_lifetime: Duration
    default_secret_lifetime: Duration
    # Empty: any host; otherwise https redirect URIs must be on one of these domains.
    redirect_uri_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestedSecret:
    """The secret a register request asks for, in absolute time."""

    description: str
    start: datetime
    end: datetime


def requested_secret(
    request: RegisterRequest, policy: RequestPolicy, now: datetime
) -> RequestedSecret | None:
    """The secret to issue now for `request`, or None when it asks for none (defaults applied)."""
    credential = request.credential
    if isinstance(credential, NoCredential | CertificateCredential):
        return None
    if credential is None:
        if request.application.client_type == "public":
            return None
        return RequestedSecret(DEFAULT_SECRET_DESCRIPTION, now, policy.default_secret_lifetime.add_to(now))
    if credential.lifetime is not None:
        return RequestedSecret(credential.description, now, parse_duration(credential.lifetime).add_to(now))
    assert credential.start_date_time is not None and credential.end_date_time is not None  # by validation
    return RequestedSecret(credential.description, credential.start_date_time, credential.end_date_time)


@dataclass(frozen=True)
class RequestedCertificate:
    """The certificate a register request asks Key Vault for."""

    subject: str
    lifetime: str
    exportable: bool

    @property
    def validity_months(self) -> int:
        return int(self.lifetime.removeprefix("P").removesuffix("M"))


def requested_certificate(request: RegisterRequest) -> RequestedCertificate | None:
    """The certificate to issue for ``request``, or None when it asks for another credential."""
    credential = request.credential
    if not isinstance(credential, CertificateCredential):
        return None
    subject = credential.subject or f"CN={request.unique_name}"
    return RequestedCertificate(subject, credential.lifetime, credential.exportable)


def resolve_api(api: str, policy: RequestPolicy) -> str | None:
    """The resource appId or identifier URI to look a request's ``api`` up by; None for a
    catalog name the policy does not have."""
    if re.fullmatch(GUID_PATTERN, api):
        return api.lower()
    if _is_catalog_name(api):
        entry = policy.apis.get(api)
        return entry.resource if entry is not None else None
    return api


def _is_catalog_name(api: str) -> bool:
    # A lower-case GUID fits the catalog-name pattern too: it is an appId.
    return re.fullmatch(CATALOG_NAME_PATTERN, api) is not None and re.fullmatch(GUID_PATTERN, api) is None


def _key(reference: str) -> str:
    return reference.lower().rstrip("/")


def entry_for(reference: str, policy: RequestPolicy) -> ApiEntry | None:
    """The policy entry a request's ``api`` names by catalog name, appId or identifier URI as
    written in the policy; None when only its service principal can tell (or none matches)."""
    if reference in policy.apis:
        return policy.apis[reference]
    key = _key(reference)
    return next((e for e in policy.apis.values() if _key(e.resource) == key), None)


def entry_for_resource(resource: ResourceApi, policy: RequestPolicy) -> ApiEntry | None:
    """The policy entry of a resolved service principal, by its appId or any of its names."""
    keys = {_key(resource.app_id), *(_key(n) for n in resource.names)}
    return next((e for e in policy.apis.values() if _key(e.resource) in keys), None)


def permission_problems(index: int, entry: ApiEntry, permission: ApiPermission) -> list[FieldError]:
    """One problem per permission of ``apiPermissions[index]`` that ``entry`` does not allow:
    the one place the API policy is applied to permissions."""
    return [
        FieldError(
            field=f"apiPermissions[{index}].{kind}[{j}]",
            code="permission_not_allowed",
            message=f"The service's policy does not allow this {'scope' if kind == 'delegated' else 'app role'} "
            f"of {entry.name}.",
        )
        for kind, names in (("delegated", permission.delegated), ("application", permission.application))
        for j, name in enumerate(names)
        if not entry.allows(kind, name)
    ]


def _duplicate(index: int) -> FieldError:
    return FieldError(
        field=f"apiPermissions[{index}].api",
        code="duplicate",
        message="Names the same API as an earlier entry.",
    )


def resolved_problems(
    permissions: Sequence[ApiPermission], resources: Sequence[ResourceApi], policy: RequestPolicy
) -> list[FieldError]:
    """The policy's verdict on each API once resolved to its service principal: an API outside
    the policy, a permission the policy does not allow, or one API named twice (by any two
    references, e.g. its catalog name and its appId)."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, (permission, resource) in enumerate(zip(permissions, resources, strict=True)):
        if resource.service_principal_id in seen:
            errors.append(_duplicate(i))
        seen.add(resource.service_principal_id)
        entry = entry_for(permission.api, policy) or entry_for_resource(resource, policy)
        if entry is None:
            errors.append(_not_in_policy(i, policy))
            continue
        errors.extend(permission_problems(i, entry, permission))
    return errors


def _not_in_policy(index: int, policy: RequestPolicy) -> FieldError:
    names = ", ".join(sorted(policy.apis))
    return FieldError(
        field=f"apiPermissions[{index}].api",
        code="api_not_allowed",
        message=f"The service's policy allows permissions only of its catalog's APIs ({names}); "
        "an operator can add one (API_POLICY).",
    )


def check_policy(request: RegistrationRequest, policy: RequestPolicy, now: datetime) -> list[FieldError]:
    """The problems that depend on the service's policy and can be found from the request
    alone; empty when the request may go on to resolve its APIs (``resolved_problems``)."""
    if not isinstance(request, RegisterRequest):
        return []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, permission in enumerate(request.api_permissions):
        if _is_catalog_name(permission.api) and permission.api not in policy.apis:
            errors.append(_not_in_policy(i, policy))
            continue
        entry = entry_for(permission.api, policy)
        key = entry.name if entry is not None else _key(permission.api)
        if key in seen:
            errors.append(_duplicate(i))
        seen.add(key)
        if entry is not None:
            errors.extend(permission_problems(i, entry, permission))
    errors.extend(_redirect_uri_policy(request, policy.redirect_uri_domains))
    errors.extend(_credential_policy(request, policy, now))
    return errors


def _redirect_uri_policy(request: RegisterRequest, domains: Sequence[str]) -> list[FieldError]:
    if not domains:
        return []
    uris = request.application.redirect_uris
    lists: Iterable[tuple[str, Sequence[str]]] = (
        ("web", uris.web),
        ("publicClient", uris.public_client),
        ("spa", uris.spa),
    )
    return [
        FieldError(
            field=f"application.redirectUris.{name}[{j}]",
            code="domain_not_allowed",
            message="The service's policy allows redirect URIs only on its domains: "
            + ", ".join(domains)
            + ".",
        )
        for name, values in lists
        for j, uri in enumerate(values)
        if not _on_allowed_domain(http_host(uri), domains)
    ]


def _on_allowed_domain(host: str | None, domains: Sequence[str]) -> bool:
    if host is None or is_loopback(host):
        return True  # native-app schemes and loopback never leave the device
    return any(host == d or host.endswith(f".{d}") for d in domains)


def _credential_policy(request: RegisterRequest, policy: RequestPolicy, now: datetime) -> list[FieldError]:
    credential = request.credential
    if not isinstance(credential, SecretCredential):
        return []
    maximum = policy.max_secret_lifetime
    too_long = f"The secret's lifetime must not exceed {maximum}."
    if credential.lifetime is not None:
        if parse_duration(credential.lifetime).never_exceeds(maximum):
            return []
        return [FieldError(field="credential.lifetime", code="lifetime_too_long", message=too_long)]
    assert credential.start_date_time is not None and credential.end_date_time is not None  # by validation
    end = credential.end_date_time
    try:
        within = end <= maximum.add_to(credential.start_date_time)
    except OverflowError:
        within = True  # the maximum reaches past year 9999, which no date can
    if not within:
        return [FieldError(field="credential.endDateTime", code="lifetime_too_long", message=too_long)]
    if end <= now:
        return [FieldError(field="credential.endDateTime", code="expired", message="Must be in the future.")]
    return []
