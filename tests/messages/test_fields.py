"""Field formats: unique names, API references and redirect URIs."""

import pytest

from tests.messages.requests_fixtures import (
    confidential_with,
    fields,
    public_with,
    register,
    rejection,
    with_changes,
)

# ---------------------------------------------------------------- unique names


@pytest.mark.parametrize("request_id", ["snow-chg0012345", "x-1", "a", "a--b", "9" * 64])
def test_a_request_id_that_is_a_valid_unique_name_is_used_as_is(request_id: str) -> None:
    assert (
        register(
            with_changes("requestId", request_id, with_changes("application.uniqueName", ...))
        ).unique_name
        == request_id
    )


# Deriving by lower-casing and folding punctuation made X.1 and x-1 one application: an identity
# mapping cannot collide, so any other request id needs application.uniqueName.
@pytest.mark.parametrize(
    "request_id", ["SNOW-CHG0012345", "INC.0042:b", "X.1", "A.", "X" * 100, "a" * 65, "a-"]
)
def test_a_request_id_that_is_not_a_unique_name_requires_one(request_id: str) -> None:
    errors = rejection(
        with_changes("requestId", request_id, with_changes("application.uniqueName", ...))
    ).errors
    assert [(e.field, e.code) for e in errors] == [("application.uniqueName", "missing")]


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
    "http://[::1]:5000/cb",
    "https://localhost:44321/signin-oidc",
]
INVALID_WEB_URIS = [
    ("http://contoso.com/callback", "insecure_redirect_uri"),
    ("http://localhost.evil.com/", "insecure_redirect_uri"),
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
    ("https://169.254.169.254/latest/meta-data", "ip_address_not_allowed"),
    ("https://10.0.0.1/cb", "ip_address_not_allowed"),
    ("https://192.168.1.20/cb", "ip_address_not_allowed"),
    ("https://8.8.8.8/cb", "ip_address_not_allowed"),
    ("https://2130706433/cb", "ip_address_not_allowed"),
    ("https://0x7f.0.0.1/cb", "ip_address_not_allowed"),
    ("https://[fe80::1]/cb", "ip_address_not_allowed"),
    ("https://[fd00::1]:8443/cb", "ip_address_not_allowed"),
    ("https://intranet/cb", "single_label_host"),
    ("https://xn--cntoso-bua.com/cb", "punycode_host"),
    ("https://login.xn--mcrosoft-c2a.com/", "punycode_host"),
    ("https://contoso.com./cb", "invalid_host"),
    ("https://-contoso.com/cb", "invalid_host"),
    ("https://contoso_app.com/cb", "invalid_host"),
    ("", "too_short"),
    ("https://contoso.com/" + "a" * 237, "too_long"),
]
VALID_PUBLIC_CLIENT_URIS = [
    *VALID_WEB_URIS,
    "msal4f6778d8-5aef-43dc-a1ff-b073724b9495://auth",
    "msauth.com.contoso.viewer://auth",
    "msauth://com.contoso.viewer/2pmj9i4rSx0yEb%2FviWBYkE%2FZQrk%3D",
    "ms-appx-web://microsoft.aad.brokerplugin/4f6778d8-5aef-43dc-a1ff-b073724b9495",
    "com.contoso.viewer:/oauth2redirect",
    "com.contoso.viewer://auth",
]
INVALID_PUBLIC_CLIENT_URIS = [
    ("http://contoso.com/callback", "insecure_redirect_uri"),
    ("HTTP://contoso.com/", "insecure_redirect_uri"),
    ("javascript:alert(1)", "scheme_not_allowed"),
    ("JavaScript://%0aalert(1)", "scheme_not_allowed"),
    ("data:text/html,x", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("vbscript:msgbox", "scheme_not_allowed"),
    ("view-source:https://contoso.com/", "scheme_not_allowed"),
    ("blob:https://contoso.com/1", "scheme_not_allowed"),
    ("about:blank", "scheme_not_allowed"),
    ("intent://auth", "scheme_not_allowed"),
    ("jar:https://contoso.com/a.jar!/", "scheme_not_allowed"),
    # custom schemes without a reversed domain, and the deprecated out-of-band URI, are gone
    ("myapp://auth", "scheme_not_allowed"),
    ("msal-dicom-viewer://auth", "scheme_not_allowed"),
    ("urn:ietf:wg:oauth:2.0:oob", "scheme_not_allowed"),
    ("ms-appx-web://microsoft.aad.brokerplugin/not-a-client-id", "scheme_not_allowed"),
    ("https://169.254.169.254/", "ip_address_not_allowed"),
    ("https://intranet/", "single_label_host"),
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
