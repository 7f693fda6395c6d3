"""Generated messages, valid and invalid, through the real function entry point.

Every invalid message gets a `rejected` reply naming the field, without an exception and
without a request to Graph or Key Vault (checked in the emulator's request log once per
batch); every valid one passes `parse_request` and `check_policy`, and a sample of them goes
all the way through the emulator and succeeds. Values of leaf fields come from the published
JSON Schema (hypothesis-jsonschema); the objects around them are built here, because
hypothesis-jsonschema 0.23 cannot generate objects with this hypothesis version.

Generation is derandomized, so CI runs the same cases every time: about 10,400 in total.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from emulator.launcher import RunningEmulator
from shared.domain.durations import parse_duration
from shared.domain.policy import check_policy
from shared.messages.parsing import MAX_BODY_BYTES, parse_request
from shared.messages.schemas import SCHEMA_DIRECTORY
from shared.settings import Settings
from tests import harness
from tests.e2e.test_registration import graph_writes

SCHEMA = json.loads((SCHEMA_DIRECTORY / "registration-request.schema.json").read_text())
DEFS = SCHEMA["$defs"]
GUIDS = {
    "healthcare": "4f6778d8-5aef-43dc-a1ff-b073724b9495",
    "graph": "00000003-0000-0000-c000-000000000000",
}


def cases(n: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def leaf(definition: str, field: str) -> st.SearchStrategy[Any]:
    """Values of one string field, from the published schema (nullable ones without null)."""
    schema = dict(DEFS[definition]["properties"][field])
    if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:
        schema = next(s for s in schema["anyOf"] if s != {"type": "null"})
    return from_schema(schema)


# Built once: hypothesis-jsonschema's canonicalisation is slow.
REQUEST_IDS = leaf("RegisterRequest", "requestId")
UNIQUE_NAMES = leaf("RegisterApplication", "uniqueName")
LIFETIMES = leaf("SecretCredential", "lifetime")

# ---------------------------------------------------------------- valid requests

printable = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))
# Quotes, backslashes and OData/URL syntax are fine in free text: they must survive Graph calls.
hostile_text = st.sampled_from(
    ["'", '"', "\\", "')", "' or 1 eq 1 or '", "%27", "/../", "$filter=", "ü", "😀"]
)
free_text = st.lists(st.one_of(st.text(printable, max_size=8), hostile_text), max_size=6).map("".join)


def text_field(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return (
        free_text.map(lambda s: s[:max_size]).filter(lambda s: len(s) >= min_size)
        | st.text(printable, min_size=max_size, max_size=max_size)  # at the limit
    )


display_name = text_field(1, 120).filter(lambda s: 0 < len(s.strip()) and s.strip() == s)
# Plain strategies rather than from_regex, which costs milliseconds per draw.
label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
# Fully qualified: at least two labels, the last one a name (a numeric one would be an address).
tld = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6)
hosts = st.builds(
    lambda labels, top: ".".join([*labels, top]),
    st.lists(label | st.tuples(label, label).map("-".join), min_size=1, max_size=2),
    tld,
)
paths = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-", max_size=8), max_size=3
).map(lambda parts: "".join("/" + part for part in parts))
https_uri = st.builds(
    lambda h, port, p: f"https://{h}{port}{p}", hosts, st.sampled_from(["", ":443", ":65535"]), paths
)
loopback_uri = st.builds(
    lambda h, port, p: f"http://{h}{port}{p}",
    st.sampled_from(["localhost", "127.0.0.1"]),
    st.sampled_from(["", ":8080"]),
    paths,
)
web_uri = https_uri | loopback_uri
# The native-client forms Microsoft documents (shared/messages/redirect_uris.py).
reverse_dns = st.builds(lambda t, a, b: f"{t}.{a}.{b}", tld, label.filter(lambda s: s[0].isalpha()), tld)
custom_uri = st.one_of(
    st.uuids().map(lambda u: f"msal{u}://auth"),
    reverse_dns.map(lambda d: f"msauth.{d}://auth"),
    st.uuids().map(lambda u: f"ms-appx-web://microsoft.aad.brokerplugin/{u}"),
    st.builds(lambda d, p: f"{d}:/{p.lstrip('/') or 'auth'}", reverse_dns, paths),
    st.builds(lambda d, p: f"{d}://auth{p}", reverse_dns, paths),
)
public_uri = web_uri | custom_uri

# The permissions the seeded tenant has, by each way of naming the API.
APIS = {
    "healthcare": (["azure-healthcare-apis", GUIDS["healthcare"]], ["user_impersonation"], []),
    "dicom": (
        ["dicom", "https://dicom.healthcareapis.azure.com"],
        ["user_impersonation", "Dicom.ReadWrite"],
        [],
    ),
    "graph": (
        ["microsoft-graph", GUIDS["graph"], "https://graph.microsoft.com"],
        ["User.Read", "openid", "profile", "email", "offline_access"],
        [],  # the default policy allows no application role
    ),
}


@st.composite
def api_permissions(draw: st.DrawFn) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(sorted(APIS)), unique=True, max_size=3))
    permissions = []
    for key in chosen:
        names, scopes, roles = APIS[key]
        delegated = draw(st.lists(st.sampled_from(scopes), unique=True, max_size=len(scopes)))
        application = (
            draw(st.lists(st.sampled_from(roles), unique=True, max_size=len(roles))) if roles else []
        )
        if not delegated and not application:
            delegated = [scopes[0]]
        entry: dict[str, Any] = {"api": draw(st.sampled_from(names))}
        if delegated or draw(st.booleans()):
            entry["delegated"] = delegated
        if application:
            entry["application"] = application
        permissions.append(entry)
    return permissions


CERTIFICATE_LIFETIMES = st.sampled_from(["P1M", "P3M", "P6M", "P12M", "P24M"])


@st.composite
def credentials(draw: st.DrawFn, client_type: str) -> dict[str, Any] | None:
    if client_type == "public":
        return draw(st.sampled_from([None, {"type": "none"}]))
    kind = draw(st.sampled_from(["absent", "none", "lifetime", "dates", "certificate"]))
    if kind == "absent":
        return None
    if kind == "none":
        return {"type": "none"}
    if kind == "certificate":
        certificate: dict[str, Any] = {"type": "certificate", "lifetime": draw(CERTIFICATE_LIFETIMES)}
        if draw(st.booleans()):
            certificate["exportable"] = draw(st.booleans())
        if draw(st.booleans()):
            certificate["subject"] = draw(st.sampled_from(["CN=job", "CN=export job, O=Contoso, C=US"]))
        return certificate
    credential: dict[str, Any] = {"type": "secret"}
    if draw(st.booleans()):
        credential["description"] = draw(text_field(1, 100))
    if kind == "lifetime":
        credential["lifetime"] = draw(LIFETIMES)
        return credential
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=draw(st.integers(0, 30)))
    longest = parse_duration("P24M").add_to(start)
    end = draw(st.sampled_from([longest, now + dt.timedelta(days=1), now + dt.timedelta(days=90)]))
    credential["startDateTime"], credential["endDateTime"] = start.isoformat(), end.isoformat()
    return credential


@st.composite
def register_requests(draw: st.DrawFn) -> dict[str, Any]:
    client_type = draw(st.sampled_from(["service", "confidential", "public"]))
    application: dict[str, Any] = {
        "serviceManagementReference": draw(text_field(1, 128)),
        "uniqueName": draw(UNIQUE_NAMES),
        "displayName": draw(display_name),
        "clientType": client_type,
    }
    if client_type == "confidential":
        application["redirectUris"] = {"web": draw(st.lists(web_uri, unique=True, max_size=4))}
    elif client_type == "public":
        application["redirectUris"] = {
            "publicClient": draw(st.lists(public_uri, unique=True, max_size=4)),
            "spa": draw(st.lists(web_uri, unique=True, max_size=3)),
        }
    if draw(st.booleans()):
        application["notes"] = draw(text_field(0, 1024) | st.just("line one\n\tline two\r\n"))
    body: dict[str, Any] = {
        "schemaVersion": 1,
        "requestId": draw(REQUEST_IDS),
        "action": "register",
        "requestedBy": draw(text_field(1, 240)),
        "application": application,
        "apiPermissions": draw(api_permissions()),
        "grantAdminConsent": draw(st.booleans()),
    }
    credential = draw(credentials(client_type))
    if credential is not None:
        body["credential"] = credential
    if client_type != "public" and draw(st.booleans()):
        body["federatedCredentials"] = draw(federated_credentials())
    return body


@st.composite
def federated_credentials(draw: st.DrawFn) -> list[dict[str, Any]]:
    """0-3 federated credentials of distinct names and subjects, from a GitHub-like issuer (the
    emulator test puts its own issuer in, the one its FEDERATED_ISSUERS trusts)."""
    names = draw(st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{2,30}", fullmatch=True), max_size=3))
    unique = list({n.casefold(): n for n in names}.values())
    entries: list[dict[str, Any]] = []
    for n, name in enumerate(unique):
        entry = {
            "name": name,
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": f"repo:contoso/app-{n}:environment:{draw(st.sampled_from(['prod', 'test']))}",
        }
        if draw(st.booleans()):
            entry["description"] = draw(text_field(1, 100))
        entries.append(entry)
    return entries


reference_requests = st.builds(
    lambda action, request_id, unique_name, owner: {
        "schemaVersion": 1,
        "requestId": request_id,
        "action": action,
        "requestedBy": "alice@contoso.com",
        "application": {"uniqueName": unique_name, "serviceManagementReference": owner},
    },
    st.sampled_from(["decommission", "rotate"]),
    REQUEST_IDS,
    leaf("ApplicationRef", "uniqueName"),
    text_field(1, 128),
)


@st.composite
def at_the_limits(draw: st.DrawFn) -> dict[str, Any]:
    """A register request with every list and string at its largest allowed size."""
    body = draw(register_requests())
    body["requestId"] = "R" * 100
    body["requestedBy"] = "r" * 240
    body["application"].update(
        uniqueName="a" * 64, displayName="d" * 120, notes="n" * 1024, serviceManagementReference="s" * 128
    )
    if body["application"]["clientType"] == "public":
        body["application"]["redirectUris"] = {
            "publicClient": [f"com.contoso.app://auth/{n}" for n in range(128)],
            "spa": [f"https://spa.contoso.com/{n}" for n in range(127)]
            + ["https://spa.contoso.com/" + "s" * (256 - 24)],
        }
    elif body["application"]["clientType"] == "confidential":
        body["application"]["redirectUris"] = {"web": [f"https://web.contoso.com/{n}" for n in range(256)]}
    names = [f"scope.{n}" for n in range(99)] + ["p" * 120]
    # Unknown GUIDs pass the contract and the policy; only the tenant lookup would refuse them.
    body["apiPermissions"] = [
        {"api": f"00000000-0000-0000-0000-{n:012d}", "delegated": names} for n in range(20)
    ]
    return body


def encoded(body: dict[str, Any]) -> st.SearchStrategy[bytes]:
    raw = json.dumps(body).encode()
    return st.sampled_from(
        [
            raw,
            json.dumps(body, ensure_ascii=False).encode(),
            b"\xef\xbb\xbf" + raw,  # UTF-8 with a byte-order mark
            b" \n\t" + json.dumps(body, indent=2).encode() + b"\r\n",
            raw + b" " * max(0, MAX_BODY_BYTES - len(raw)),  # exactly the largest body
        ]
    )


valid_messages = st.one_of(register_requests(), reference_requests, at_the_limits()).flatmap(encoded)


@functools.cache
def service_settings() -> Settings:
    return Settings(AZURE_TENANT_ID="contoso.onmicrosoft.com", KEY_VAULT_URL="https://vault.vault.azure.net/")


@pytest.mark.long
@cases(3000)
@given(valid_messages)
def test_every_valid_message_is_accepted(body: bytes) -> None:
    request = parse_request(body)
    assert check_policy(request, service_settings().request_policy, dt.datetime.now(dt.UTC)) == []


# ---------------------------------------------------------------- invalid requests


@dataclass(frozen=True)
class Invalid:
    body: bytes
    field: str  # the field the reply must name


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


def _field(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "body"


def _string_paths(body: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(path, kind) of every string a request can carry."""
    found: list[tuple[tuple[Any, ...], str]] = [(("requestId",), "id"), (("requestedBy",), "text")]
    app = body["application"]
    found.append((("application", "uniqueName"), "name"))
    found.append((("application", "serviceManagementReference"), "text"))
    if "displayName" in app:
        found.append((("application", "displayName"), "text"))
    if "notes" in app:
        found.append((("application", "notes"), "notes"))
    for i, permission in enumerate(body.get("apiPermissions", [])):
        found.append((("apiPermissions", i, "api"), "api"))
        for kind in ("delegated", "application"):
            found += [
                (("apiPermissions", i, kind, j), "permission") for j in range(len(permission.get(kind, [])))
            ]
    credential = body.get("credential") or {}
    if "description" in credential:
        found.append((("credential", "description"), "text"))
    if "lifetime" in credential:
        found.append((("credential", "lifetime"), "lifetime"))
    return found


