"""The requests a ticketing system sends: ``register``, ``decommission`` and ``rotate``,
discriminated on ``action``. Validation here is what needs no settings; the service's policy
(shared.domain.policy) adds the rest."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from shared.messages.base import Inbound, rule
from shared.messages.fields import (
    CATALOG_NAME_PATTERN,
    MAX_REDIRECT_URIS,
    UNIQUE_NAME_PATTERN,
    ApiReference,
    DisplayName,
    Notes,
    PermissionNames,
    PublicClientRedirectUri,
    RequestedBy,
    RequestId,
    SchemaVersion,
    ServiceManagementReference,
    UniqueName,
    WebRedirectUri,
    no_control_characters,
    unique_entries,
)

DEFAULT_SECRET_DESCRIPTION = "managed by entra-app-registration-service"
MAX_API_PERMISSIONS = 20
MAX_DATA_ACCESS = 10
MAX_DATA_ROLES = 9
ACTIONS = ("register", "decommission", "rotate")
CREDENTIAL_TYPES = ("secret", "certificate", "none")
# An X.500 subject the service asks Key Vault for: a CN, then optional O, OU, L, ST, C parts.
CERTIFICATE_SUBJECT_PATTERN = r"^CN=[A-Za-z0-9][A-Za-z0-9 .\-_]{0,63}(, ?(O|OU|L|ST)=[A-Za-z0-9][A-Za-z0-9 .\-_&]{0,63}| ?, ?C=[A-Z]{2})*$"
# Graph's federated identity credential limits (learn.microsoft.com/graph/api/resources/
# federatedidentitycredential; entra/workload-id/workload-identity-federation-considerations):
# at most 20 per application; name 3-120 letters, digits, '-' and '_', starting alphanumeric;
# issuer, subject and description at most 600 characters; no wildcards.
MAX_FEDERATED_CREDENTIALS = 20
FEDERATED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$"
FEDERATED_TEXT_LIMIT = 600
# The service marks its credentials in their description (shared.domain.stored): room for the mark.
MAX_FEDERATED_DESCRIPTION = 580


class RedirectUris(Inbound):
    """Where Entra may send tokens, by platform. Which lists may be used depends on `clientType`."""

    web: Annotated[
        list[WebRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(unique_entries)
    ] = Field(
        default_factory=list,
        description="Web platform (confidential clients): https:// to a fully qualified host name, or "
        "http://localhost for development (see shared/messages/redirect_uris.py for every rule).",
    )
    public_client: Annotated[
        list[PublicClientRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(unique_entries)
    ] = Field(
        default_factory=list,
        description="Mobile and desktop platform (public clients): https://, http://localhost, "
        "msal{clientId}://auth, msauth.{bundleId}://auth, msauth://{package}/{signature}, or a private-use "
        "scheme named by a reversed domain such as com.contoso.app:/auth.",
    )
    spa: Annotated[
        list[WebRedirectUri], Field(max_length=MAX_REDIRECT_URIS), AfterValidator(unique_entries)
    ] = Field(
        default_factory=list,
        description="Single-page application platform (public clients): https:// to a fully qualified host "
        "name, or http://localhost.",
    )

    @model_validator(mode="after")
    def _total(self) -> RedirectUris:
        if len(self.web) + len(self.public_client) + len(self.spa) > MAX_REDIRECT_URIS:
            raise rule("too_long", f"Must have at most {MAX_REDIRECT_URIS} redirect URIs in total.")
        return self


class RegisterApplication(Inbound):
    """The application to create or update."""

    unique_name: UniqueName | None = Field(
        default=None,
        description="Optional when requestId is itself a valid uniqueName, which is then used as is; "
        "required otherwise (no two request ids may map to one application).",
    )
    service_management_reference: ServiceManagementReference
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
                raise rule(
                    "not_allowed_for_client_type",
                    f"A {self.client_type} client must not have {name} redirect URIs.",
                    "redirectUris",
                    name,
                )
        return self


class ApplicationRef(Inbound):
    """An application the service registered earlier, by its uniqueName, and its owner reference."""

    unique_name: UniqueName
    service_management_reference: ServiceManagementReference


def _unique_apis(permissions: list[ApiPermission]) -> list[ApiPermission]:
    seen: set[str] = set()
    for index, permission in enumerate(permissions):
        key = permission.api.casefold()
        if key in seen:
            raise rule("duplicate", "Each API must appear in one entry only.", index, "api")
        seen.add(key)
    return permissions


class ApiPermission(Inbound):
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
            raise rule("missing", "Name at least one delegated or application permission.")
        return self


def _unique_services(entries: list[DataAccess]) -> list[DataAccess]:
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.service in seen:
            raise rule("duplicate", "Each service must appear in one entry only.", index, "service")
        seen.add(entry.service)
    return entries


def _unique_roles(roles: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, role in enumerate(roles):
        if role.casefold() in seen:
            raise rule("duplicate", "Each role must appear once.", index)
        seen.add(role.casefold())
    return roles


DataRoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z ]*[A-Za-z]$")
]


class DataAccess(Inbound):
    """Azure RBAC data roles on one FHIR or DICOM service of the service's catalog."""

    service: Annotated[str, StringConstraints(pattern=CATALOG_NAME_PATTERN)] = Field(
        description="The service's name in the catalog (HEALTH_DATA_SERVICES), e.g. fhir."
    )
    roles: Annotated[
        list[DataRoleName], Field(min_length=1, max_length=MAX_DATA_ROLES), AfterValidator(_unique_roles)
    ] = Field(
        description="Built-in data roles, e.g. FHIR Data Reader, FHIR Data Writer, DICOM Data Reader. "
        "Converge removes the roles the service assigned earlier that this list no longer names."
    )


