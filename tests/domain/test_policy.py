"""The request policy: secret lifetimes against the maximum, the secret a ticket gets, the API
policy (default deny, by any alias) and redirect-URI domains."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.domain.durations import parse_duration
from shared.domain.policy import (
    DEFAULT_API_POLICY,
    DICOM_RESOURCE,
    RequestedSecret,
    check_policy,
    entry_for,
    entry_for_resource,
    requested_secret,
    resolve_api,
    resolved_problems,
)
from shared.domain.records import ResourceApi
from shared.messages.base import FieldError
from shared.messages.parsing import parse_request
from shared.messages.requests import RegisterRequest
from tests.messages.requests_fixtures import (
    NOW,
    SAMPLES,
    VALID,
    public_with,
    register,
    settings,
    with_changes,
)

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


# ---------------------------------------------------------------- samples


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_valid_and_within_policy(sample: Path) -> None:
    request = parse_request(sample.read_bytes())
    assert check_policy(request, settings(), NOW) == []


# ---------------------------------------------------------------- policy: secret lifetimes


@pytest.mark.parametrize(
    ("lifetime", "maximum", "allowed"),
    [
        ("P3M", "P24M", True),
        ("P24M", "P24M", True),
        ("P24M", "P12M", False),
        ("P12M", "P12M", True),
        ("P12M", "P6M", False),
        ("P6M", "P6M", True),
        ("P6M", "P180D", False),
        ("P3M", "P100D", True),
    ],
)
def test_lifetime_against_the_maximum(lifetime: str, maximum: str, allowed: bool) -> None:
    request = register(with_changes("credential.lifetime", lifetime))
    policy = settings(MAX_SECRET_LIFETIME=maximum, DEFAULT_SECRET_LIFETIME="P1M")
    errors = check_policy(request, policy, NOW)
    assert errors == (
        []
        if allowed
        else [
            FieldError(
                field="credential.lifetime",
                code="lifetime_too_long",
                message=f"The secret's lifetime must not exceed {maximum}.",
            )
        ]
    )


@pytest.mark.parametrize(
    ("end", "allowed"),
    [
        ("2028-01-31T00:00:00Z", True),  # exactly 24 months
        ("2028-01-31T00:00:01Z", False),
        ("2028-02-29T00:00:00Z", False),
        ("2027-01-31T00:00:00Z", True),
    ],
)
def test_custom_dates_against_the_maximum(end: str, allowed: bool) -> None:
    credential = {"type": "secret", "startDateTime": "2026-01-31T00:00:00Z", "endDateTime": end}
    errors = check_policy(register(with_changes("credential", credential)), settings(), NOW)
    assert [(e.field, e.code) for e in errors] == (
        [] if allowed else [("credential.endDateTime", "lifetime_too_long")]
    )


def test_custom_dates_in_the_past_refused() -> None:
    credential = {
        "type": "secret",
        "startDateTime": "2025-01-01T00:00:00Z",
        "endDateTime": "2026-01-01T00:00:00Z",
    }
    errors = check_policy(register(with_changes("credential", credential)), settings(), NOW)
    assert [(e.field, e.code) for e in errors] == [("credential.endDateTime", "expired")]


def test_custom_dates_near_year_9999() -> None:
    credential = {
        "type": "secret",
        "startDateTime": "9999-06-01T00:00:00Z",
        "endDateTime": "9999-12-31T00:00:00Z",
    }
    assert check_policy(register(with_changes("credential", credential)), settings(), NOW) == []


def test_requested_secret() -> None:
    policy = settings(DEFAULT_SECRET_LIFETIME="P180D")
    lifetime = requested_secret(register(VALID), policy, NOW)
    assert lifetime == RequestedSecret("ingest job", NOW, datetime(2026, 7, 15, 9, 30, tzinfo=UTC))
    default = requested_secret(register(with_changes("credential", ...)), policy, NOW)
    assert default == RequestedSecret(
        "managed by entra-app-registration-service", NOW, parse_duration("P180D").add_to(NOW)
    )
    custom = {
        "type": "secret",
        "startDateTime": "2026-02-01T00:00:00Z",
        "endDateTime": "2026-03-01T00:00:00Z",
    }
    assert requested_secret(register(with_changes("credential", custom)), policy, NOW) == RequestedSecret(
        "managed by entra-app-registration-service",
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert requested_secret(register(with_changes("credential", {"type": "none"})), policy, NOW) is None
    public = public_with({}) | {"credential": None}
    assert requested_secret(register(public), policy, NOW) is None


# ---------------------------------------------------------------- policy: catalog and Graph allow-list


def permissions(*entries: dict[str, Any]) -> RegisterRequest:
    return register(with_changes("apiPermissions", list(entries)))


def test_a_catalog_name_outside_the_policy_is_refused() -> None:
    request = permissions(
        {"api": "dicom", "delegated": ["user_impersonation"]}, {"api": "fhir", "delegated": ["a"]}
    )
    errors = check_policy(request, settings(), NOW)
    assert [(e.field, e.code) for e in errors] == [("apiPermissions[1].api", "api_not_allowed")]
    fhir = '{"fhir": {"resource": "https://x.fhir.azurehealthcareapis.com", "delegated": ["a"]}}'
    assert check_policy(request, settings(API_POLICY=fhir), NOW) == []


def test_same_resource_under_two_names() -> None:
    request = permissions(
        {"api": "azure-healthcare-apis", "delegated": ["user_impersonation"]},
        {"api": "4F6778D8-5AEF-43DC-A1FF-B073724B9495", "delegated": ["user_impersonation"]},
    )
    assert [(e.field, e.code) for e in check_policy(request, settings(), NOW)] == [
        ("apiPermissions[1].api", "duplicate")
    ]


def graph(*names: str) -> ResourceApi:
    """Microsoft Graph's service principal as the tenant answers a lookup."""
    return ResourceApi(
        service_principal_id="sp-graph",
        app_id=GRAPH_APP_ID,
        display_name="Microsoft Graph",
        scopes={},
        roles={},
        names=(GRAPH_APP_ID, "https://graph.microsoft.com", *names),
    )


