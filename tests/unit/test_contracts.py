"""Message contracts: what a request may say, how it is refused, and what a reply looks like."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from shared.domain.durations import parse_duration
from shared.domain.policy import (
    RequestedSecret,
    RequestPolicy,
    check_policy,
    is_microsoft_graph,
    requested_secret,
    resolve_api,
)
from shared.messages.base import FieldError, RequestRejected
from shared.messages.parsing import MAX_BODY_BYTES, parse_request
from shared.messages.replies import (
    ConsentResult,
    RegistrationReply,
    RemovedResources,
    ReplyApplication,
    ReplyCredential,
)
from shared.messages.replies import rejected as rejected_reply
from shared.messages.requests import (
    DecommissionRequest,
    NoCredential,
    RegisterRequest,
    RotateRequest,
    SecretCredential,
    derive_unique_name,
)
from shared.messages.schemas import json_schemas, render_schema
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.json"))
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

VALID: dict[str, Any] = {
    "schemaVersion": 1,
    "requestId": "SNOW-CHG0012345",
    "action": "register",
    "requestedBy": "alice@contoso.com",
    "application": {
        "uniqueName": "dicom-ingest-prod",
        "displayName": "DICOM ingest (prod)",
        "clientType": "service",
        "redirectUris": {"web": [], "publicClient": [], "spa": []},
        "notes": "free text",
    },
    "apiPermissions": [
        {"api": "azure-healthcare-apis", "delegated": ["user_impersonation"], "application": []},
        {"api": "dicom", "delegated": ["user_impersonation"]},
    ],
    "grantAdminConsent": True,
    "credential": {"type": "secret", "description": "ingest job", "lifetime": "P6M"},
}


def settings(**values: str) -> RequestPolicy:
    """The request policy of a service configured with ``values``."""
    return Settings(
        **{"AZURE_TENANT_ID": "contoso.onmicrosoft.com", "KEY_VAULT_URL": "https://kv.vault.azure.net"}
        | values
    ).request_policy


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def with_changes(path: str, value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    """A copy of `base` with the value at a dotted path set (`...` removes it)."""
    document = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if value is ...:
        del target[last]
    else:
        target[int(last) if isinstance(target, list) else last] = value
    return document


def rejection(document: object) -> RequestRejected:
    raw = document if isinstance(document, bytes) else body(document)
    with pytest.raises(RequestRejected) as caught:
        parse_request(raw)
    return caught.value


def fields(document: object) -> list[str]:
    return [error.field for error in rejection(document).errors]


def register(document: dict[str, Any]) -> RegisterRequest:
    request = parse_request(body(document))
    assert isinstance(request, RegisterRequest)
    return request


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


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_valid_and_within_policy(sample: Path) -> None:
    request = parse_request(sample.read_bytes())
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
    assert public.application.redirect_uris.public_client == ["msal-dicom-viewer://auth", "http://localhost"]
    assert public.application.redirect_uris.spa == ["https://viewer.contoso.com"]
    assert isinstance(public.credential, NoCredential)
    assert public.grant_admin_consent


def test_minimal_register_request_gets_defaults() -> None:
    request = register(
        {
            "schemaVersion": 1,
            "requestId": "REQ-1",
            "action": "register",
            "requestedBy": "bob",
            "application": {"displayName": "  Padded  ", "clientType": "confidential"},
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
                "application": {"uniqueName": "dicom-ingest-prod"},
            }
        )
    )
    assert isinstance(request, model)
    assert request.application.unique_name == "dicom-ingest-prod"
    assert check_policy(request, settings(), NOW) == []


@pytest.mark.parametrize("action", ["decommission", "rotate"])
def test_decommission_and_rotate_take_only_a_unique_name(action: str) -> None:
    base = {"schemaVersion": 1, "requestId": "R1", "action": action, "requestedBy": "ops"}
    assert fields(base | {"application": {}}) == ["application.uniqueName"]
    assert fields(base | {"application": {"uniqueName": "a", "displayName": "A"}}) == [
        "application.displayName"
    ]
    assert fields(base | {"application": {"uniqueName": "a"}, "credential": {"type": "none"}}) == [
        "credential"
    ]


def test_utf8_byte_order_mark_is_accepted() -> None:
    assert parse_request(b"\xef\xbb\xbf" + body(VALID)).request_id == "SNOW-CHG0012345"


# ---------------------------------------------------------------- unique names


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        ("SNOW-CHG0012345", "snow-chg0012345"),
        ("INC.0042:b", "inc-0042-b"),
        ("a--__..b", "a-b"),
        ("A.", "a"),
        ("X" * 100, "x" * 64),
        ("a" + "." * 70 + "b", "a-b"),
        ("a" * 63 + ".b", "a" * 63),  # cut at 64 would leave a trailing '-'
    ],
)
def test_derive_unique_name(request_id: str, expected: str) -> None:
    assert derive_unique_name(request_id) == expected
    assert register(
        with_changes("requestId", request_id, with_changes("application.uniqueName", ...))
    ).unique_name == (expected)


def test_given_unique_name_wins() -> None:
    assert register(with_changes("requestId", "OTHER-1")).unique_name == "dicom-ingest-prod"


@pytest.mark.parametrize(
    "unique_name",
    ["a", "a" * 64, "0", "a-b", "abc-123-def", "9" * 64],
)
def test_unique_name_accepted(unique_name: str) -> None:
    assert register(with_changes("application.uniqueName", unique_name)).unique_name == unique_name


@pytest.mark.parametrize(
    "unique_name",
    [
        "",
        "a" * 65,
        "-a",
        "a-",
        "A",
        "aB",
        "a_b",
        "a.b",
        "a b",
        "a'b",
        "'",
        "a''",
        'a"b',
        "a\x00b",
        "a\nb",
        "a/b",
        "a%27b",
        "é",
        "a\u200bb",
        " a",
        "a ",
        5,
        ["a"],
    ],
)
def test_unique_name_refused(unique_name: object) -> None:
    assert fields(with_changes("application.uniqueName", unique_name)) == ["application.uniqueName"]


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
    ("credential.type", "certificate", "credential.type"),
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


def test_codes_are_specific() -> None:
    def codes(document: dict[str, Any]) -> list[str]:
        return [error.code for error in rejection(document).errors]

    assert codes(with_changes("requestId", ...)) == ["missing"]
    assert codes(with_changes("requestId", "R" * 101)) == ["too_long"]
    assert codes(with_changes("application.displayName", "")) == ["too_short"]
    assert codes(with_changes("requestId", "bad id")) == ["invalid_format"]
    assert codes(with_changes("action", "delete")) == ["invalid_value"]
    assert codes(with_changes("grantAdminConsent", "yes")) == ["invalid_type"]
    assert codes(with_changes("surplus", 1)) == ["unexpected_field"]
    assert codes(with_changes("apiPermissions", [VALID["apiPermissions"][0]] * 21)) == ["too_long"]


def test_several_problems_are_reported_together() -> None:
    document = with_changes("requestedBy", "", with_changes("application.clientType", "x"))
    assert fields(with_changes("grantAdminConsent", None, document)) == [
        "requestedBy",
        "application.clientType",
        "grantAdminConsent",
    ]


def test_too_many_problems_are_capped() -> None:
    document = with_changes(
        "application", {"displayName": "x", "clientType": "service"} | {f"f{i}": i for i in range(500)}
    )
    errors = rejection(document).errors
    assert len(errors) == 21
    assert errors[-1] == FieldError(field="body", code="too_many_errors", message=errors[-1].message)


def test_unexpected_field_names_that_are_not_names_are_not_echoed() -> None:
    hostile = "x' or 1 eq 1 or '" + "A" * 1000
    errors = rejection(with_changes(hostile, 1)).errors
    assert [e.field for e in errors] == ["<?>"]
    assert "A" * 100 not in errors[0].model_dump_json()


# ---------------------------------------------------------------- boundary lengths


@pytest.mark.parametrize(
    ("path", "ok", "too_long"),
    [
        ("requestId", "R" * 100, "R" * 101),
        ("requestedBy", "b" * 256, "b" * 257),
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


# ---------------------------------------------------------------- API references


@pytest.mark.parametrize(
    "api",
    [
        "dicom",
        "my-api-2",
        "4f6778d8-5aef-43dc-a1ff-b073724b9495",
        "4F6778D8-5AEF-43DC-A1FF-B073724B9495",
        "https://dicom.healthcareapis.azure.com",
        "https://contoso.fhir.azurehealthcareapis.com/",
        "api://4f6778d8-5aef-43dc-a1ff-b073724b9495",
        "api://contoso.com/orders-api",
    ],
)
def test_api_reference_accepted(api: str) -> None:
    register(with_changes("apiPermissions", [{"api": api, "delegated": ["user_impersonation"]}]))


@pytest.mark.parametrize(
    "api",
    [
        "Dicom",
        "-dicom",
        "di com",
        "dicom'",
        "d'icom",
        "'",
        'dicom"',
        "a" * 64,
        "dicom\n",
        "dicom\x00",
        "http://dicom.healthcareapis.azure.com",
        "https://",
        "https://x'y",
        "https://x y",
        "https://x\ty",
        "https://x#frag",
        "https://x?query=1",
        'https://x"',
        "ftp://x",
        "api:/x",
        "urn:x",
        "https://x\x7f",
        "https://x\x85",
        "4F6778D8-5AEF-43DC-A1FF-B073724B949",
        "",
    ],
)
def test_api_reference_refused(api: str) -> None:
    assert fields(with_changes("apiPermissions", [{"api": api, "delegated": ["user_impersonation"]}])) == [
        "apiPermissions[0].api"
    ]


def test_api_must_be_unique_ignoring_case() -> None:
    first = {"api": "4f6778d8-5aef-43dc-a1ff-b073724b9495", "delegated": ["a"]}
    second = {"api": "4F6778D8-5AEF-43DC-A1FF-B073724B9495", "application": ["b"]}
    assert fields(with_changes("apiPermissions", [first, second])) == ["apiPermissions[1].api"]


# ---------------------------------------------------------------- redirect URIs

VALID_WEB_URIS = [
    "https://fhir-viewer.contoso.com/auth/callback",
    "https://contoso.com",
    "https://contoso.com:8443/a/b?x=1&y=2",
    "HTTPS://Contoso.COM/Callback",
    "http://localhost",
    "http://localhost:5000/signin-oidc",
    "http://127.0.0.1:8080/",
    "http://LOCALHOST/x",
    "https://a.b.c.d/%20encoded",
]
INVALID_WEB_URIS = [
    ("http://contoso.com/callback", "invalid_redirect_uri"),
    ("http://localhost.evil.com/", "invalid_redirect_uri"),
    ("http://localhost@evil.com/", "invalid_redirect_uri"),
    ("https://user@contoso.com/", "invalid_redirect_uri"),
    ("https://*.contoso.com/", "wildcard_not_allowed"),
    ("https://contoso.com/*", "wildcard_not_allowed"),
    ("https://contoso.com/#frag", "fragment_not_allowed"),
    ("https://contoso.com/a b", "invalid_character"),
    ("https://contoso.com/'", "invalid_character"),
    ('https://contoso.com/"', "invalid_character"),
    ("https://contoso.com/\n", "invalid_character"),
    ("https://contoso.com/\x00", "invalid_character"),
    ("https://contoso.com/\\", "invalid_character"),
    ("https://contoso.com/é", "invalid_character"),
    ("https://contoso.com:99999/", "invalid_redirect_uri"),
    ("https://", "invalid_redirect_uri"),
    ("https:///path", "invalid_redirect_uri"),
    ("myapp://auth", "invalid_redirect_uri"),
    ("javascript:alert(1)", "invalid_redirect_uri"),
    ("urn:ietf:wg:oauth:2.0:oob", "invalid_redirect_uri"),
    ("contoso.com/callback", "invalid_redirect_uri"),
    ("", "too_short"),
    ("https://contoso.com/" + "a" * 237, "too_long"),
]
VALID_PUBLIC_CLIENT_URIS = [
    *VALID_WEB_URIS,
    "myapp://auth",
    "msal4f6778d8-5aef-43dc-a1ff-b073724b9495://auth",
    "msal-dicom-viewer://auth",
    "msauth.com.contoso.viewer://auth",
    "com.contoso.viewer:/oauth2redirect",
    "ms-appx-web://microsoft.aad.brokerplugin/4f6778d8-5aef-43dc-a1ff-b073724b9495",
    "urn:ietf:wg:oauth:2.0:oob",
]
INVALID_PUBLIC_CLIENT_URIS = [
    ("http://contoso.com/callback", "insecure_redirect_uri"),
    ("HTTP://contoso.com/", "insecure_redirect_uri"),
    ("javascript:alert(1)", "scheme_not_allowed"),
    ("JavaScript://%0aalert(1)", "scheme_not_allowed"),
    ("data:text/html,x", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("vbscript:msgbox", "scheme_not_allowed"),
    ("https://user@contoso.com", "invalid_redirect_uri"),
    ("1app://auth", "invalid_redirect_uri"),
    ("my_app://auth", "invalid_redirect_uri"),
    ("myapp:", "invalid_redirect_uri"),
    ("myapp://*", "wildcard_not_allowed"),
    ("myapp://auth#x", "fragment_not_allowed"),
    ("myapp://au th", "invalid_character"),
    ("myapp://'", "invalid_character"),
    ("/relative/path", "invalid_redirect_uri"),
]


def confidential_with(uris: dict[str, list[str]]) -> dict[str, Any]:
    return with_changes(
        "application.redirectUris", uris, with_changes("application.clientType", "confidential")
    )


def public_with(uris: dict[str, list[str]]) -> dict[str, Any]:
    document = with_changes("application.clientType", "public", with_changes("credential", {"type": "none"}))
    return with_changes("application.redirectUris", uris, document)


@pytest.mark.parametrize("uri", VALID_WEB_URIS)
def test_web_and_spa_uris_accepted(uri: str) -> None:
    assert register(confidential_with({"web": [uri]})).application.redirect_uris.web == [uri]
    assert register(public_with({"spa": [uri]})).application.redirect_uris.spa == [uri]


@pytest.mark.parametrize(("uri", "code"), INVALID_WEB_URIS)
def test_web_and_spa_uris_refused(uri: str, code: str) -> None:
    for document, field in (
        (confidential_with({"web": ["https://ok.contoso.com", uri]}), "application.redirectUris.web[1]"),
        (public_with({"spa": ["https://ok.contoso.com", uri]}), "application.redirectUris.spa[1]"),
    ):
        errors = rejection(document).errors
        assert [(e.field, e.code) for e in errors] == [(field, code)]


@pytest.mark.parametrize("uri", VALID_PUBLIC_CLIENT_URIS)
def test_public_client_uris_accepted(uri: str) -> None:
    assert register(public_with({"publicClient": [uri]})).application.redirect_uris.public_client == [uri]


@pytest.mark.parametrize(("uri", "code"), INVALID_PUBLIC_CLIENT_URIS)
def test_public_client_uris_refused(uri: str, code: str) -> None:
    errors = rejection(public_with({"publicClient": [uri]})).errors
    assert [(e.field, e.code) for e in errors] == [("application.redirectUris.publicClient[0]", code)]


@pytest.mark.parametrize("platform", ["web", "publicClient", "spa"])
def test_duplicate_uris_refused(platform: str) -> None:
    uris = {platform: ["http://localhost", "https://a.contoso.com", "http://localhost"]}
    document = confidential_with(uris) if platform == "web" else public_with(uris)
    errors = rejection(document).errors
    assert [(e.field, e.code) for e in errors] == [(f"application.redirectUris.{platform}[2]", "duplicate")]


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


def test_unknown_catalog_name() -> None:
    request = permissions({"api": "dicom", "delegated": ["a"]}, {"api": "fhir", "delegated": ["a"]})
    errors = check_policy(request, settings(), NOW)
    assert [(e.field, e.code) for e in errors] == [("apiPermissions[1].api", "unknown_api")]
    assert (
        check_policy(request, settings(API_CATALOG='{"fhir": "https://x.fhir.azurehealthcareapis.com"}'), NOW)
        == []
    )


def test_same_resource_under_two_names() -> None:
    request = permissions(
        {"api": "azure-healthcare-apis", "delegated": ["a"]},
        {"api": "4F6778D8-5AEF-43DC-A1FF-B073724B9495", "application": ["b"]},
    )
    assert [(e.field, e.code) for e in check_policy(request, settings(), NOW)] == [
        ("apiPermissions[1].api", "duplicate")
    ]


@pytest.mark.parametrize(
    "graph",
    [
        "microsoft-graph",
        GRAPH_APP_ID,
        GRAPH_APP_ID.upper(),
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/",
        "https://GRAPH.microsoft.com/v1.0",
        "https://canary.graph.microsoft.com",
        "https://graph.microsoft.us",
        "api://" + GRAPH_APP_ID,
    ],
)
def test_graph_allow_list(graph: str) -> None:
    request = permissions(
        {
            "api": graph,
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


def test_graph_allow_list_is_a_setting_and_case_insensitive() -> None:
    request = permissions(
        {"api": "microsoft-graph", "delegated": ["mail.read"], "application": ["USER.READ.ALL"]}
    )
    assert len(check_policy(request, settings(), NOW)) == 1
    assert check_policy(request, settings(GRAPH_PERMISSION_ALLOWLIST="Mail.Read,User.Read.All"), NOW) == []


def test_high_privilege_graph_roles_refused_by_default() -> None:
    roles = [
        "Directory.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
        "AppRoleAssignment.ReadWrite.All",
        "Application.ReadWrite.All",
    ]
    errors = check_policy(permissions({"api": "microsoft-graph", "application": roles}), settings(), NOW)
    assert len(errors) == len(roles)


def test_other_apis_are_not_restricted_by_the_allow_list() -> None:
    request = permissions(
        {"api": "azure-healthcare-apis", "delegated": ["Anything.Goes"]},
        {"api": "https://graph.microsoft.com.evil.example", "application": ["Directory.ReadWrite.All"]},
    )
    assert check_policy(request, settings(), NOW) == []


def test_resolve_api() -> None:
    policy = settings(API_CATALOG='{"orders": "api://contoso.com/orders"}')
    assert resolve_api("dicom", policy) == "https://dicom.healthcareapis.azure.com"
    assert resolve_api("orders", policy) == "api://contoso.com/orders"
    assert resolve_api("missing", policy) is None
    assert resolve_api(GRAPH_APP_ID.upper(), policy) == GRAPH_APP_ID
    assert resolve_api("https://x.example", policy) == "https://x.example"
    assert is_microsoft_graph(GRAPH_APP_ID) and not is_microsoft_graph(
        "https://dicom.healthcareapis.azure.com"
    )


# ---------------------------------------------------------------- whole-body problems


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"{'single': 'quotes'}", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": 1} trailing', "invalid_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"requestId": "\xc3\x28"}', "not_utf8"),
        (b"[]", "not_object"),
        (b'"register"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a":' * 40_000 + b"1" + b"}" * 40_000, "too_deep"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"requestId": "R1", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        (b"1" * 5000, "invalid_json"),  # beyond Python's int-from-string limit
        (b" " * (MAX_BODY_BYTES + 1), "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v[:20]),
)
def test_body_problems(raw: bytes, code: str) -> None:
    errors = rejection(raw).errors
    assert [(e.field, e.code) for e in errors] == [("body", code)]


def test_body_at_the_size_limit_is_read() -> None:
    raw = body(VALID)
    raw = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert len(raw) == MAX_BODY_BYTES
    assert parse_request(raw).request_id == "SNOW-CHG0012345"


def test_request_id_recovered_from_deep_bodies() -> None:
    assert rejection(b'{"requestId": "R1", "x": ' + b"[" * 40 + b"]" * 40 + b"}").request_id == "R1"
    assert rejection(b'{"requestId": "R 1"}').request_id is None
    assert rejection(b'{"requestId": 5}').request_id is None
    assert rejection(b"[]").request_id is None


def test_lone_surrogates_are_refused() -> None:
    assert rejection(body(with_changes("application.displayName", "\ud800"))).errors


# ---------------------------------------------------------------- never echo, never crash

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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
FAST = hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_rejects(raw: bytes) -> None:
    try:
        parse_request(raw)
    except RequestRejected as rejected:
        assert rejected.errors
        assert all(isinstance(error, FieldError) for error in rejected.errors)
        assert len(rejected.errors) <= 21
        rejected_reply(rejected.request_id, rejected.errors).model_dump_json()


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    parses_or_rejects(raw)


@FAST
@given(json_values)
def test_arbitrary_json_never_raises_anything_else(document: object) -> None:
    parses_or_rejects(body(document))


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


VALID_PATHS = _paths(VALID) + [p for s in SAMPLES for p in _paths(json.loads(s.read_bytes()))]


@FAST
@given(st.sampled_from([VALID] + [json.loads(s.read_bytes()) for s in SAMPLES]), st.data())
def test_mutated_requests_never_raise_anything_else(base: dict[str, Any], data: st.DataObject) -> None:
    document = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(document)
        path = data.draw(st.sampled_from(paths))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(
            json_values | st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
        )
    raw = body(document)
    parses_or_rejects(raw)
    try:
        request = parse_request(raw)
    except RequestRejected as rejected:
        for error in rejected.errors:
            assert error.message and error.code and error.field
    else:
        for field_error in check_policy(request, settings(), NOW):
            assert field_error.field


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200))
def test_unique_name_and_api_values_never_break_a_filter_literal(text: str) -> None:
    """Whatever a request gives, an accepted uniqueName and api hold no quote, space or control character."""
    for document in (
        with_changes("application.uniqueName", text),
        with_changes("apiPermissions.0.api", text),
    ):
        try:
            request = register(document)
        except RequestRejected:
            continue
        for accepted in (request.unique_name, request.api_permissions[0].api):
            assert not any(c in accepted for c in "'\"#?") and accepted.isprintable() and " " not in accepted


# ---------------------------------------------------------------- replies


def test_reply_serialises_in_camel_case() -> None:
    reply = RegistrationReply(
        request_id="SNOW-CHG0012345",
        status="succeeded",
        application=ReplyApplication(
            unique_name="dicom-ingest-prod",
            display_name="DICOM ingest (prod)",
            client_id="c",
            object_id="o",
            service_principal_id="s",
            tenant_id="t",
        ),
        credential=ReplyCredential(
            key_id="k",
            hint="abc",
            start_date_time=NOW,
            end_date_time=NOW,
            key_vault_secret_id="https://kv.vault.azure.net/secrets/dicom-ingest-prod/0123",
        ),
        consent=[ConsentResult(api="dicom", delegated=["user_impersonation"])],
    )
    document = json.loads(reply.model_dump_json())
    assert document == {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0012345",
        "status": "succeeded",
        "application": {
            "uniqueName": "dicom-ingest-prod",
            "displayName": "DICOM ingest (prod)",
            "clientId": "c",
            "objectId": "o",
            "servicePrincipalId": "s",
            "tenantId": "t",
        },
        "credential": {
            "type": "secret",
            "keyId": "k",
            "hint": "abc",
            "startDateTime": "2026-01-15T09:30:00Z",
            "endDateTime": "2026-01-15T09:30:00Z",
            "keyVaultSecretId": "https://kv.vault.azure.net/secrets/dicom-ingest-prod/0123",
        },
        "consent": [{"api": "dicom", "delegated": ["user_impersonation"], "application": []}],
        "removed": None,
        "errors": [],
    }
    assert RegistrationReply.model_validate_json(reply.model_dump_json()) == reply


def test_decommission_reply() -> None:
    reply = RegistrationReply(
        request_id="R1",
        status="succeeded",
        removed=RemovedResources(
            application=True, service_principal=True, key_vault_secret_versions_disabled=2
        ),
    )
    assert json.loads(reply.model_dump_json())["removed"] == {
        "application": True,
        "servicePrincipal": True,
        "keyVaultSecretVersionsDisabled": 2,
    }


def test_rejected_reply() -> None:
    problem = rejection(with_changes("action", "nope"))
    reply = rejected_reply(problem.request_id, problem.errors)
    assert reply.status == "rejected"
    assert reply.request_id == "SNOW-CHG0012345"
    assert [e.field for e in reply.errors] == ["action"]


def test_reply_has_no_place_for_a_secret_value() -> None:
    with pytest.raises(ValueError):
        ReplyCredential(
            key_id="k",
            hint="abc",
            start_date_time=NOW,
            end_date_time=NOW,
            key_vault_secret_id="x",
            secret_text="oops",
        )  # type: ignore[call-arg]


# ---------------------------------------------------------------- schemas


def test_committed_schemas_match_the_models() -> None:
    for name, schema in json_schemas().items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == render_schema(schema), f"schemas/{name} is stale: run `make schemas`"


def test_schemas_describe_the_contract() -> None:
    schemas = json_schemas()
    request = schemas["registration-request.schema.json"]
    assert request["discriminator"]["propertyName"] == "action"
    register_schema = request["$defs"]["RegisterRequest"]
    assert register_schema["additionalProperties"] is False
    assert {
        "schemaVersion",
        "requestId",
        "action",
        "requestedBy",
        "application",
        "apiPermissions",
        "grantAdminConsent",
        "credential",
    } == set(register_schema["properties"])
    assert set(request["$defs"]["RedirectUris"]["properties"]) == {"web", "publicClient", "spa"}
    reply = schemas["registration-reply.schema.json"]
    assert set(reply["properties"]) == {
        "schemaVersion",
        "requestId",
        "status",
        "application",
        "credential",
        "consent",
        "removed",
        "errors",
    }
