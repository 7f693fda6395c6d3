"""The service's settings: one typed object, read from the environment once.

In Azure the environment is the function app's application settings; locally it is
`local.settings.json`'s `Values`. Each attribute is the lower-case spelling of its
environment variable (`KEY_VAULT_URL` -> `settings.key_vault_url`). Empty variables
count as unset, so a blank `PLATFORM_CA_FILE` means "trust the system CAs".

The queue names are also read by the Functions host itself through `%NAME%` binding
expressions, which have no defaults: a trigger's queue must be set as an app setting.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.domain.data_access import DATA_ROLES, DataAccessPolicy, HealthDataService, health_data_service
from shared.domain.durations import Duration, parse_duration
from shared.domain.planner import Policy as RotationPolicy
from shared.domain.policy import DEFAULT_API_POLICY, ApiEntry, RequestPolicy
from shared.messages.fields import CATALOG_NAME_PATTERN, GUID_PATTERN, is_resource_reference

__all__ = ["Settings", "get_settings"]

# Key Vault keeps old versions readable by consumers that cache them for up to 24 h.
MINIMUM_GRACE_PERIOD = timedelta(hours=24)

_TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_NCRONTAB_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+")
_PERMISSION_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])")
_TAG = re.compile(r"[^\s\"'\x00-\x1f\x7f]{1,256}")
_ISSUER = re.compile(r"https://[^\s?#*/]+(?:/[^\s?#*]*)?")


def _duration(default: str, env: str, description: str) -> Any:
    return Field(default=parse_duration(default), alias=env, description=description)


class Settings(BaseSettings):
    """Every setting the service reads, validated when the process first needs them."""

    # hide_input_in_errors: a validation error must not print AZURE_CLIENT_SECRET.
    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", env_ignore_empty=True, frozen=True, hide_input_in_errors=True
    )

    azure_tenant_id: str = Field(alias="AZURE_TENANT_ID", description="The Entra tenant id (GUID or domain).")
    azure_client_id: str | None = Field(
        default=None,
        alias="AZURE_CLIENT_ID",
        description="Client id of the service identity: a user-assigned managed identity in Azure, "
        "or the app used locally and with the emulator.",
    )
    azure_client_secret: SecretStr | None = Field(
        default=None,
        alias="AZURE_CLIENT_SECRET",
        description="Only for local runs and the emulator; in Azure a managed identity is used.",
    )
    azure_authority_host: str = Field(
        default="https://login.microsoftonline.com", alias="AZURE_AUTHORITY_HOST"
    )
    graph_base_url: str = Field(default="https://graph.microsoft.com/v1.0", alias="GRAPH_BASE_URL")
    key_vault_url: str = Field(alias="KEY_VAULT_URL", description="e.g. https://myvault.vault.azure.net/")
    platform_ca_file: Path | None = Field(
        default=None,
        alias="PLATFORM_CA_FILE",
        description="PEM CA bundle trusted for Graph, the token endpoint and Key Vault (the emulator's CA); "
        "unset means the system default.",
    )

    resource_manager_url: str = Field(
        default="https://management.azure.com",
        alias="RESOURCE_MANAGER_URL",
        description="Azure Resource Manager, where role assignments are made (another cloud's, or the emulator).",
    )
    resource_manager_audience: str = Field(
        default="https://management.azure.com",
        alias="RESOURCE_MANAGER_AUDIENCE",
        description="The token audience of Resource Manager in this cloud (scope {audience}/.default).",
    )
    health_data_services: Annotated[Mapping[str, HealthDataService], NoDecode] = Field(
        default_factory=dict,
        alias="HEALTH_DATA_SERVICES",
        description='JSON object: catalog name -> {"resourceId", "url"} of a Health Data Services FHIR or '
        "DICOM service; the services a ticket may ask data access to (dataAccess).",
    )
    data_roles: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(DATA_ROLES),
        alias="DATA_ROLES",
        description="Comma-separated FHIR and DICOM data roles a ticket may ask for; default all of them. "
        "No other role can be named.",
    )

    storage_blob_url: str | None = Field(
        default=None,
        alias="AzureWebJobsStorage__blobServiceUri",
        description="Blob endpoint of the function app's own storage account (identity-based "
        "AzureWebJobsStorage), e.g. https://myaccount.blob.core.windows.net; where the per-application "
        "leases live. Unset: derived from AzureWebJobsStorage__accountName.",
    )
    storage_account_name: str | None = Field(default=None, alias="AzureWebJobsStorage__accountName")
    lease_container: str = Field(
        default="app-registration-leases",
        alias="LEASE_CONTAINER",
        description="Blob container holding one lease blob per application.",
    )
    lease_wait: Duration = _duration(
        "PT30S",
        "LEASE_WAIT",
        "How long a delivery waits for another one's lease on its application before it is redelivered.",
    )
    warm_up: bool = Field(
        default=True,
        alias="WARM_UP",
        description="On a new instance's first valid request, acquire the Resource Manager token, take Key "
        "Vault's challenge and open the reply link beside the request's own first calls, instead of one after "
        "another inside it.",
    )

    service_bus_connection: SecretStr | None = Field(
        default=None,
        alias="ServiceBusConnection",
        description="A Service Bus connection string: only for local runs and the emulator "
        "(UseDevelopmentEmulator=true); in Azure the namespace and the managed identity are used.",
    )
    service_bus_namespace: str | None = Field(
        default=None,
        alias="ServiceBusConnection__fullyQualifiedNamespace",
        description="The namespace the host's triggers read from and the service sends to, e.g. "
        "mynamespace.servicebus.windows.net (identity-based connection).",
    )

    registration_queue: str = Field(default="app-registration-requests", alias="REGISTRATION_QUEUE")
    results_queue: str = Field(default="app-registration-results", alias="RESULTS_QUEUE")
    rotation_queue: str = Field(default="app-credential-rotation", alias="ROTATION_QUEUE")
    events_queue: str = Field(default="app-credential-events", alias="EVENTS_QUEUE")
    max_delivery_count: int = Field(
        default=10,
        ge=1,
        alias="MAX_DELIVERY_COUNT",
        description="Must equal the queue's maxDeliveryCount: on that delivery a transient failure "
        "replies `failed` instead of raising.",
    )

    max_secret_lifetime: Duration = _duration(
        "P24M", "MAX_SECRET_LIFETIME", "Longest secret a request may ask for."
    )
    default_secret_lifetime: Duration = _duration(
        "P6M", "DEFAULT_SECRET_LIFETIME", "Lifetime of a secret when the request names none."
    )
    api_policy: Annotated[Mapping[str, ApiEntry], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_API_POLICY),
        alias="API_POLICY",
        description="JSON object: catalog name -> {resource, delegated, application}, merged over the default "
        "policy by name (null removes an entry). Nothing outside it may be requested.",
    )
    redirect_uri_domains: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        alias="REDIRECT_URI_DOMAINS",
        description="Comma-separated domains https redirect URIs must be on (subdomains included); "
        "empty: any host that passes the contract's rules.",
    )
    federated_issuers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        alias="FEDERATED_ISSUERS",
        description="The issuers (https URLs, exactly as their tokens' `iss`) a ticket's federated "
        "credentials may trust: a JSON array or comma-separated; empty: none.",
    )

    rotation_schedule: str = Field(default="0 0 3 * * *", alias="ROTATION_SCHEDULE")
    rotation_window: Duration = _duration(
        "P30D", "ROTATION_WINDOW", "A secret expiring within this window is rotated."
    )
    rotation_grace_period: Duration = _duration(
        "PT48H", "ROTATION_GRACE_PERIOD", "How long the old secret stays valid after rotation (>= 24 h)."
    )
    rotation_safety_age: Duration = _duration(
        "PT1H", "ROTATION_SAFETY_AGE", "Credentials younger than this are never removed as unstored."
    )
    rotation_dry_run: bool = Field(default=False, alias="ROTATION_DRY_RUN")
    vault_audit_days: int = Field(
        default=7,
        ge=1,
        alias="VAULT_AUDIT_DAYS",
        description="Every this many days (a UTC day whose ordinal is a multiple of it) the rotation sweep "
        "lists the whole vault and checks every application's current secret; on other days it reads only "
        "the secrets Graph gives it reason to. 1: every day.",
    )
    certificate_issuer: str = Field(
        default="Self",
        alias="CERTIFICATE_ISSUER",
        pattern=r"^[A-Za-z0-9-]{1,127}$",
        description="The Key Vault issuer of the certificates the service creates: Self (self-signed), or "
        "the name of a CA-integrated issuer configured in the vault (DigiCert, GlobalSign).",
    )
    service_tag: str = Field(
        default="managed-by:entra-app-registration-service",
        alias="SERVICE_TAG",
        description="The tag put on every application the service manages.",
    )

    @field_validator("azure_tenant_id")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not _TENANT.fullmatch(value):
            raise ValueError("must be a tenant id (GUID) or a domain name")
        return value

    @field_validator("lease_container")
    @classmethod
    def _container(cls, value: str) -> str:
        if not _CONTAINER.fullmatch(value) or "--" in value:
            raise ValueError("a container name is 3-63 lower-case letters, digits and single hyphens")
        return value

    @property
    def blob_service_url(self) -> str:
        """The blob endpoint the leases use (the Functions host needs the account anyway)."""
        if self.storage_blob_url is not None:
            return self.storage_blob_url
        if self.storage_account_name is None:
            raise ValueError(
                "set AzureWebJobsStorage__blobServiceUri or AzureWebJobsStorage__accountName: "
                "the per-application leases live in the function app's storage account"
            )
        return f"https://{self.storage_account_name}.blob.core.windows.net"

    @field_validator(
        "azure_authority_host",
        "graph_base_url",
        "key_vault_url",
        "storage_blob_url",
        "resource_manager_url",
        "resource_manager_audience",
    )
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        # Plain http only on loopback, as the Azure SDKs allow it (the emulator).
        if value is None:
            return None
        lowered = value.lower()
        loopback = any(lowered.startswith(f"http://{host}") for host in _LOOPBACK_HOSTS)
        if not (lowered.startswith("https://") or loopback) or any(c.isspace() for c in value):
            raise ValueError("must be an https:// URL (http:// only for localhost)")
        return value

    @field_validator(
        "azure_authority_host", "graph_base_url", "resource_manager_url", "resource_manager_audience"
    )
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("registration_queue", "results_queue", "rotation_queue", "events_queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,259}", value):
            raise ValueError("must be a Service Bus queue name")
        return value

    @field_validator("api_policy", mode="before")
    @classmethod
    def _api_policy(cls, value: object) -> Mapping[str, ApiEntry]:
        policy = dict(DEFAULT_API_POLICY)
        for name, entry in _catalog(value, "{resource, delegated, application}").items():
            if entry is None:
                policy.pop(name, None)
            elif isinstance(entry, ApiEntry):
                policy[name] = entry
            else:
                policy[name] = _api_entry(name, entry)
        return policy

    @field_validator("health_data_services", mode="before")
    @classmethod
    def _health_data_services(cls, value: object) -> Mapping[str, HealthDataService]:
        shape = '{"resourceId", "url"}'
        catalog: dict[str, HealthDataService] = {}
        for name, entry in _catalog(value, shape).items():
            if isinstance(entry, HealthDataService):
                catalog[name] = entry
                continue
            if not isinstance(entry, Mapping) or set(entry) != {"resourceId", "url"}:
                raise ValueError(f"entry {name!r} must be {shape}")
            resource_id, url = entry["resourceId"], entry["url"]
            if not isinstance(resource_id, str) or not isinstance(url, str):
                raise ValueError(f"entry {name!r}: resourceId and url are strings")
            catalog[name] = health_data_service(name, resource_id, url)
        return catalog

    @field_validator("data_roles", mode="before")
    @classmethod
    def _data_roles(cls, value: object) -> object:
        if isinstance(value, str):
            value = [r.strip() for r in value.split(",") if r.strip()]
        names = list(value) if isinstance(value, list | tuple | set | frozenset) else []
        unknown = [n for n in names if n not in DATA_ROLES]
        if unknown:
            raise ValueError(
                f"unknown data roles {unknown}; only these can be allowed: " + ", ".join(DATA_ROLES)
            )
        return frozenset(names)

    @field_validator("redirect_uri_domains", mode="before")
    @classmethod
    def _domains(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(d.strip().lower().strip(".") for d in value.split(",") if d.strip())
        for domain in value if isinstance(value, tuple | list) else ():
            if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
                raise ValueError("each domain must be a DNS name with at least two labels, e.g. contoso.com")
        return value

    @field_validator("federated_issuers", mode="before")
    @classmethod
    def _issuers(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("must be a JSON array of issuer URLs, or comma-separated URLs") from None
            else:
                value = [i.strip() for i in text.split(",") if i.strip()]
        issuers = list(value) if isinstance(value, list | tuple) else None
        if issuers is None or not all(isinstance(i, str) and _ISSUER.fullmatch(i) for i in issuers):
            raise ValueError("each issuer must be an https:// URL without whitespace, query or fragment")
        return tuple(issuers)

    @field_validator("rotation_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 6 or not all(_NCRONTAB_FIELD.fullmatch(field) for field in fields):
            raise ValueError("must be an NCRONTAB expression with six fields, e.g. '0 0 3 * * *'")
        return value

    @field_validator("service_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        # The tag goes into an OData filter literal: no quotes, no whitespace.
        if not _TAG.fullmatch(value):
            raise ValueError("must be 1-256 characters without whitespace or quotes")
        return value

    @field_validator("max_secret_lifetime", "default_secret_lifetime", "rotation_window")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if not value:
            raise ValueError("must be longer than zero")
        return value

    @field_validator("rotation_grace_period")
    @classmethod
    def _grace(cls, value: Duration) -> Duration:
        if value.total_lower_bound() < MINIMUM_GRACE_PERIOD:
            raise ValueError("must be at least 24 hours (PT24H): consumers may cache a secret that long")
        return value

    @property
    def service_bus_host(self) -> str | None:
        """The namespace's host name, from either Service Bus setting."""
        if self.service_bus_namespace:
            return self.service_bus_namespace
        if self.service_bus_connection is None:
            return None
        for part in self.service_bus_connection.get_secret_value().split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == "endpoint":
                return value.split("://", 1)[-1].strip("/")
        return None

    @property
    def own_queues(self) -> tuple[str, ...]:
        """The queues the service reads from or emits events to: never a reply's destination."""
        return (self.registration_queue, self.rotation_queue, self.events_queue)

    @property
    def request_policy(self) -> RequestPolicy:
        """What a request is checked against (shared.domain.policy)."""
        return RequestPolicy(
            apis=self.api_policy,
            redirect_uri_domains=self.redirect_uri_domains,
            max_secret_lifetime=self.max_secret_lifetime,
            default_secret_lifetime=self.default_secret_lifetime,
        )

    @property
    def data_access_policy(self) -> DataAccessPolicy:
        """What a request's dataAccess is checked against (shared.domain.data_access)."""
        return DataAccessPolicy(services=self.health_data_services, roles=self.data_roles)

    @property
    def rotation_policy(self) -> RotationPolicy:
        """The durations the rotation planner reads (shared.domain.planner)."""
        return RotationPolicy(
            window=self.rotation_window.total_lower_bound(),
            grace=self.rotation_grace_period.total_lower_bound(),
            safety_age=self.rotation_safety_age.total_lower_bound(),
        )

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Settings:
        if not self.default_secret_lifetime.never_exceeds(self.max_secret_lifetime):
            raise ValueError("DEFAULT_SECRET_LIFETIME must not exceed MAX_SECRET_LIFETIME")
        return self