# (Lone surrogates are a body-level case: the JSON parser refuses them before any field.)
control = st.characters(categories=("Cc", "Cf", "Zl", "Zp")).filter(
    lambda c: c not in "\t\n\r"
) | st.sampled_from(["\x00", "\u202e", "\u200b", "\ufeff", "\u2028"])
# Tries to end the OData string literal (or the URL path segment) the value is put in.
breakout = st.sampled_from(
    [
        "'",
        "''",
        "' or 1 eq 1 or appId eq '",
        "')/any(x:x eq '",
        "\\'",
        '"',
        " ",
        "#",
        "?$filter=id ne ''",
        "/../applications",
        "%27",
        "\n",
    ]
)


@st.composite
def bad_strings(draw: st.DrawFn, body: dict[str, Any]) -> Invalid:
    path, kind = draw(st.sampled_from(_string_paths(body)))
    value = _get(body, path)
    cut = draw(st.integers(0, len(value)))
    if kind in ("text", "notes"):  # free text: only control characters are refused
        bad = draw(control) if kind == "text" else draw(control.filter(lambda c: c not in "\t\n\r"))
    elif kind == "api":
        bad = draw(st.sampled_from(["'", '"', " ", "#", "?", "\t", "\x7f", "' or 1 eq 1 or '"]) | control)
    elif kind == "name":
        bad = draw(breakout | control | st.sampled_from(["A", "_", ".", "é", "-" + value]))
        value, cut = ("", 0) if bad.startswith("-") else (value, cut)
    else:
        bad = draw(breakout | control)
    if kind == "text":  # surrounding whitespace (some control characters are) is stripped
        bad = f"x{bad}x"
    changed = json.loads(json.dumps(body))
    _get(changed, path[:-1])[path[-1]] = value[:cut] + bad + value[cut:]
    return Invalid(json.dumps(changed).encode(), _field(path))


