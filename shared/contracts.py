"""The messages the service exchanges: registration requests in, replies out.

A request arrives as a Service Bus message body (JSON, camelCase names) and is one of
three actions, `register`, `decommission` or `rotate`. `parse_request` turns any bytes
into a typed request or raises `RequestRejected` with one `FieldError` per problem;
`check_policy` adds the rules that depend on the settings (API catalog, Microsoft Graph
allow-list, maximum secret lifetime). A `RegistrationReply` goes back to the ticket.

Error messages describe the rule that was broken and never repeat the offending
value: it may be huge, hostile, or a secret pasted into the wrong field.

`python -m shared.contracts` writes the JSON Schemas integrators read to `schemas/`.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from shared.durations import parse_duration
from shared.settings import (
    CATALOG_NAME_PATTERN,
    GUID_PATTERN,
    IDENTIFIER_URI_MAX_LENGTH,
    IDENTIFIER_URI_PATTERN,
    MICROSOFT_GRAPH_APP_ID,
    Settings,
)

__all__ = [
    "MAX_BODY_BYTES",
    "SCHEMA_VERSION",
    "ApiPermission",
    "ConsentResult",
    "DecommissionRequest",
    "FieldError",
    "NoCredential",
    "RegisterRequest",
    "RegistrationReply",
    "RegistrationRequest",
    "RemovedResources",
    "ReplyApplication",
    "ReplyCredential",
    "RequestRejected",
    "RequestedSecret",
    "RotateRequest",
    "SecretCredential",
    "check_policy",
    "derive_unique_name",
    "graph_permission_allowed",
    "is_microsoft_graph",
    "json_schemas",
    "parse_request",
    "render_schema",
    "requested_secret",
    "resolve_api",
    "write_schemas",
]

SCHEMA_VERSION: Literal[1] = 1
# The Service Bus standard tier's largest message.
MAX_BODY_BYTES = 256 * 1024
# A valid request nests five levels deep; anything far deeper is refused before validation.
MAX_NESTING = 32
# A reply is itself a Service Bus message: a body with thousands of mistakes gets the first few.
MAX_REPORTED_ERRORS = 20

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
UNIQUE_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
PERMISSION_NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
DEFAULT_SECRET_DESCRIPTION = "managed by entra-app-registration-service"
MAX_REDIRECT_URIS = 256
MAX_API_PERMISSIONS = 20
MAX_PERMISSIONS_PER_KIND = 100

_ACTIONS = ("register", "decommission", "rotate")
_CREDENTIAL_TYPES = ("secret", "none")
_DANGEROUS_SCHEMES = frozenset({"javascript", "data", "file", "vbscript"})
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


# ---------------------------------------------------------------- model bases


def _title(name: str, info: object) -> str:
    # Schema titles in the JSON spelling (`uniqueName`), not pydantic's "Uniquename".
    return to_camel(name)


class _Inbound(BaseModel):
    # Strict: JSON's types as written (no "true" for true); inputs never appear in error text.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        serialize_by_alias=True,
        hide_input_in_errors=True,
        field_title_generator=_title,
    )


class _Outbound(BaseModel):
    # Built by the service in Python (snake_case names), sent as camelCase JSON.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        field_title_generator=_title,
    )


# ---------------------------------------------------------------- errors


class FieldError(_Outbound):
    """One problem with a request: where, which rule, and the rule in words."""

    field: str = Field(
        description="Where: a dotted path with [i] indexes, e.g. `apiPermissions[1].delegated[0]`; "
        "`body` for problems with the message as a whole."
    )
    code: str = Field(description="A stable, machine-readable code such as `missing` or `too_long`.")
    message: str = Field(description="The rule that was broken, in words. Never repeats the value.")


class RequestRejected(Exception):
    """A request that can never succeed as sent: reply `rejected` and complete the message."""

    def __init__(self, errors: Sequence[FieldError], request_id: str | None = None) -> None:
        self.errors = list(errors)
        self.request_id = request_id
        super().__init__(f"request rejected with {len(self.errors)} problem(s)")


def _rule(code: str, message: str, *at: str | int) -> PydanticCustomError:
    """A validation error of our own; `at` continues the path below the validated value.

    The `at` context key also marks the error as ours, so its message is used as is.
    """
    return PydanticCustomError(code, message, {"at": at})


# ---------------------------------------------------------------- strings


def _is_control(char: str) -> bool:
    # Control, format (invisible and bidirectional marks), surrogate and line/paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _no_control_characters(value: str) -> str:
    if any(_is_control(char) for char in value):
        raise _rule("invalid_character", "Must not contain control or invisible formatting characters.")
    return value


def _notes_text(value: str) -> str:
    if any(_is_control(char) and char not in "\t\n\r" for char in value):
        raise _rule(
            "invalid_character", "Must not contain control characters other than tab and line breaks."
        )
    return value


def _exactly_one(value: object) -> object:
    # JSON `true` and `1.0` equal 1 in Python; the contract's version is the integer 1.
    if type(value) is not int:
        raise _rule("invalid_value", f"Must be {SCHEMA_VERSION}.")
    return value


def _unique_entries(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _rule("duplicate", "Must not repeat an earlier entry.", index)
        seen.add(value)
    return values


SchemaVersion = Annotated[
    Literal[1],
    BeforeValidator(_exactly_one),
    Field(description="The contract version; always 1."),
]
RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=REQUEST_ID_PATTERN),
    Field(
        description="The ticket or change number. A redelivered or resent request with the same id converges."
    ),
]
RequestedBy = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    AfterValidator(_no_control_characters),
    Field(description="Who asked for the change, usually an email address or UPN; recorded, not checked."),
]
UniqueName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=UNIQUE_NAME_PATTERN),
    Field(
        description="The application's key across requests (Graph's immutable `uniqueName`; also names its "
        "Key Vault secret): 1-64 lower-case letters, digits and '-', not starting or ending with '-'."
    ),
]
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_no_control_characters),
    Field(description="The name shown in the Entra admin center; not a key, several apps may share it."),
]
Notes = Annotated[
    str,
    StringConstraints(max_length=1024),
    AfterValidator(_notes_text),
    Field(description="Free text stored on the application's `notes`."),
]
PermissionName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=120, pattern=PERMISSION_NAME_PATTERN),
]
PermissionNames = Annotated[
    list[PermissionName],
    Field(max_length=MAX_PERMISSIONS_PER_KIND),
    AfterValidator(_unique_entries),
]


# ---------------------------------------------------------------- redirect URIs

# RFC 3986 characters, less the three the rules forbid: ' (breaks quoting), * (wildcard), # (fragment).
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&()+,;=%]+")
_HTTPS_URI = re.compile(
    r"(?i:https)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::(?P<port>\d{1,5}))?(?:[/?].*)?"
)
_LOOPBACK_URI = re.compile(r"(?i:http)://(?i:localhost|127\.0\.0\.1)(?::(?P<port>\d{1,5}))?(?:[/?].*)?")
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):.+")


def _uri_characters(value: str) -> None:
    if "*" in value:
        raise _rule("wildcard_not_allowed", "Redirect URIs must not contain wildcards (*).")
    if "#" in value:
        raise _rule("fragment_not_allowed", "Redirect URIs must not contain a fragment (#).")
    if not _URI_CHARACTERS.fullmatch(value):
        raise _rule(
            "invalid_character",
            "Redirect URIs may contain only URI characters: no whitespace, quotes or control characters.",
        )


def _is_https_or_loopback(value: str) -> bool:
    match = _HTTPS_URI.fullmatch(value) or _LOOPBACK_URI.fullmatch(value)
    return match is not None and int(match["port"] or 0) <= 65535


def _web_redirect_uri(value: str) -> str:
    _uri_characters(value)
    if not _is_https_or_loopback(value):
        raise _rule(
            "invalid_redirect_uri",
            "Must be https://host[:port][/path], or http://localhost or http://127.0.0.1 for local development.",
        )
    return value


def _public_client_redirect_uri(value: str) -> str:
    _uri_characters(value)
    if _is_https_or_loopback(value):
        return value
    match = _SCHEME.fullmatch(value)
    scheme = match["scheme"].lower() if match else None
    if scheme == "http":
        raise _rule(
            "insecure_redirect_uri", "http:// is allowed only for localhost and 127.0.0.1; use https://."
        )
    if scheme in _DANGEROUS_SCHEMES:
        raise _rule(
            "scheme_not_allowed", "The javascript:, data:, file: and vbscript: schemes are not allowed."
        )
    if scheme is None or scheme == "https":
        raise _rule(
            "invalid_redirect_uri",
            "Must be https://host, http://localhost, a custom scheme such as myapp://auth, "
            "or urn:ietf:wg:oauth:2.0:oob.",
        )
    return value


_URI_LENGTH = StringConstraints(min_length=1, max_length=256)
WebRedirectUri = Annotated[str, _URI_LENGTH, AfterValidator(_web_redirect_uri)]
PublicClientRedirectUri = Annotated[str, _URI_LENGTH, AfterValidator(_public_client_redirect_uri)]


# ---------------------------------------------------------------- API references


def _api_reference(value: str) -> str:
    if re.fullmatch(GUID_PATTERN, value) or re.fullmatch(CATALOG_NAME_PATTERN, value):
        return value
    if len(value) <= IDENTIFIER_URI_MAX_LENGTH and re.fullmatch(IDENTIFIER_URI_PATTERN, value):
        return value
    raise _rule(
        "invalid_api",
        "Must be a catalog name (lower-case letters, digits and '-'), a resource appId (GUID), or an "
        "identifier URI (https:// or api://) without quotes, whitespace, '#' or '?'.",
    )


ApiReference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=IDENTIFIER_URI_MAX_LENGTH),
    AfterValidator(_no_control_characters),  # the URI pattern lets invisible formatting characters through
    AfterValidator(_api_reference),
    Field(
        description="The resource API: a catalog name such as `azure-healthcare-apis`, `dicom` or "
        "`microsoft-graph`, a resource appId (GUID), or an identifier URI (https:// or api://).",
        json_schema_extra={
            "anyOf": [
                {"pattern": CATALOG_NAME_PATTERN},
                {"pattern": GUID_PATTERN},
                {"pattern": IDENTIFIER_URI_PATTERN},
            ]
        },
    ),
]


# ---------------------------------------------------------------- request models


class RedirectUris(_Inbound):
    """Where Entra may send tokens, by platform. Which lists may be used depends on `clientType`."""

    web: Annotated[
        list[WebRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(_unique_entries)
    ] = Field(
        default_factory=list,
        description="Web platform (confidential clients): https://, or http://localhost for development.",
    )
    public_client: Annotated[
        list[PublicClientRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(_unique_entries)
    ] = Field(
        default_factory=list,
        description="Mobile and desktop platform (public clients): https://, http://localhost, a custom "
        "scheme such as myapp://auth or msal<clientId>://auth, or urn:ietf:wg:oauth:2.0:oob.",
    )
    spa: Annotated[
        list[WebRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(_unique_entries)
    ] = Field(
        default_factory=list,
        description="Single-page application platform (public clients): https://, or http://localhost.",
    )

    @model_validator(mode="after")
    def _total(self) -> RedirectUris:
        if len(self.web) + len(self.public_client) + len(self.spa) > MAX_REDIRECT_URIS:
            raise _rule("too_long", f"Must have at most {MAX_REDIRECT_URIS} redirect URIs in total.")
        return self


class RegisterApplication(_Inbound):
    """The application to create or update."""

    unique_name: UniqueName | None = Field(
        default=None, description="Optional; derived from requestId when absent (see derive_unique_name)."
    )
    display_name: DisplayName
    client_type: Literal["service", "confidential", "public"] = Field(
        description="`service`: a daemon using client credentials, no redirect URIs. `confidential`: a web app "
        "with a secret, `web` redirect URIs only. `public`: a mobile, desktop or browser app without a secret, "
        "`publicClient` and `spa` redirect URIs only."
    )
    redirect_uris: RedirectUris = Field(default_factory=RedirectUris)
    notes: Notes | None = None

    @model_validator(mode="after")
    def _redirect_uris_fit_client_type(self) -> RegisterApplication:
        allowed = {"service": (), "confidential": ("web",), "public": ("publicClient", "spa")}[
            self.client_type
        ]
        lists = {"web": self.redirect_uris.web, "publicClient": self.redirect_uris.public_client}
        lists["spa"] = self.redirect_uris.spa
        for name, uris in lists.items():
            if uris and name not in allowed:
                raise _rule(
                    "not_allowed_for_client_type",
                    f"A {self.client_type} client must not have {name} redirect URIs.",
                    "redirectUris",
                    name,
                )
        return self


class ApplicationRef(_Inbound):
    """An application the service registered earlier, by its uniqueName."""

    unique_name: UniqueName


def _unique_apis(permissions: list[ApiPermission]) -> list[ApiPermission]:
    seen: set[str] = set()
    for index, permission in enumerate(permissions):
        key = permission.api.casefold()
        if key in seen:
            raise _rule("duplicate", "Each API must appear in one entry only.", index, "api")
        seen.add(key)
    return permissions


class ApiPermission(_Inbound):
    """Permissions on one resource API: delegated scopes and application roles, by name."""

    api: ApiReference
    delegated: PermissionNames = Field(
        default_factory=list, description="Delegated permissions (scopes), e.g. user_impersonation."
    )
    application: PermissionNames = Field(
        default_factory=list, description="Application permissions (app roles), e.g. User.Read.All."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ApiPermission:
        if not self.delegated and not self.application:
            raise _rule("missing", "Name at least one delegated or application permission.")
        return self


class SecretCredential(_Inbound):
    """A client secret: either a portal lifetime, or explicit start and end times."""

    type: Literal["secret"]
    description: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100),
        AfterValidator(_no_control_characters),
    ] = Field(default=DEFAULT_SECRET_DESCRIPTION, description="The secret's description in Entra.")
    lifetime: Literal["P3M", "P6M", "P12M", "P24M"] | None = Field(
        default=None, description="The portal's lifetimes: 3, 6, 12 or 24 months from issue."
    )
    start_date_time: AwareDatetime | None = Field(
        default=None,
        description="Custom validity start, with a time zone; give endDateTime too, not lifetime.",
    )
    end_date_time: AwareDatetime | None = Field(
        default=None, description="Custom validity end, after startDateTime."
    )

    @model_validator(mode="after")
    def _one_validity(self) -> SecretCredential:
        start, end = self.start_date_time, self.end_date_time
        if self.lifetime is not None:
            if start is not None or end is not None:
                raise _rule(
                    "conflict",
                    "Give either lifetime, or startDateTime and endDateTime, not both.",
                    "startDateTime" if start is not None else "endDateTime",
                )
        elif start is None and end is None:
            raise _rule("missing", "Give either lifetime, or startDateTime and endDateTime.", "lifetime")
        elif start is None or end is None:
            missing = "startDateTime" if start is None else "endDateTime"
            raise _rule("missing", "startDateTime and endDateTime go together.", missing)
        elif end <= start:
            raise _rule("end_before_start", "Must be later than startDateTime.", "endDateTime")
        return self


class NoCredential(_Inbound):
    """No credential: for public clients, or an app that will get one another way."""

    type: Literal["none"]


Credential = Annotated[SecretCredential | NoCredential, Field(discriminator="type")]


class _RequestBase(_Inbound):
    schema_version: SchemaVersion
    request_id: RequestId
    requested_by: RequestedBy


class RegisterRequest(_RequestBase):
    """Create the application, or bring an existing one (same uniqueName) to the requested state."""

    action: Literal["register"]
    application: RegisterApplication
    api_permissions: Annotated[
        list[ApiPermission], Field(max_length=MAX_API_PERMISSIONS), AfterValidator(_unique_apis)
    ] = Field(default_factory=list, description="The API permissions the application requires.")
    grant_admin_consent: StrictBool = Field(
        default=False, description="Grant tenant-wide admin consent for the requested permissions."
    )
    credential: Credential | None = Field(
        default=None,
        description="Absent: a secret with the service's default lifetime for service and confidential "
        "clients, none for public clients.",
    )

    @property
    def unique_name(self) -> str:
        """The application's key: `application.uniqueName`, or derived from `requestId`."""
        return self.application.unique_name or derive_unique_name(self.request_id)

    @model_validator(mode="after")
    def _consistent(self) -> RegisterRequest:
        if not re.fullmatch(UNIQUE_NAME_PATTERN, self.unique_name):
            raise _rule(
                "invalid_format",
                "No uniqueName can be derived from requestId; give application.uniqueName.",
                "application",
                "uniqueName",
            )
        if self.application.client_type == "public" and isinstance(self.credential, SecretCredential):
            raise _rule(
                "not_allowed_for_client_type", "A public client cannot hold a secret.", "credential", "type"
            )
        return self