def _catalog(value: object, shape: str) -> Mapping[str, object]:
    """A setting that maps catalog names to entries: a JSON object (or a mapping already), every
    name lower-case letters, digits and '-'; raises ``ValueError`` naming the entries' ``shape``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"must be a JSON object: catalog name -> {shape}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a JSON object: catalog name -> {shape}")
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(CATALOG_NAME_PATTERN, name):
            raise ValueError("catalog names are lower-case letters, digits and '-'")
    return value


def _api_entry(name: str, entry: object) -> ApiEntry:
    """One API_POLICY entry, validated: {"resource": appId or identifier URI, "delegated": [...],
    "application": [...]}."""
    shape = f"entry {name!r} must be {{resource, delegated, application}}"
    if not isinstance(entry, Mapping) or not set(entry) <= {"resource", "delegated", "application"}:
        raise ValueError(shape)
    resource = entry.get("resource")
    if not isinstance(resource, str) or not is_resource_reference(resource):
        raise ValueError(f"entry {name!r}: resource must be a GUID appId or an identifier URI")
    kinds: dict[str, frozenset[str]] = {}
    for kind in ("delegated", "application"):
        names = entry.get(kind, [])
        if not isinstance(names, list) or not all(
            isinstance(n, str) and _PERMISSION_NAME.fullmatch(n) for n in names
        ):
            raise ValueError(f"entry {name!r}: {kind} must be a list of permission names")
        kinds[kind] = frozenset(names)
    return ApiEntry(name, resource.lower() if re.fullmatch(GUID_PATTERN, resource) else resource, **kinds)


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read on first use (tests call `get_settings.cache_clear()`)."""
    return Settings()