LIMITS: list[tuple[tuple[Any, ...], int, str]] = [
    (("requestId",), 101, "R"),
    (("requestedBy",), 241, "r"),
    (("application", "serviceManagementReference"), 129, "s"),
    (("application", "uniqueName"), 65, "a"),
    (("application", "displayName"), 121, "d"),
    (("application", "notes"), 1025, "n"),
]


@st.composite
def beyond_limits(draw: st.DrawFn, body: dict[str, Any]) -> Invalid:
    changed = json.loads(json.dumps(body))
    choice = draw(st.integers(0, len(LIMITS) + 5))
    if choice < len(LIMITS):
        path, length, char = LIMITS[choice]
        _get(changed, path[:-1])[path[-1]] = char * (length - 1 + draw(st.integers(1, 3000)))
        return Invalid(json.dumps(changed).encode(), _field(path))
    changed["application"] = {
        "uniqueName": "limits",
        "serviceManagementReference": "CI1",
        "displayName": "d",
        "clientType": "public",
    }
    over = draw(st.integers(1, 128))  # lists stay well under the body's size limit
    if choice == len(LIMITS):
        changed["apiPermissions"] = [
            {"api": f"00000000-0000-0000-0000-{n:012d}", "delegated": ["a"]} for n in range(20 + over)
        ]
        field = "apiPermissions"
    elif choice == len(LIMITS) + 1:
        changed["apiPermissions"] = [{"api": "dicom", "delegated": [f"s{n}" for n in range(100 + over)]}]
        field = "apiPermissions[0].delegated"
    elif choice == len(LIMITS) + 2:
        changed["apiPermissions"] = [{"api": "dicom", "delegated": ["p" * (120 + over)]}]
        field = "apiPermissions[0].delegated[0]"
    elif choice == len(LIMITS) + 3:
        changed["application"]["redirectUris"] = {"spa": ["https://s.contoso.com/" + "s" * (235 + over)]}
        field = "application.redirectUris.spa[0]"
    elif choice == len(LIMITS) + 4:
        changed["application"]["redirectUris"] = {
            "spa": [f"https://x.contoso.com/{n}" for n in range(256 + over)]
        }
        field = "application.redirectUris.spa"
    else:
        half = 128 + over
        changed["application"]["redirectUris"] = {
            "spa": [f"https://x.contoso.com/{n}" for n in range(half)],
            "publicClient": [f"com.contoso.app://x/{n}" for n in range(128)],
        }
        field = "application.redirectUris"
    changed.pop("credential", None)
    return Invalid(json.dumps(changed).encode(), field)