class DecommissionRequest(_RequestBase):
    """Delete the application and its service principal, and disable its stored secret."""

    action: Literal["decommission"]
    application: ApplicationRef


class RotateRequest(_RequestBase):
    """Add a new secret to the application, store it, and retire the old one after the grace period."""

    action: Literal["rotate"]
    application: ApplicationRef


RegistrationRequest = Annotated[
    RegisterRequest | DecommissionRequest | RotateRequest, Field(discriminator="action")
]
_REQUEST_ADAPTER: TypeAdapter[RegisterRequest | DecommissionRequest | RotateRequest] = TypeAdapter(
    RegistrationRequest
)


def derive_unique_name(request_id: str) -> str:
    """The uniqueName for a request that gives none: lower-case, runs of other characters as one '-'.

    `SNOW-CHG0012345` -> `snow-chg0012345`, `INC.0042:b` -> `inc-0042-b`. Trimmed of '-',
    cut to 64 characters, trimmed again. Distinct ids can map to one name (`A.1` and
    `a-1`); give `uniqueName` where that matters.
    """
    name = re.sub(r"[^a-z0-9]+", "-", request_id.lower()).strip("-")
    return name[:64].strip("-")


# ---------------------------------------------------------------- reply models


class ReplyApplication(_Outbound):
    """The application as it now exists in Entra."""

    unique_name: str
    display_name: str | None = None
    client_id: str = Field(description="The appId, which clients use as client_id.")
    object_id: str = Field(description="The application object's id.")
    service_principal_id: str | None = Field(default=None, description="The service principal's object id.")
    tenant_id: str