class SecretCredential(Inbound):
    """A client secret: either a portal lifetime, or explicit start and end times."""

    type: Literal["secret"]
    description: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100),
        AfterValidator(no_control_characters),
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
                raise rule(
                    "conflict",
                    "Give either lifetime, or startDateTime and endDateTime, not both.",
                    "startDateTime" if start is not None else "endDateTime",
                )
        elif start is None and end is None:
            raise rule("missing", "Give either lifetime, or startDateTime and endDateTime.", "lifetime")
        elif start is None or end is None:
            missing = "startDateTime" if start is None else "endDateTime"
            raise rule("missing", "startDateTime and endDateTime go together.", missing)
        elif end <= start:
            raise rule("end_before_start", "Must be later than startDateTime.", "endDateTime")
        return self


class CertificateCredential(Inbound):
    """A certificate made by Key Vault, whose private key stays there: the public part goes on
    the application, and clients sign their assertions in the vault (or, when exportable,
    download the PFX from the certificate's secret)."""

    type: Literal["certificate"]
    subject: Annotated[str, StringConstraints(max_length=200, pattern=CERTIFICATE_SUBJECT_PATTERN)] | None = (
        Field(default=None, description="The certificate's subject; default CN={uniqueName}.")
    )
    lifetime: Literal["P1M", "P3M", "P6M", "P12M", "P24M"] = Field(
        description="Validity from issue, in calendar months (Key Vault's validity_in_months)."
    )
    exportable: StrictBool = Field(
        default=False,
        description="false (the default): the private key never leaves Key Vault; clients sign in the vault. "
        "true: Key Vault lets the certificate's secret (a PFX with the private key) be downloaded.",
    )


class NoCredential(Inbound):
    """No credential: for public clients, or an app that will get one another way."""

    type: Literal["none"]


Credential = Annotated[SecretCredential | CertificateCredential | NoCredential, Field(discriminator="type")]


def _issuer(value: str) -> str:
    # OpenID Connect Discovery 1.0, section 3: an issuer is an https URL without query or fragment;
    # Entra blocks the exchange when the token's issuer has surrounding whitespace.
    parts = urlsplit(value)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in value
        or "#" in value
        or any(c.isspace() for c in value)
    ):
        raise rule("invalid_issuer", "Must be an https:// URL without query, fragment or whitespace.")
    return value


def _no_wildcards(value: str) -> str:
    if "*" in value:
        raise rule("wildcard", "Wildcards are not supported: give the exact value the token carries.")
    return value


def _trimmed(value: str) -> str:
    if value != value.strip():
        raise rule("invalid_format", "Must not start or end with whitespace.")
    return value