REQUIRED = [
    ("schemaVersion",),
    ("requestId",),
    ("requestedBy",),
    ("action",),
    ("application",),
    ("application", "displayName"),
    ("application", "clientType"),
    ("application", "serviceManagementReference"),
]
NOT_STRINGS: list[Any] = [0, 1.5, True, [], {}, None]
WRONG_TYPES: list[tuple[tuple[Any, ...], list[Any]]] = [
    (("schemaVersion",), [0, 1.0, 1.5, True, [], {}, "1", None]),
    (("requestId",), NOT_STRINGS),
    (("requestedBy",), NOT_STRINGS),
    (("action",), [*NOT_STRINGS, "1"]),
    (("application",), [0, True, [], "x", None]),
    (("application", "displayName"), NOT_STRINGS),
    (("application", "clientType"), [*NOT_STRINGS, "1"]),
    (("application", "uniqueName"), [0, 1.5, True, [], {}]),  # null: the requestId, if it is a valid one
    (("application", "serviceManagementReference"), NOT_STRINGS),
    (("grantAdminConsent",), [0, 1, "true", [], {}, None]),
    (("apiPermissions",), [0, True, "x", {}, None]),
    (("credential",), [0, True, "x", []]),  # null: the default credential
]


@st.composite
def structural(draw: st.DrawFn, body: dict[str, Any]) -> Invalid:
    changed = json.loads(json.dumps(body))
    what = draw(st.sampled_from(["missing", "type", "unknown", "version", "action"]))
    if what == "missing":
        path = draw(st.sampled_from(REQUIRED))
        del _get(changed, path[:-1])[path[-1]]
        return Invalid(json.dumps(changed).encode(), _field(path))
    if what == "type":
        path, values = draw(st.sampled_from(WRONG_TYPES))
        value = draw(st.sampled_from(values))
        _get(changed, path[:-1])[path[-1]] = value
        return Invalid(json.dumps(changed).encode(), _field(path))
    if what == "unknown":
        owners: list[tuple[Any, ...]] = [(), ("application",)]
        owners += [("apiPermissions", i) for i in range(len(changed.get("apiPermissions", [])))]
        if changed.get("credential"):
            owners.append(("credential",))
        owner = draw(st.sampled_from(owners))
        target = _get(changed, owner)
        key = draw(
            st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
                lambda k: k not in target and k not in KNOWN_KEYS
            )
        )
        target[key] = draw(st.sampled_from([1, "x", None, {"a": [1]}]))
        shown = key if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", key) else "<?>"
        return Invalid(json.dumps(changed).encode(), _field((*owner, shown)))
    if what == "version":
        changed["schemaVersion"] = draw(st.sampled_from([0, 2, 1.0, 1.5, "1", True, -1, 10**30]))
        return Invalid(json.dumps(changed).encode(), "schemaVersion")
    changed["action"] = draw(
        st.sampled_from(["", "Register", "delete", "register ", "explode"])
        | st.text(max_size=10).filter(lambda a: a not in ("register", "decommission", "rotate"))
    )
    return Invalid(json.dumps(changed).encode(), "action")