class ReplyCredential(_Outbound):
    """The secret that was issued. Its value is only in Key Vault, never in a reply."""

    type: Literal["secret"] = "secret"
    key_id: str
    hint: str = Field(description="The first characters of the secret, as Entra shows them.")
    start_date_time: AwareDatetime
    end_date_time: AwareDatetime
    key_vault_secret_id: str = Field(description="The Key Vault secret version holding the value.")


class ConsentResult(_Outbound):
    """Permissions granted tenant-wide on one API."""

    api: str = Field(description="The API as the request named it.")
    delegated: list[str] = Field(default_factory=list)
    application: list[str] = Field(default_factory=list)


class RemovedResources(_Outbound):
    """What a decommission removed; false or 0 where there was nothing left to remove."""

    application: bool = Field(
        description="The application was deleted (Entra keeps it restorable for 30 days)."
    )
    service_principal: bool = Field(description="The service principal was deleted.")
    key_vault_secret_versions_disabled: NonNegativeInt = Field(
        description="Versions of the application's Key Vault secret, all of which are now disabled "
        "(a redelivered decommission reports the same number)."
    )


class RegistrationReply(_Outbound):
    """The answer to one request, sent to the results queue."""

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: str | None = Field(
        description="The request's requestId; null when the body had none readable."
    )
    status: Literal["succeeded", "rejected", "failed"] = Field(
        description="`rejected`: the request can never succeed as sent (see errors). `failed`: it could not "
        "be completed now; sending it again may succeed."
    )
    application: ReplyApplication | None = None
    credential: ReplyCredential | None = None
    consent: list[ConsentResult] = Field(default_factory=list)
    removed: RemovedResources | None = Field(default=None, description="Decommission only.")
    errors: list[FieldError] = Field(default_factory=list)

    @classmethod
    def rejected(cls, rejection: RequestRejected) -> RegistrationReply:
        return cls(request_id=rejection.request_id, status="rejected", errors=rejection.errors)