def _unique_federated(entries: list[FederatedCredential]) -> list[FederatedCredential]:
    # Graph's alternate key `name` is case-insensitive; issuer+subject must be unique on the app.
    names: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        if entry.name.casefold() in names:
            raise rule("duplicate", "Each name must appear once (names are case-insensitive).", index, "name")
        if (entry.issuer, entry.subject) in pairs:
            raise rule("duplicate", "Each issuer and subject pair must appear once.", index, "subject")
        names.add(entry.name.casefold())
        pairs.add((entry.issuer, entry.subject))
    return entries


FederatedDescription = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_FEDERATED_DESCRIPTION),
    AfterValidator(no_control_characters),
]


class FederatedCredential(Inbound):
    """A federated identity credential: tokens from ``issuer`` about ``subject`` may be exchanged
    for the application's tokens (workload identity federation), with the audience
    api://AzureADTokenExchange."""

    name: Annotated[str, StringConstraints(pattern=FEDERATED_NAME_PATTERN)] = Field(
        description="The credential's key on the application: 3-120 letters, digits, '-' and '_', starting "
        "with a letter or digit; unique case-insensitively, and immutable in Graph."
    )
    issuer: Annotated[
        str,
        StringConstraints(min_length=1, max_length=FEDERATED_TEXT_LIMIT),
        AfterValidator(_issuer),
        AfterValidator(_no_wildcards),
    ] = Field(
        description="The external identity provider's issuer URL (https), exactly as its tokens' `iss` claim; "
        "it must be on the service's allow-list (FEDERATED_ISSUERS)."
    )
    subject: Annotated[
        str,
        StringConstraints(min_length=1, max_length=FEDERATED_TEXT_LIMIT),
        AfterValidator(no_control_characters),
        AfterValidator(_trimmed),
        AfterValidator(_no_wildcards),
    ] = Field(
        description="The external workload, exactly as its tokens' `sub` claim, e.g. "
        "repo:contoso/app:environment:prod for GitHub Actions; no wildcards."
    )
    description: FederatedDescription | None = Field(
        default=None, description="Free text stored on the credential."
    )


class _RequestBase(Inbound):
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
    data_access: Annotated[
        list[DataAccess], Field(max_length=MAX_DATA_ACCESS), AfterValidator(_unique_services)
    ] = Field(
        default_factory=list,
        description="Azure RBAC data roles on FHIR and DICOM services, assigned to the application's "
        "service principal. Service and confidential clients only.",
    )
    federated_credentials: Annotated[
        list[FederatedCredential],
        Field(max_length=MAX_FEDERATED_CREDENTIALS),
        AfterValidator(_unique_federated),
    ] = Field(
        default_factory=list,
        description="Federated identity credentials, converged by name: the ones the service made earlier "
        "that this list no longer names are removed; ones made by hand are left alone. Service and "
        "confidential clients only.",
    )
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
        """The application's key: `application.uniqueName`, or `requestId` when that is a valid one."""
        return self.application.unique_name or self.request_id

    @model_validator(mode="after")
    def _consistent(self) -> RegisterRequest:
        # Only an identity mapping cannot collide: `X.1` and `x-1` would both become `x-1`.
        if not re.fullmatch(UNIQUE_NAME_PATTERN, self.unique_name):
            raise rule(
                "missing",
                "Required: requestId is not itself a valid uniqueName (1-64 lower-case letters, digits and "
                "'-'), and deriving one could give two requests the same application.",
                "application",
                "uniqueName",
            )
        if self.application.client_type == "public" and self.data_access:
            raise rule(
                "not_allowed_for_client_type",
                "A public client acts as its signed-in users; give the users data roles, not the client.",
                "dataAccess",
            )
        if self.application.client_type == "public" and self.federated_credentials:
            raise rule(
                "not_allowed_for_client_type",
                "A public client cannot hold federated credentials: it acts as its signed-in users.",
                "federatedCredentials",
            )
        if self.application.client_type == "public" and isinstance(
            self.credential, SecretCredential | CertificateCredential
        ):
            raise rule(
                "not_allowed_for_client_type",
                f"A public client cannot hold a {self.credential.type}.",
                "credential",
                "type",
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
REQUEST_ADAPTER: TypeAdapter[RegisterRequest | DecommissionRequest | RotateRequest] = TypeAdapter(
    RegistrationRequest
)
