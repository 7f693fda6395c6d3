"""The service's request policy: which APIs and permissions a ticket may ask for, and which
secret it gets. Pure: the settings are handed in as a ``RequestPolicy``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from shared.domain.durations import Duration, parse_duration
from shared.messages.base import FieldError
from shared.messages.fields import CATALOG_NAME_PATTERN, GUID_PATTERN
from shared.messages.requests import (
    DEFAULT_SECRET_DESCRIPTION,
    NoCredential,
    RegisterRequest,
    RegistrationRequest,
    SecretCredential,
)

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
AZURE_HEALTHCARE_APIS_APP_ID = "4f6778d8-5aef-43dc-a1ff-b073724b9495"

BUILTIN_API_CATALOG: Mapping[str, str] = MappingProxyType(
    {
        "microsoft-graph": MICROSOFT_GRAPH_APP_ID,
        "azure-healthcare-apis": AZURE_HEALTHCARE_APIS_APP_ID,
        "dicom": "https://dicom.healthcareapis.azure.com",
    }
)
DEFAULT_GRAPH_PERMISSION_ALLOWLIST = "User.Read,openid,profile,email,offline_access,User.Read.All"

# Microsoft Graph by identifier URI, in each national cloud; its appId is the same everywhere.
_GRAPH_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "canary.graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)


@dataclass(frozen=True)
class RequestPolicy:
    """The settings a request is checked against (shared.settings builds it)."""

    api_catalog: Mapping[str, str]
    graph_permission_allowlist: frozenset[str]
    max_secret_lifetime: Duration
    default_secret_lifetime: Duration


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
    if isinstance(credential, NoCredential):
        return None
    if credential is None:
        if request.application.client_type == "public":
            return None
        return RequestedSecret(DEFAULT_SECRET_DESCRIPTION, now, policy.default_secret_lifetime.add_to(now))
    if credential.lifetime is not None:
        return RequestedSecret(credential.description, now, parse_duration(credential.lifetime).add_to(now))
    assert credential.start_date_time is not None and credential.end_date_time is not None  # by validation
    return RequestedSecret(credential.description, credential.start_date_time, credential.end_date_time)


def resolve_api(api: str, policy: RequestPolicy) -> str | None:
    """The resource appId or identifier URI for a request's `api`; None for an unknown catalog name."""
    if re.fullmatch(GUID_PATTERN, api):
        return api.lower()
    if re.fullmatch(CATALOG_NAME_PATTERN, api):
        return policy.api_catalog.get(api)
    return api


def is_microsoft_graph(resource: str) -> bool:
    """Whether a resolved appId or identifier URI names Microsoft Graph (in any national cloud)."""
    lowered = resource.lower()
    if lowered in (MICROSOFT_GRAPH_APP_ID, f"api://{MICROSOFT_GRAPH_APP_ID}"):
        return True
    match = re.fullmatch(r"https://([^/:]+)(?::443)?(?:/.*)?", lowered)
    return match is not None and match[1] in _GRAPH_HOSTS


def graph_permission_allowed(name: str, policy: RequestPolicy) -> bool:
    """Whether a Microsoft Graph scope or app role is on the allow-list (Entra compares names case-insensitively)."""
    folded = name.casefold()
    return any(folded == allowed.casefold() for allowed in policy.graph_permission_allowlist)


def permission_allowed(resource: str, name: str, policy: RequestPolicy) -> bool:
    """Whether a ticket may ask for permission ``name`` of ``resource`` (the API as named or
    as resolved to its appId): the Microsoft Graph allow-list, the one place it is applied."""
    return not is_microsoft_graph(resource) or graph_permission_allowed(name, policy)


def permission_not_allowed(index: int, kind: str, position: int) -> FieldError:
    """The problem for ``apiPermissions[index].{kind}[position]`` outside the policy."""
    return FieldError(
        field=f"apiPermissions[{index}].{kind}[{position}]",
        code="permission_not_allowed",
        message="This Microsoft Graph permission is not on the service's allow-list.",
    )


def disallowed_permissions(
    index: int, resource: str, delegated: Sequence[str], application: Sequence[str], policy: RequestPolicy
) -> list[FieldError]:
    """One problem per permission of ``apiPermissions[index]`` the policy does not allow."""
    return [
        permission_not_allowed(index, kind, j)
        for kind, names in (("delegated", delegated), ("application", application))
        for j, name in enumerate(names)
        if not permission_allowed(resource, name, policy)
    ]


def check_policy(request: RegistrationRequest, policy: RequestPolicy, now: datetime) -> list[FieldError]:
    """The problems that depend on the service's policy; empty when the request may go ahead.

    Microsoft Graph is recognised by catalog name, appId or identifier URI here; the
    registration workflow runs ``disallowed_permissions`` again on each resolved appId.
    """
    if not isinstance(request, RegisterRequest):
        return []
    errors: list[FieldError] = []
    resources: set[str] = set()
    for i, permission in enumerate(request.api_permissions):
        resource = resolve_api(permission.api, policy)
        if resource is None:
            names = ", ".join(sorted(policy.api_catalog))
            errors.append(
                FieldError(
                    field=f"apiPermissions[{i}].api",
                    code="unknown_api",
                    message=f"Not a catalog name this service knows ({names}); "
                    "or give the resource's appId or identifier URI.",
                )
            )
            continue
        key = resource.lower().rstrip("/")
        if key in resources:
            errors.append(
                FieldError(
                    field=f"apiPermissions[{i}].api",
                    code="duplicate",
                    message="Names the same API as an earlier entry.",
                )
            )
        resources.add(key)
        errors.extend(
            disallowed_permissions(i, resource, permission.delegated, permission.application, policy)
        )
    errors.extend(_credential_policy(request, policy, now))
    return errors


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