# ---------------------------------------------------------------- parsing


def parse_request(body: bytes) -> RegistrationRequest:
    """The typed request in a message body; raises `RequestRejected` (and nothing else) for any bad body."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected([_body_error("too_large", f"The body must be at most {MAX_BODY_BYTES} bytes.")])
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestRejected([_body_error("not_utf8", "The body must be UTF-8 encoded JSON.")]) from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise RequestRejected([_body_error("too_deep", "The body is nested too deeply.")]) from None
    except ValueError:
        raise RequestRejected([_body_error("invalid_json", "The body is not valid JSON.")]) from None
    if not isinstance(document, dict):
        raise RequestRejected([_body_error("not_object", "The body must be a JSON object.")])
    request_id = _readable_request_id(document)
    if _nesting(document) > MAX_NESTING:
        raise RequestRejected([_body_error("too_deep", "The body is nested too deeply.")], request_id)
    try:
        return _REQUEST_ADAPTER.validate_json(text)
    except ValidationError as error:
        raise RequestRejected(_field_errors(error.errors()), request_id) from None


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are Python's extension, not JSON.
    raise ValueError(name)


def _body_error(code: str, message: str) -> FieldError:
    return FieldError(field="body", code=code, message=message)


def _readable_request_id(document: dict[str, Any]) -> str | None:
    value = document.get("requestId")
    if isinstance(value, str) and len(value) <= 100 and re.fullmatch(REQUEST_ID_PATTERN, value):
        return value
    return None


def _nesting(document: object) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend(
                    (child, depth + 1) for child in (value.values() if isinstance(value, dict) else value)
                )
    return deepest


# pydantic's own messages sometimes quote the input, so each error type gets ours.
# Placeholders name only constraint values from the models, never input.
_PYDANTIC_ERRORS: dict[str, tuple[str, str]] = {
    "missing": ("missing", "This field is required."),
    "union_tag_not_found": ("missing", "This field is required."),
    "extra_forbidden": ("unexpected_field", "This field is not part of the contract."),
    "string_type": ("invalid_type", "Must be a string."),
    "bool_type": ("invalid_type", "Must be true or false."),
    "int_type": ("invalid_type", "Must be an integer."),
    "list_type": ("invalid_type", "Must be an array."),
    "dict_type": ("invalid_type", "Must be an object."),
    "model_type": ("invalid_type", "Must be an object."),
    "model_attributes_type": ("invalid_type", "Must be an object."),
    "string_too_short": ("too_short", "Must be at least {min_length} characters long."),
    "string_too_long": ("too_long", "Must be at most {max_length} characters long."),
    "too_short": ("too_short", "Must have at least {min_length} entries."),
    "too_long": ("too_long", "Must have at most {max_length} entries."),
    "string_pattern_mismatch": ("invalid_format", "Must match the pattern {pattern}."),
    "literal_error": ("invalid_value", "Must be {expected}."),
    "union_tag_invalid": ("invalid_value", "Must be one of {expected_tags}."),
    "datetime_type": ("invalid_datetime", "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z."),
    "datetime_parsing": ("invalid_datetime", "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z."),
    "datetime_from_date_parsing": (
        "invalid_datetime",
        "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z.",
    ),
    "timezone_aware": ("invalid_datetime", "Must include a time zone, e.g. 2026-01-31T00:00:00Z."),
    "json_invalid": ("invalid_json", "The body is not valid JSON."),
}
_SAFE_CONTEXT = ("min_length", "max_length", "pattern", "expected", "expected_tags")
_SAFE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _field_errors(details: Iterable[ErrorDetails]) -> list[FieldError]:
    errors: list[FieldError] = []
    for detail in details:
        if len(errors) == MAX_REPORTED_ERRORS:
            errors.append(
                _body_error("too_many_errors", f"Only the first {MAX_REPORTED_ERRORS} problems are reported.")
            )
            break
        errors.append(_field_error(detail))
    return errors


def _field_error(detail: ErrorDetails) -> FieldError:
    context = detail.get("ctx") or {}
    loc: list[str | int] = list(detail["loc"])
    # Discriminated unions put the tag in the path: ("register", "credential", "secret", ...).
    if loc and loc[0] in _ACTIONS:
        loc.pop(0)
    if len(loc) >= 2 and loc[0] == "credential" and loc[1] in _CREDENTIAL_TYPES:
        del loc[1]
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(str(context.get("discriminator", "")).strip("'"))
    if "at" in context:
        loc.extend(context["at"])
        code, message = detail["type"], detail["msg"]
    else:
        code, template = _PYDANTIC_ERRORS.get(detail["type"], ("invalid_value", "The value is not valid."))
        try:
            message = template.format(**{key: context[key] for key in _SAFE_CONTEXT if key in context})
        except KeyError:
            message = "The value is not valid."
    return FieldError(field=_path(loc), code=code, message=message)


def _path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            # Unknown keys come from the input: name them only when they look like names.
            name = part if _SAFE_KEY.fullmatch(part) else "<?>"
            path += f".{name}" if path else name
    return path or "body"


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class RequestedSecret:
    """The secret a register request asks for, in absolute time."""

    description: str
    start: datetime
    end: datetime


def requested_secret(request: RegisterRequest, settings: Settings, now: datetime) -> RequestedSecret | None:
    """The secret to issue now for `request`, or None when it asks for none (defaults applied)."""
    credential = request.credential
    if isinstance(credential, NoCredential):
        return None
    if credential is None:
        if request.application.client_type == "public":
            return None
        return RequestedSecret(DEFAULT_SECRET_DESCRIPTION, now, settings.default_secret_lifetime.add_to(now))
    if credential.lifetime is not None:
        return RequestedSecret(credential.description, now, parse_duration(credential.lifetime).add_to(now))
    assert credential.start_date_time is not None and credential.end_date_time is not None  # by validation
    return RequestedSecret(credential.description, credential.start_date_time, credential.end_date_time)


def resolve_api(api: str, settings: Settings) -> str | None:
    """The resource appId or identifier URI for a request's `api`; None for an unknown catalog name."""
    if re.fullmatch(GUID_PATTERN, api):
        return api.lower()
    if re.fullmatch(CATALOG_NAME_PATTERN, api):
        return settings.api_catalog.get(api)
    return api