@pytest.mark.parametrize("reference", ["microsoft-graph", GRAPH_APP_ID, GRAPH_APP_ID.upper()])
def test_graph_policy_by_name_or_app_id(reference: str) -> None:
    request = permissions(
        {
            "api": reference,
            "delegated": ["User.Read", "Mail.Read", "openid"],
            "application": ["Directory.ReadWrite.All"],
        }
    )
    errors = check_policy(request, settings(), NOW)
    assert [(e.field, e.code) for e in errors] == [
        ("apiPermissions[0].delegated[1]", "permission_not_allowed"),
        ("apiPermissions[0].application[0]", "permission_not_allowed"),
    ]
    assert all("Mail.Read" not in e.message and "Directory" not in e.message for e in errors)


@pytest.mark.parametrize(
    "reference",
    [
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/",
        "https://canary.graph.microsoft.com",
        "https://graph.microsoft.us",
        "api://" + GRAPH_APP_ID,
    ],
)
def test_graph_by_any_alias_meets_the_same_policy_once_resolved(reference: str) -> None:
    request = permissions(
        {
            "api": reference,
            "delegated": ["User.Read", "Mail.Read"],
            "application": ["Directory.ReadWrite.All"],
        }
    )
    # the name alone cannot tell: the service principal it resolves to does
    assert check_policy(request, settings(), NOW) == []
    errors = resolved_problems(request.api_permissions, [graph(reference)], settings())
    assert [(e.field, e.code) for e in errors] == [
        ("apiPermissions[0].delegated[1]", "permission_not_allowed"),
        ("apiPermissions[0].application[0]", "permission_not_allowed"),
    ]


def test_policy_is_a_setting_and_case_insensitive() -> None:
    request = permissions(
        {"api": "microsoft-graph", "delegated": ["mail.read"], "application": ["USER.READ.ALL"]}
    )
    assert len(check_policy(request, settings(), NOW)) == 2
    widened = '{"microsoft-graph": {"resource": "%s", "delegated": ["Mail.Read"], "application": ["User.Read.All"]}}'
    assert check_policy(request, settings(API_POLICY=widened % GRAPH_APP_ID), NOW) == []


def test_no_application_role_of_any_api_by_default() -> None:
    roles = [
        "Directory.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
        "AppRoleAssignment.ReadWrite.All",
        "Application.ReadWrite.All",
        "User.Read.All",
    ]
    errors = check_policy(permissions({"api": "microsoft-graph", "application": roles}), settings(), NOW)
    assert len(errors) == len(roles)
    assert all(not entry.application for entry in DEFAULT_API_POLICY.values())