KNOWN_KEYS = {key for definition in DEFS.values() for key in definition.get("properties", {})}

dangerous = st.builds(
    lambda scheme, rest: f"{scheme}:{rest}",
    st.sampled_from(["javascript", "JavaScript", "data", "DATA", "file", "vbscript"]),
    st.sampled_from(["alert(1)", "//host/x", "text/html;base64,PHNjcmlwdD4=", "///etc/passwd"]),
)
not_for_anyone = st.one_of(
    dangerous,
    st.builds(
        lambda h, p: f"http://{h}{p}", hosts.filter(lambda h: h not in ("localhost", "127.0.0.1")), paths
    ),
    st.sampled_from(["http://localhost.evil.com", "http://127.0.0.1@evil.com", "http://127.0.0.1.nip.io/"]),
    https_uri.map(lambda u: u + "/*"),
    https_uri.map(lambda u: u + "#fragment"),
    https_uri.map(lambda u: u + "/a b"),
    https_uri.map(lambda u: u + "/'quote"),
    https_uri.map(lambda u: u + '/"'),
    https_uri.map(lambda u: u + "/\x00"),
    st.sampled_from(
        [
            "https://",
            "https://-bad.com",
            "https://host.contoso.com:65536/",
            "https://host.contoso.com:99999",
            "no-scheme",
            "//host/x",
            "",
        ]
    ),
    # addresses other than loopback (private, link-local, metadata, public; every spelling)
    st.builds(
        lambda a, b, p: f"https://{a}.{b}{p}",
        st.sampled_from(["10.0", "192.168", "172.16", "169.254", "8.8", "100.64"]),
        st.sampled_from(["0.1", "169.254", "1.1", "255.254"]),
        paths,
    ),
    st.sampled_from(
        ["https://2130706433/", "https://0x7f.0.0.1/", "https://[fe80::1]/", "https://[fd00::1]:8443/x"]
    ),
    st.builds(lambda h, p: f"https://{h}{p}", label.filter(lambda s: s != "localhost"), paths),  # one label
    st.builds(lambda h, p: f"https://xn--{h}.com{p}", label, paths),  # punycode
)
# Pseudo- and bare custom schemes: no platform's redirect URI.
pseudo_schemes = st.builds(
    lambda scheme, rest: f"{scheme}:{rest}",
    st.sampled_from(["view-source", "blob", "about", "intent", "jar", "myapp", "msal-viewer", "urn"]),
    st.sampled_from(
        ["https://contoso.com/", "//auth", "blank", "ietf:wg:oauth:2.0:oob", "https://x.com/a.jar!/"]
    ),
)


