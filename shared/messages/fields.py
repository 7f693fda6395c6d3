"""The contract's field types and formats: request ids, names, free text, permission names,
redirect URIs and API references, each with the rule it enforces in words.

Error messages describe the rule that was broken and never repeat the offending value: it may
be huge, hostile, or a secret pasted into the wrong field. Settings reuse the same formats
(catalog names, resource references), so each pattern is written here once.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from shared.messages.base import rule
from shared.messages.redirect_uris import public_client_redirect_uri, web_redirect_uri

SCHEMA_VERSION: Literal[1] = 1

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
UNIQUE_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
PERMISSION_NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
CATALOG_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
GUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
# A resource's identifier URI as Entra stores it; no quote (it goes into OData filter
# literals), whitespace, fragment or query.
IDENTIFIER_URI_PATTERN = "^(?:https|api)://[^\\s\"'#?\\x00-\\x1f\\x7f-\\x9f]+$"
IDENTIFIER_URI_MAX_LENGTH = 256
MAX_REDIRECT_URIS = 256
MAX_PERMISSIONS_PER_KIND = 100


def is_resource_reference(value: str) -> bool:
    """A resource appId (GUID) or identifier URI, the two forms a catalog entry or request may use."""
    if re.fullmatch(GUID_PATTERN, value):
        return True
    return len(value) <= IDENTIFIER_URI_MAX_LENGTH and re.fullmatch(IDENTIFIER_URI_PATTERN, value) is not None


def _is_control(char: str) -> bool:
    # Control, format (invisible and bidirectional marks), surrogate and line/paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def no_control_characters(value: str) -> str:
    if any(_is_control(char) for char in value):
        raise rule("invalid_character", "Must not contain control or invisible formatting characters.")
    return value


def _notes_text(value: str) -> str:
    if any(_is_control(char) and char not in "\t\n\r" for char in value):
        raise rule("invalid_character", "Must not contain control characters other than tab and line breaks.")
    return value


def _exactly_one(value: object) -> object:
    # JSON `true` and `1.0` equal 1 in Python; the contract's version is the integer 1.
    if type(value) is not int:
        raise rule("invalid_value", f"Must be {SCHEMA_VERSION}.")
    return value


def unique_entries(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise rule("duplicate", "Must not repeat an earlier entry.", index)
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
    StringConstraints(min_length=1, max_length=240),
    AfterValidator(no_control_characters),
    Field(
        description="Who asked for the change, usually an email address or UPN: recorded on the application, "
        "in Key Vault, in the logs and in the reply; not checked (the ticketing system authenticates it)."
    ),
]
ServiceManagementReference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(no_control_characters),
    Field(
        description="The service or CMDB record the application belongs to (Graph's "
        "`serviceManagementReference`), filled by the ticketing system from the CMDB item the requester is "
        "authorised for. It owns the application: a later register, rotate or decommission must name the same."
    ),
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
    AfterValidator(no_control_characters),
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
    AfterValidator(unique_entries),
]


# ---------------------------------------------------------------- redirect URIs (shared.messages.redirect_uris)

_URI_LENGTH = StringConstraints(min_length=1, max_length=256)
WebRedirectUri = Annotated[str, _URI_LENGTH, AfterValidator(web_redirect_uri)]
PublicClientRedirectUri = Annotated[str, _URI_LENGTH, AfterValidator(public_client_redirect_uri)]


# ---------------------------------------------------------------- API references


def _api_reference(value: str) -> str:
    if re.fullmatch(GUID_PATTERN, value) or re.fullmatch(CATALOG_NAME_PATTERN, value):
        return value
    if len(value) <= IDENTIFIER_URI_MAX_LENGTH and re.fullmatch(IDENTIFIER_URI_PATTERN, value):
        return value
    raise rule(
        "invalid_api",
        "Must be a catalog name (lower-case letters, digits and '-'), a resource appId (GUID), or an "
        "identifier URI (https:// or api://) without quotes, whitespace, '#' or '?'.",
    )


ApiReference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=IDENTIFIER_URI_MAX_LENGTH),
    AfterValidator(no_control_characters),  # the URI pattern lets invisible formatting characters through
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