def is_microsoft_graph(resource: str) -> bool:
    """Whether a resolved appId or identifier URI names Microsoft Graph (in any national cloud)."""
    lowered = resource.lower()
    if lowered in (MICROSOFT_GRAPH_APP_ID, f"api://{MICROSOFT_GRAPH_APP_ID}"):
        return True
    match = re.fullmatch(r"https://([^/:]+)(?::443)?(?:/.*)?", lowered)
    return match is not None and match[1] in _GRAPH_HOSTS


def graph_permission_allowed(name: str, settings: Settings) -> bool:
    """Whether a Microsoft Graph scope or app role is on the allow-list (Entra compares names case-insensitively)."""
    folded = name.casefold()
    return any(folded == allowed.casefold() for allowed in settings.graph_permission_allowlist)


def check_policy(
    request: RegistrationRequest, settings: Settings, now: datetime | None = None
) -> list[FieldError]:
    """The problems that depend on the service's settings; empty when the request may go ahead.

    Microsoft Graph is recognised by catalog name, appId or identifier URI here; a
    workflow that resolves other references to service principals should refuse
    non-allow-listed permissions on any that turns out to be Graph.
    """
    if not isinstance(request, RegisterRequest):
        return []
    now = now or datetime.now(UTC)
    errors: list[FieldError] = []
    resources: set[str] = set()
    for i, permission in enumerate(request.api_permissions):
        resource = resolve_api(permission.api, settings)
        if resource is None:
            names = ", ".join(sorted(settings.api_catalog))
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
        if is_microsoft_graph(resource):
            for kind, names_ in (
                ("delegated", permission.delegated),
                ("application", permission.application),
            ):
                errors.extend(
                    FieldError(
                        field=f"apiPermissions[{i}].{kind}[{j}]",
                        code="permission_not_allowed",
                        message="This Microsoft Graph permission is not on the service's allow-list.",
                    )
                    for j, name in enumerate(names_)
                    if not graph_permission_allowed(name, settings)
                )
    errors.extend(_credential_policy(request, settings, now))
    return errors