@st.composite
def bad_redirect_uris(draw: st.DrawFn) -> Invalid:
    client_type, kind = draw(
        st.sampled_from(
            [("confidential", "web"), ("public", "publicClient"), ("public", "spa"), ("service", "web")]
        )
    )
    valid = public_uri if kind == "publicClient" else web_uri
    if client_type == "service":
        uris, index = draw(st.lists(web_uri, min_size=1, max_size=3, unique=True)), None
    else:
        uris = draw(st.lists(valid, max_size=3, unique=True))
        refused = not_for_anyone | pseudo_schemes
        bad = draw(refused | custom_uri if kind != "publicClient" else refused)
        index = draw(st.integers(0, len(uris)))
        uris.insert(index, bad)
        if uris.count(bad) > 1:
            uris.remove(bad)
            index = uris.index(bad)
    body = {
        "schemaVersion": 1,
        "requestId": "SNOW-1",
        "action": "register",
        "requestedBy": "bob@contoso.com",
        "application": {
            "serviceManagementReference": "CI1",
            "uniqueName": "uris",
            "displayName": "u",
            "clientType": client_type,
            "redirectUris": {kind: uris},
        },
    }
    field = f"application.redirectUris.{kind}" + (f"[{index}]" if index is not None else "")
    return Invalid(json.dumps(body).encode(), field)


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@st.composite
def bad_lifetimes(draw: st.DrawFn) -> Invalid:
    credential: dict[str, Any] = {"type": "secret"}
    client_type = "service"
    what = draw(st.integers(0, 6))
    if what == 0:
        credential["lifetime"] = draw(
            st.sampled_from(
                ["P36M", "P25M", "P1Y", "P2Y", "P24M1D", "P0M", "p6m", "P6M ", "PT1H", "", "P730D"]
            )
            | st.text(max_size=8).filter(lambda s: s not in ("P3M", "P6M", "P12M", "P24M"))
        )
        field = "credential.lifetime"
    elif what == 1:  # beyond the service's maximum, by a second to centuries
        start = NOW - dt.timedelta(days=draw(st.integers(0, 30)))
        end = parse_duration("P24M").add_to(start) + dt.timedelta(seconds=draw(st.integers(1, 10**10)))
        credential.update(
            startDateTime=start.isoformat(),
            endDateTime=min(end, dt.datetime(9999, 1, 1, tzinfo=dt.UTC)).isoformat(),
        )
        field = "credential.endDateTime"
    elif what == 2:  # already over
        end = NOW - dt.timedelta(seconds=draw(st.integers(1, 10**8)))
        credential.update(
            startDateTime=(end - dt.timedelta(days=30)).isoformat(), endDateTime=end.isoformat()
        )
        field = "credential.endDateTime"
    elif what == 3:  # ends before it starts
        start = NOW + dt.timedelta(days=1)
        end = start - dt.timedelta(seconds=draw(st.integers(0, 10**6)))
        credential.update(startDateTime=start.isoformat(), endDateTime=end.isoformat())
        field = "credential.endDateTime"
    elif what == 4:  # no time zone
        credential.update(startDateTime="2030-01-01T00:00:00", endDateTime="2030-06-01T00:00:00Z")
        field = "credential.startDateTime"
    elif what == 5:  # both ways at once
        credential.update(lifetime="P6M", endDateTime=(NOW + dt.timedelta(days=9)).isoformat())
        field = "credential.endDateTime"
    else:
        client_type = "public"
        credential["lifetime"] = "P6M"
        field = "credential.type"
    body = {
        "schemaVersion": 1,
        "requestId": "SNOW-2",
        "action": "register",
        "requestedBy": "bob@contoso.com",
        "application": {
            "uniqueName": "lifetimes",
            "serviceManagementReference": "CI1",
            "displayName": "l",
            "clientType": client_type,
        },
        "credential": credential,
    }
    return Invalid(json.dumps(body).encode(), field)


SAME_API = [
    ("azure-healthcare-apis", GUIDS["healthcare"]),
    (GUIDS["healthcare"], GUIDS["healthcare"].upper()),
    ("dicom", "https://dicom.healthcareapis.azure.com"),
    ("https://dicom.healthcareapis.azure.com", "https://dicom.healthcareapis.azure.com/"),
    ("microsoft-graph", GUIDS["graph"]),
]


