"""Request models: what a register, decommission or rotate request may say, and which field a
bad one is refused for."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.domain.policy import check_policy
from shared.messages.base import RequestRejected
from shared.messages.parsing import parse_request
from shared.messages.requests import (
    CertificateCredential,
    DecommissionRequest,
    NoCredential,
    RotateRequest,
    SecretCredential,
)
from tests.messages.requests_fixtures import (
    NOW,
    SAMPLES,
    VALID,
    body,
    fields,
    register,
    rejection,
    settings,
    with_changes,
)

# ---------------------------------------------------------------- valid requests


def test_the_documented_example_parses() -> None:
    request = register(VALID)
    assert request.request_id == "SNOW-CHG0012345"
    assert request.unique_name == "dicom-ingest-prod"
    assert request.application.client_type == "service"
    assert [p.api for p in request.api_permissions] == ["azure-healthcare-apis", "dicom"]
    assert request.api_permissions[1].application == []
    assert request.grant_admin_consent is True
    assert isinstance(request.credential, SecretCredential)
    assert request.credential.lifetime == "P6M"
    assert check_policy(request, settings(), NOW) == []


def test_samples_cover_each_client_type() -> None:
    by_name = {p.name: register(json.loads(p.read_bytes())) for p in SAMPLES}
    assert set(by_name) >= {"service-client.json", "confidential-web-client.json", "public-client.json"}
    service = by_name["service-client.json"]
    assert service.application.client_type == "service"
    assert {p.api for p in service.api_permissions} == {"azure-healthcare-apis", "dicom"}
    assert service.grant_admin_consent and service.credential and service.credential.type == "secret"
    assert isinstance(service.credential, SecretCredential) and service.credential.lifetime == "P6M"
    web = by_name["confidential-web-client.json"]
    assert web.application.client_type == "confidential"
    assert web.application.redirect_uris.web == ["https://fhir-viewer.contoso.com/auth/callback"]
    assert isinstance(web.credential, SecretCredential) and web.credential.lifetime == "P12M"
    public = by_name["public-client.json"]
    assert public.application.client_type == "public"
    assert public.application.redirect_uris.public_client == [
        "com.contoso.dicomviewer://auth",
        "http://localhost",
    ]
    assert {r.application.service_management_reference for r in by_name.values()} == {
        "CI0001001 DICOM ingest",
        "CI0001002 FHIR viewer",
        "CI0001003 DICOM viewer",
        "CI0001004 FHIR export",
    }
    certificate = by_name["certificate-client.json"].credential
    assert isinstance(certificate, CertificateCredential) and certificate.exportable is False
    assert public.application.redirect_uris.spa == ["https://viewer.contoso.com"]
    assert isinstance(public.credential, NoCredential)
    assert public.grant_admin_consent


def test_minimal_register_request_gets_defaults() -> None:
    request = register(
        {
            "schemaVersion": 1,
            "requestId": "req-1",
            "action": "register",
            "requestedBy": "bob",
            "application": {
                "serviceManagementReference": "CI1",
                "displayName": "  Padded  ",
                "clientType": "confidential",
            },
        }
    )
    assert request.application.display_name == "Padded"
    assert request.application.redirect_uris.web == []
    assert request.api_permissions == []
    assert request.grant_admin_consent is False
    assert request.credential is None
    assert request.unique_name == "req-1"


@pytest.mark.parametrize(
    ("action", "model"), [("decommission", DecommissionRequest), ("rotate", RotateRequest)]
)
def test_decommission_and_rotate(action: str, model: type) -> None:
    request = parse_request(
        body(
            {
                "schemaVersion": 1,
                "requestId": "R1",
                "action": action,
                "requestedBy": "ops",
                "application": {"uniqueName": "dicom-ingest-prod", "serviceManagementReference": "CI1"},
            }
        )
    )
    assert isinstance(request, model)
    assert request.application.unique_name == "dicom-ingest-prod"
    assert request.application.service_management_reference == "CI1"
    assert check_policy(request, settings(), NOW) == []


@pytest.mark.parametrize("action", ["decommission", "rotate"])
def test_decommission_and_rotate_take_only_a_unique_name_and_its_owner(action: str) -> None:
    base = {"schemaVersion": 1, "requestId": "R1", "action": action, "requestedBy": "ops"}
    owner = {"serviceManagementReference": "CI1"}
    assert fields(base | {"application": {}}) == [
        "application.uniqueName",
        "application.serviceManagementReference",
    ]
    assert fields(base | {"application": {"uniqueName": "a"}}) == ["application.serviceManagementReference"]
    assert fields(base | {"application": {"uniqueName": "a", "displayName": "A"} | owner}) == [
        "application.displayName"
    ]
    assert fields(base | {"application": {"uniqueName": "a"} | owner, "credential": {"type": "none"}}) == [
        "credential"
    ]


# ---------------------------------------------------------------- bad inputs, by field

BAD_INPUTS = [
    # (change path, value, expected field)
    ("schemaVersion", ..., "schemaVersion"),
    ("schemaVersion", 2, "schemaVersion"),
    ("schemaVersion", "1", "schemaVersion"),
    ("schemaVersion", True, "schemaVersion"),
    ("schemaVersion", 1.0, "schemaVersion"),
    ("requestId", ..., "requestId"),
    ("requestId", "", "requestId"),
    ("requestId", "-leading-dash", "requestId"),
    ("requestId", "has space", "requestId"),
    ("requestId", "quote'", "requestId"),
    ("requestId", "slash/", "requestId"),
    ("requestId", "R" * 101, "requestId"),
    ("requestId", 12345, "requestId"),
    ("requestId", "ok\n", "requestId"),
    ("action", ..., "action"),
    ("action", "delete", "action"),
    ("action", "Register", "action"),
    ("action", 1, "action"),
    ("action", None, "action"),
    ("requestedBy", ..., "requestedBy"),
    ("requestedBy", "", "requestedBy"),
    ("requestedBy", "a" * 257, "requestedBy"),
    ("requestedBy", "alice\n@contoso.com", "requestedBy"),
    ("requestedBy", "alice\x00", "requestedBy"),
    ("requestedBy", "alice\u202e", "requestedBy"),
    ("requestedBy", ["alice"], "requestedBy"),
    ("application", ..., "application"),
    ("application", "dicom", "application"),
    ("application.displayName", ..., "application.displayName"),
    ("application.displayName", "", "application.displayName"),
    ("application.displayName", "   ", "application.displayName"),
    ("application.displayName", "d" * 121, "application.displayName"),
    ("application.displayName", "tab\there", "application.displayName"),
    ("application.displayName", "bell\x07", "application.displayName"),
    ("application.displayName", "del\x7f", "application.displayName"),
    ("application.displayName", "line\u2028sep", "application.displayName"),
    ("application.clientType", ..., "application.clientType"),
    ("application.clientType", "daemon", "application.clientType"),
    ("application.clientType", "Service", "application.clientType"),
    ("application.notes", "n" * 1025, "application.notes"),
    ("application.notes", "nul\x00", "application.notes"),
    ("application.notes", 7, "application.notes"),
    ("application.redirectUris", [], "application.redirectUris"),
    ("application.redirectUris.web", "https://a.com", "application.redirectUris.web"),
    ("application.redirectUris.mobile", [], "application.redirectUris.mobile"),
    ("application.extra", 1, "application.extra"),
    ("apiPermissions", {}, "apiPermissions"),
    ("apiPermissions", [{"api": "dicom", "delegated": ["a"]}] * 2, "apiPermissions[1].api"),
    ("apiPermissions.0.api", ..., "apiPermissions[0].api"),
    ("apiPermissions.0.api", "", "apiPermissions[0].api"),
    ("apiPermissions.0.delegated", [], "apiPermissions[0]"),
    ("apiPermissions.0.delegated", ["a", "a"], "apiPermissions[0].delegated[1]"),
    ("apiPermissions.0.delegated", ["ok", "not ok"], "apiPermissions[0].delegated[1]"),
    ("apiPermissions.0.delegated", ["p" * 121], "apiPermissions[0].delegated[0]"),
    ("apiPermissions.0.delegated", [""], "apiPermissions[0].delegated[0]"),
    ("apiPermissions.0.delegated", "user_impersonation", "apiPermissions[0].delegated"),
    ("apiPermissions.0.application", ["Role'"], "apiPermissions[0].application[0]"),
    ("apiPermissions.1.scopes", ["x"], "apiPermissions[1].scopes"),
    ("grantAdminConsent", "true", "grantAdminConsent"),
    ("grantAdminConsent", 1, "grantAdminConsent"),
    ("credential", "secret", "credential"),
    ("credential", {}, "credential.type"),
    ("credential.type", "x509", "credential.type"),
    ("credential.type", "none", "credential.description"),  # none takes no other fields
    ("credential.lifetime", "P1Y", "credential.lifetime"),
    ("credential.lifetime", "P36M", "credential.lifetime"),
    ("credential.lifetime", 6, "credential.lifetime"),
    ("credential.description", "", "credential.description"),
    ("credential.description", "d" * 101, "credential.description"),
    ("credential.description", "bad\r\n", "credential.description"),
    ("credential.secretText", "x", "credential.secretText"),
    ("unknownTopLevel", 1, "unknownTopLevel"),
    ("request_id", "snake-case-is-not-the-contract", "request_id"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_INPUTS, ids=lambda v: repr(v)[:40])
def test_bad_input_names_the_field(path: str, value: Any, field: str) -> None:
    assert field in fields(with_changes(path, value))


@pytest.mark.parametrize(("path", "value", "field"), BAD_INPUTS, ids=lambda v: repr(v)[:40])
def test_rejection_keeps_a_valid_request_id(path: str, value: Any, field: str) -> None:
    recovered = rejection(with_changes(path, value)).request_id
    assert recovered == (VALID["requestId"] if not path.startswith("requestId") else None)


MARKER = "ZQXJMARKERQZXJ"


@pytest.mark.parametrize(("path", "value", "field"), BAD_INPUTS, ids=lambda v: repr(v)[:40])
def test_messages_never_echo_the_value(path: str, value: Any, field: str) -> None:
    if isinstance(value, str):
        value = value + MARKER
    try:
        parse_request(body(with_changes(path, value)))
    except RequestRejected as rejected:
        for error in rejected.errors:
            assert MARKER not in error.model_dump_json()


# ---------------------------------------------------------------- boundary lengths


@pytest.mark.parametrize(
    ("path", "ok", "too_long"),
    [
        ("requestId", "R" * 100, "R" * 101),
        ("requestedBy", "b" * 240, "b" * 241),
        ("application.serviceManagementReference", "s" * 128, "s" * 129),
        ("application.uniqueName", "u" * 64, "u" * 65),
        ("application.displayName", "d" * 120, "d" * 121),
        ("application.displayName", " " + "d" * 120 + " ", " " + "d" * 121),
        ("application.notes", "n" * 1024, "n" * 1025),
        ("credential.description", "c" * 100, "c" * 101),
        ("apiPermissions.0.delegated", ["p" * 120], ["p" * 121]),
        ("apiPermissions.0.api", "https://" + "a" * 248, "https://" + "a" * 249),
    ],
)
def test_boundary_lengths(path: str, ok: Any, too_long: Any) -> None:
    register(with_changes(path, ok))
    assert rejection(with_changes(path, too_long)).errors


def test_api_permissions_at_most_20() -> None:
    entries = [{"api": f"api-{i}", "delegated": ["s"]} for i in range(21)]
    assert len(register(with_changes("apiPermissions", entries[:20])).api_permissions) == 20
    assert fields(with_changes("apiPermissions", entries)) == ["apiPermissions"]


def test_redirect_uris_at_most_256_in_total() -> None:
    confidential = with_changes(
        "application.clientType", "public", with_changes("credential", {"type": "none"})
    )
    uris = [f"https://a.contoso.com/{i}" for i in range(257)]
    register(
        with_changes(
            "application.redirectUris", {"spa": uris[:128], "publicClient": uris[128:256]}, confidential
        )
    )
    assert fields(
        with_changes(
            "application.redirectUris", {"spa": uris[:129], "publicClient": uris[129:]}, confidential
        )
    ) == ["application.redirectUris"]
    assert fields(with_changes("application.redirectUris", {"spa": uris}, confidential)) == [
        "application.redirectUris.spa"
    ]


# ---------------------------------------------------------------- redirect platforms by client type


@pytest.mark.parametrize(
    ("client_type", "platform", "allowed"),
    [
        ("service", "web", False),
        ("service", "publicClient", False),
        ("service", "spa", False),
        ("confidential", "web", True),
        ("confidential", "publicClient", False),
        ("confidential", "spa", False),
        ("public", "web", False),
        ("public", "publicClient", True),
        ("public", "spa", True),
    ],
)
def test_redirect_platforms_by_client_type(client_type: str, platform: str, allowed: bool) -> None:
    document = with_changes(
        "application.clientType", client_type, with_changes("credential", {"type": "none"})
    )
    document = with_changes("application.redirectUris", {platform: ["https://app.contoso.com/cb"]}, document)
    if allowed:
        register(document)
    else:
        errors = rejection(document).errors
        assert [(e.field, e.code) for e in errors] == [
            (f"application.redirectUris.{platform}", "not_allowed_for_client_type")
        ]


# ---------------------------------------------------------------- credentials


def test_public_client_cannot_hold_a_secret() -> None:
    document = with_changes("application.clientType", "public")
    errors = rejection(document).errors
    assert [(e.field, e.code) for e in errors] == [("credential.type", "not_allowed_for_client_type")]


def test_custom_dates() -> None:
    credential = {
        "type": "secret",
        "startDateTime": "2026-02-01T00:00:00Z",
        "endDateTime": "2026-08-01T00:00:00+02:00",
    }
    request = register(with_changes("credential", credential))
    assert isinstance(request.credential, SecretCredential)
    assert request.credential.description == "managed by entra-app-registration-service"
    assert request.credential.end_date_time == datetime(2026, 7, 31, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("credential", "field", "code"),
    [
        ({"type": "secret"}, "credential.lifetime", "missing"),
        ({"type": "secret", "startDateTime": "2026-02-01T00:00:00Z"}, "credential.endDateTime", "missing"),
        ({"type": "secret", "endDateTime": "2026-02-01T00:00:00Z"}, "credential.startDateTime", "missing"),
        (
            {"type": "secret", "lifetime": "P6M", "endDateTime": "2026-02-01T00:00:00Z"},
            "credential.endDateTime",
            "conflict",
        ),
        (
            {
                "type": "secret",
                "startDateTime": "2026-02-01T00:00:00Z",
                "endDateTime": "2026-01-01T00:00:00Z",
            },
            "credential.endDateTime",
            "end_before_start",
        ),
        (
            {
                "type": "secret",
                "startDateTime": "2026-02-01T00:00:00Z",
                "endDateTime": "2026-02-01T00:00:00Z",
            },
            "credential.endDateTime",
            "end_before_start",
        ),
        (
            {"type": "secret", "startDateTime": "2026-02-01T00:00:00", "endDateTime": "2026-03-01T00:00:00Z"},
            "credential.startDateTime",
            "invalid_datetime",
        ),
        (
            {"type": "secret", "startDateTime": "next week", "endDateTime": "2026-03-01T00:00:00Z"},
            "credential.startDateTime",
            "invalid_datetime",
        ),
        (
            {"type": "secret", "startDateTime": 1767225600, "endDateTime": "2026-03-01T00:00:00Z"},
            "credential.startDateTime",
            "invalid_datetime",
        ),
    ],
)
def test_credential_rules(credential: dict[str, Any], field: str, code: str) -> None:
    errors = rejection(with_changes("credential", credential)).errors
    assert [(e.field, e.code) for e in errors] == [(field, code)]


# ---------------------------------------------------------------- federated credentials

GITHUB = "https://token.actions.githubusercontent.com"


def federated(**changes: Any) -> dict[str, Any]:
    return {
        "name": "deploy-main",
        "issuer": GITHUB,
        "subject": "repo:contoso/app:ref:refs/heads/main",
    } | changes


def test_federated_credentials_parse_by_their_json_names() -> None:
    request = register(
        with_changes(
            "federatedCredentials", [federated(description="CI deploys"), federated(name="prod", subject="s")]
        )
    )
    first, second = request.federated_credentials
    assert (first.name, first.issuer, first.description) == ("deploy-main", GITHUB, "CI deploys")
    assert second.description is None
    assert register(VALID).federated_credentials == []


@pytest.mark.parametrize(
    ("entry", "field", "code"),
    [
        (federated(name="ab"), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="n" * 121), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="-leading"), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="_leading"), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="has.dot"), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="has space"), "federatedCredentials[0].name", "invalid_format"),
        (federated(name="wild*"), "federatedCredentials[0].name", "invalid_format"),
        (
            federated(issuer="http://token.actions.githubusercontent.com"),
            "federatedCredentials[0].issuer",
            "invalid_issuer",
        ),
        (
            federated(issuer="token.actions.githubusercontent.com"),
            "federatedCredentials[0].issuer",
            "invalid_issuer",
        ),
        (federated(issuer=GITHUB + "?x=1"), "federatedCredentials[0].issuer", "invalid_issuer"),
        (federated(issuer=GITHUB + "#frag"), "federatedCredentials[0].issuer", "invalid_issuer"),
        (federated(issuer=" " + GITHUB), "federatedCredentials[0].issuer", "invalid_issuer"),
        (federated(issuer="https://*.contoso.com"), "federatedCredentials[0].issuer", "wildcard"),
        (
            federated(issuer="https://i.contoso.com/" + "i" * 579),
            "federatedCredentials[0].issuer",
            "too_long",
        ),
        (federated(subject=""), "federatedCredentials[0].subject", "too_short"),
        (federated(subject="s" * 601), "federatedCredentials[0].subject", "too_long"),
        (
            federated(subject="repo:contoso/*:ref:refs/heads/main"),
            "federatedCredentials[0].subject",
            "wildcard",
        ),
        (federated(subject=" repo:contoso/app"), "federatedCredentials[0].subject", "invalid_format"),
        (federated(subject="repo:contoso/app\n"), "federatedCredentials[0].subject", "invalid_character"),
        (federated(description=""), "federatedCredentials[0].description", "too_short"),
        (federated(description="d" * 581), "federatedCredentials[0].description", "too_long"),
        (federated(description="bell\x07"), "federatedCredentials[0].description", "invalid_character"),
        (
            federated(audiences=["api://AzureADTokenExchange"]),
            "federatedCredentials[0].audiences",
            "unexpected_field",
        ),
        ({"issuer": GITHUB, "subject": "s"}, "federatedCredentials[0].name", "missing"),
        ("deploy-main", "federatedCredentials[0]", "invalid_type"),
    ],
    ids=lambda v: repr(v)[:50],
)
def test_federated_credential_rules(entry: Any, field: str, code: str) -> None:
    errors = rejection(with_changes("federatedCredentials", [entry])).errors
    assert [(e.field, e.code) for e in errors] == [(field, code)]


def test_federated_credential_boundaries() -> None:
    longest = federated(
        name="n" * 120,
        issuer="https://i.contoso.com/" + "i" * (600 - 22),
        subject="s" * 600,
        description="d" * 580,
    )
    register(with_changes("federatedCredentials", [longest, federated(name="abc", subject="t")]))


def test_federated_names_are_unique_case_insensitively_and_pairs_unique() -> None:
    same_name = [federated(), federated(name="Deploy-Main", subject="other")]
    assert [(e.field, e.code) for e in rejection(with_changes("federatedCredentials", same_name)).errors] == [
        ("federatedCredentials[1].name", "duplicate")
    ]
    same_pair = [federated(), federated(name="another")]
    assert [(e.field, e.code) for e in rejection(with_changes("federatedCredentials", same_pair)).errors] == [
        ("federatedCredentials[1].subject", "duplicate")
    ]
    # the same subject from two issuers is two pairs
    register(
        with_changes(
            "federatedCredentials", [federated(), federated(name="another", issuer="https://x.contoso.com")]
        )
    )


def test_federated_credentials_at_most_20() -> None:
    entries = [federated(name=f"cred-{i}", subject=f"s{i}") for i in range(21)]
    assert len(register(with_changes("federatedCredentials", entries[:20])).federated_credentials) == 20
    errors = rejection(with_changes("federatedCredentials", entries)).errors
    assert [(e.field, e.code) for e in errors] == [("federatedCredentials", "too_long")]


def test_a_public_client_cannot_hold_federated_credentials() -> None:
    document = with_changes(
        "federatedCredentials",
        [federated()],
        with_changes("application.clientType", "public", with_changes("credential", {"type": "none"})),
    )
    assert [(e.field, e.code) for e in rejection(document).errors] == [
        ("federatedCredentials", "not_allowed_for_client_type")
    ]
    confidential = with_changes(
        "application.clientType", "confidential", with_changes("federatedCredentials", [federated()])
    )
    assert len(register(confidential).federated_credentials) == 1


def test_federated_rejections_never_echo_the_value() -> None:
    marker = "ZQXJMARKERQZXJ"
    for entry in (
        federated(name="bad name " + marker),
        federated(issuer="http://" + marker),
        federated(subject="*" + marker),
        federated(description=marker * 50),
    ):
        for error in rejection(with_changes("federatedCredentials", [entry])).errors:
            assert marker not in error.model_dump_json()