def test_every_api_is_restricted_not_only_graph() -> None:
    request = permissions({"api": "azure-healthcare-apis", "delegated": ["Anything.Goes"]})
    assert [(e.field, e.code) for e in check_policy(request, settings(), NOW)] == [
        ("apiPermissions[0].delegated[0]", "permission_not_allowed")
    ]
    exchange = ResourceApi("sp-exo", "00000002-0000-0ff1-ce00-000000000000", "Exchange", {}, {}, ())
    lookalike = ResourceApi(
        "sp-x",
        "9f6778d8-5aef-43dc-a1ff-b073724b9495",
        "x",
        {},
        {},
        ("https://graph.microsoft.com.evil.example",),
    )
    request = permissions(
        {"api": "00000002-0000-0ff1-ce00-000000000000", "application": ["full_access_as_app"]},
        {"api": "https://graph.microsoft.com.evil.example", "application": ["Directory.ReadWrite.All"]},
    )
    assert check_policy(request, settings(), NOW) == []
    errors = resolved_problems(request.api_permissions, [exchange, lookalike], settings())
    assert [(e.field, e.code) for e in errors] == [
        ("apiPermissions[0].api", "api_not_allowed"),
        ("apiPermissions[1].api", "api_not_allowed"),
    ]


def test_one_api_named_twice_by_two_aliases_is_found_once_resolved() -> None:
    dicom = ResourceApi(
        "sp-dicom", "0c3e4a7b-1111-2222-3333-444455556666", "DICOM", {}, {}, (DICOM_RESOURCE,)
    )
    request = permissions(
        {"api": "dicom", "delegated": ["user_impersonation"]},
        {"api": "0c3e4a7b-1111-2222-3333-444455556666", "delegated": ["Dicom.ReadWrite"]},
    )
    assert check_policy(request, settings(), NOW) == []
    errors = resolved_problems(request.api_permissions, [dicom, dicom], settings())
    assert [(e.field, e.code) for e in errors] == [("apiPermissions[1].api", "duplicate")]


def test_entries_are_found_by_name_resource_or_service_principal_names() -> None:
    policy = settings()
    assert entry_for("dicom", policy) is entry_for(DICOM_RESOURCE, policy) is not None
    assert entry_for(DICOM_RESOURCE + "/", policy) is entry_for("dicom", policy)
    assert entry_for("https://unknown.example", policy) is None
    healthcare = entry_for("4F6778D8-5AEF-43DC-A1FF-B073724B9495", policy)
    assert healthcare is not None and healthcare.name == "azure-healthcare-apis"
    found = entry_for_resource(graph("https://graph.microsoft.us"), policy)
    assert found is not None and found.name == "microsoft-graph"


def test_redirect_uris_only_on_the_operators_domains() -> None:
    request = register(
        public_with(
            {
                "spa": [
                    "https://app.contoso.com",
                    "https://contoso.com.evil.example/x",
                    "http://localhost:3000",
                ],
                "publicClient": ["com.contoso.viewer://auth", "https://evilcontoso.com/cb"],
            }
        )
    )
    assert check_policy(request, settings(), NOW) == []
    errors = check_policy(request, settings(REDIRECT_URI_DOMAINS="contoso.com"), NOW)
    assert [(e.field, e.code) for e in errors] == [
        ("application.redirectUris.publicClient[1]", "domain_not_allowed"),
        ("application.redirectUris.spa[1]", "domain_not_allowed"),
    ]


def test_resolve_api() -> None:
    policy = settings(
        API_POLICY='{"orders": {"resource": "api://contoso.com/orders", "delegated": ["read"]}}'
    )
    assert resolve_api("dicom", policy) == "https://dicom.healthcareapis.azure.com"
    assert resolve_api("orders", policy) == "api://contoso.com/orders"
    assert resolve_api("missing", policy) is None
    assert resolve_api(GRAPH_APP_ID.upper(), policy) == GRAPH_APP_ID
    assert resolve_api(GRAPH_APP_ID, policy) == GRAPH_APP_ID  # a lower-case GUID is no catalog name
    assert resolve_api("https://x.example", policy) == "https://x.example"