@st.composite
def bad_permissions(draw: st.DrawFn) -> Invalid:
    """Refused by the service's policy (after parsing, before any lookup)."""
    what = draw(st.integers(0, 3))
    if what == 0:
        name = draw(
            st.sampled_from(
                ["Application.ReadWrite.All", "Directory.ReadWrite.All", "RoleManagement.ReadWrite.Directory"]
            )
            | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10).map(
                lambda s: f"{s.capitalize()}.ReadWrite.All"
            )
        )
        kind = draw(st.sampled_from(["delegated", "application"]))
        # by the names the policy decides on without a lookup (an alias such as a national
        # cloud's URI is decided once resolved: tests/domain/test_policy.py, tests/e2e/test_trust.py)
        api = draw(st.sampled_from(["microsoft-graph", GUIDS["graph"], GUIDS["graph"].upper()]))
        permissions = [{"api": api, kind: [name]}]
        field = f"apiPermissions[0].{kind}[0]"
    elif what == 1:
        name = draw(
            st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=2, max_size=30)
            .map(lambda s: "z" + s)
            .filter(lambda n: n not in ("microsoft-graph", "azure-healthcare-apis", "dicom"))
        )
        permissions = [
            {"api": "dicom", "delegated": ["user_impersonation"]},
            {"api": name, "delegated": ["x"]},
        ]
        field = "apiPermissions[1].api"
    elif what == 3:  # default deny on every API: app roles, and scopes outside the entry
        api, kind, name = draw(
            st.sampled_from(
                [
                    ("azure-healthcare-apis", "application", "user_impersonation"),
                    ("dicom", "application", "Dicom.ReadWrite"),
                    ("dicom", "delegated", "Dicom.Admin"),
                    (GUIDS["healthcare"], "delegated", "Anything.Goes"),
                    ("https://dicom.healthcareapis.azure.com", "application", "full_access_as_app"),
                ]
            )
        )
        permissions = [{"api": api, kind: [name]}]
        field = f"apiPermissions[0].{kind}[0]"
    else:  # the same API twice, named differently
        first, second = draw(st.permutations(draw(st.sampled_from(SAME_API))))
        permissions = [
            {"api": first, "delegated": ["user_impersonation"]},
            {"api": second, "delegated": ["openid"]},
        ]
        field = "apiPermissions[1].api"
    body = {
        "schemaVersion": 1,
        "requestId": "SNOW-3",
        "action": "register",
        "requestedBy": "bob@contoso.com",
        "application": {
            "uniqueName": "perms",
            "serviceManagementReference": "CI1",
            "displayName": "p",
            "clientType": "service",
        },
        "apiPermissions": permissions,
    }
    return Invalid(json.dumps(body).encode(), field)


def _with_duplicate(document: Any, path: tuple[Any, ...], again: Any) -> str:
    """``document`` as JSON text, with the key at ``path`` written a second time (``again``)."""
    if not path:
        return json.dumps(document)
    head, rest = path[0], path[1:]
    if isinstance(document, list):
        return (
            "["
            + ", ".join(
                _with_duplicate(v, rest, again) if i == head else json.dumps(v)
                for i, v in enumerate(document)
            )
            + "]"
        )
    members = []
    for key, value in document.items():
        if key == head and not rest:
            members += [f"{json.dumps(key)}: {json.dumps(value)}", f"{json.dumps(key)}: {json.dumps(again)}"]
        elif key == head:
            members.append(f"{json.dumps(key)}: {_with_duplicate(value, rest, again)}")
        else:
            members.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{" + ", ".join(members) + "}"


def _key_paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, dict):
        return [p for k, v in document.items() for p in [(*prefix, k), *_key_paths(v, (*prefix, k))]]
    if isinstance(document, list):
        return [p for i, v in enumerate(document) for p in _key_paths(v, (*prefix, i))]
    return []


@st.composite
def duplicate_keys(draw: st.DrawFn, body: dict[str, Any]) -> Invalid:
    """A key written twice in its object, at any depth: a second action, uniqueName, owner..."""
    path = draw(st.sampled_from(_key_paths(body)))
    again = draw(st.sampled_from([_get(body, path), "decommission", "victim", None, 0]))
    return Invalid(_with_duplicate(body, path, again).encode(), _field(path))


field_mutations = register_requests().flatmap(
    lambda body: st.one_of(bad_strings(body), beyond_limits(body), structural(body), duplicate_keys(body))
)
invalid_requests = st.one_of(field_mutations, bad_redirect_uris(), bad_lifetimes(), bad_permissions())


def _nested(depth: int) -> bytes:
    document = json.dumps({"requestId": "SNOW-4", "action": "register", "deep": "@"})
    return document.replace('"@"', "[" * depth + "]" * depth).encode()


sample_body = json.dumps(
    {
        "schemaVersion": 1,
        "requestId": "SNOW-5",
        "action": "decommission",
        "requestedBy": "ü@contoso.com",
        "application": {"uniqueName": "x", "serviceManagementReference": "CI1"},
    },
    ensure_ascii=False,
)
bad_bodies = st.one_of(
    st.binary(max_size=512).map(lambda b: b"{" + b),  # starts like JSON, then anything
    st.integers(1, len(sample_body) - 1).map(lambda n: sample_body[:n].encode()),  # cut short
    st.sampled_from(["utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"]).map(sample_body.encode),
    st.just(sample_body.replace('"x"', '"\\ud800"').encode()),  # a lone surrogate
    st.sampled_from(
        [
            b"[]",
            b"null",
            b"1",
            b'"register"',
            b"true",
            b"{'single': 'quotes'}",
            b'{"a": NaN}',
            b'{"a": Infinity}',
            b"",
            b"\xff\xfe\x00",
        ]
    ),
    st.integers(1, 4 * MAX_BODY_BYTES).map(
        lambda n: sample_body.encode() + b" " * (MAX_BODY_BYTES - len(sample_body.encode()) + n)
    ),
    st.integers(33, 3000).map(_nested) | st.just(_nested(100_000)),
).map(lambda raw: Invalid(raw, "body"))