def _credential_policy(request: RegisterRequest, settings: Settings, now: datetime) -> list[FieldError]:
    credential = request.credential
    if not isinstance(credential, SecretCredential):
        return []
    maximum = settings.max_secret_lifetime
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


# ---------------------------------------------------------------- JSON Schemas

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIRECTORY = Path(__file__).resolve().parent.parent / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of every message the service reads or writes, by file name."""
    request = _REQUEST_ADAPTER.json_schema(by_alias=True, mode="validation")
    reply = RegistrationReply.model_json_schema(by_alias=True, mode="serialization")
    return {
        "registration-request.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            "title": "RegistrationRequest",
            "description": "A Service Bus message asking the service to register, rotate or decommission "
            "a Microsoft Entra client application. Discriminated on `action`.",
            **request,
        },
        "registration-reply.schema.json": {"$schema": _SCHEMA_DIALECT, **reply},
        **_rotation_schemas(),
    }


def _rotation_schemas() -> dict[str, dict[str, Any]]:
    """The rotation queue's message and the events queue's event (models in shared.rotation,
    which builds on this module, hence the late import)."""
    from shared.rotation import RotationEvent, RotationMessage

    return {
        "rotation-message.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            **RotationMessage.model_json_schema(by_alias=True, mode="serialization"),
        },
        "credential-event.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            **RotationEvent.model_json_schema(by_alias=True, mode="serialization"),
        },
    }


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIRECTORY) -> list[Path]:
    """Write the JSON Schemas to `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(render_schema(schema), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_schemas():
        sys.stdout.write(f"{written}\n")