def deliver(loop: asyncio.AbstractEventLoop, body: bytes) -> dict[str, Any]:
    return loop.run_until_complete(harness.register(body))


def assert_rejected_naming(reply: dict[str, Any], case: Invalid) -> None:
    assert reply["status"] == "rejected", (case, reply)
    fields = [error["field"] for error in reply["errors"]]
    assert case.field in fields, (case, fields)


@pytest.fixture
def no_platform_requests(emulator: RunningEmulator) -> Any:
    """The batch's check: the emulator saw no Graph or Key Vault request at all."""
    emulator.admin.clear_requests()
    yield
    seen = [e for e in emulator.admin.requests()["entries"] if e["service"] in ("graph", "keyvault")]
    assert seen == [], f"{len(seen)} platform requests, e.g. {seen[:3]}"


@pytest.mark.long
def test_invalid_requests_are_rejected_naming_the_field_before_any_io(
    session_loop: asyncio.AbstractEventLoop, no_platform_requests: None
) -> None:
    @cases(4500)
    @given(invalid_requests)
    def run(case: Invalid) -> None:
        assert_rejected_naming(deliver(session_loop, case.body), case)

    run()


def test_invalid_bodies_are_rejected_naming_the_body_before_any_io(
    session_loop: asyncio.AbstractEventLoop, no_platform_requests: None
) -> None:
    @cases(2500)
    @given(bad_bodies)
    def run(case: Invalid) -> None:
        reply = deliver(session_loop, case.body)
        if reply["status"] == "rejected" and case.field not in [e["field"] for e in reply["errors"]]:
            # Random bytes after "{" can be a JSON object after all; then fields are named.
            json.loads(case.body)
            assert reply["errors"], reply
            return
        assert_rejected_naming(reply, case)

    run()


def test_a_sample_of_valid_requests_succeeds_through_the_emulator(
    session_loop: asyncio.AbstractEventLoop, emulator: RunningEmulator
) -> None:
    emulator.admin.clear_requests()
    seen: list[str] = []  # every draw gets a name of its own (a set would repeat one)

    @cases(50)
    @given(register_requests())
    def run(body: dict[str, Any]) -> None:
        name = body["application"]["uniqueName"]
        body["application"]["uniqueName"] = f"{name[:56]}-{len(seen):04d}".lstrip("-")
        seen.append(name)
        for entry in body.get("federatedCredentials", []):
            entry["issuer"] = emulator.settings["EMULATOR_OIDC_ISSUER"]
        reply = deliver(session_loop, json.dumps(body).encode())
        assert reply["status"] == "succeeded", (body, reply)

    run()
    assert graph_writes(emulator), "the sample reached Graph and Key Vault"


hostile_apis = st.builds(
    lambda scheme, host, tail: f"{scheme}://{host}{tail}",
    st.sampled_from(["https", "api"]),
    hosts,
    st.sampled_from(
        [
            ")/any(n:n eq 'x",  # refused by the contract: a quote
            "/..%2F..%2Fapplications",
            "/$filter=appId ne null",
            "/(n:n eq n)",
            "%27%20or%201%20eq%201",
            "/applications(uniqueName=%27x%27)",
            "\\u0027",
        ]
    ),
)


def test_contract_valid_but_hostile_api_references_find_nothing_and_write_nothing(
    session_loop: asyncio.AbstractEventLoop, emulator: RunningEmulator
) -> None:
    """Identifier URIs may hold OData and URL syntax: they go into a `$filter` literal, find no
    service principal, and the request is rejected naming the API, with nothing written."""
    emulator.admin.clear_requests()

    @cases(30)
    @given(hostile_apis)
    def run(api: str) -> None:
        body = {
            "schemaVersion": 1,
            "requestId": "SNOW-6",
            "action": "register",
            "requestedBy": "mallory@contoso.com",
            "application": {
                "uniqueName": "hostile",
                "serviceManagementReference": "CI1",
                "displayName": "h",
                "clientType": "service",
            },
            "apiPermissions": [{"api": api, "delegated": ["user_impersonation"]}],
        }
        reply = deliver(session_loop, json.dumps(body).encode())
        assert_rejected_naming(reply, Invalid(b"", "apiPermissions[0].api"))

    run()
    assert graph_writes(emulator) == []
