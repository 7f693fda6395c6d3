"""The reply to one request, sent back to the ticket. It names the application and the
credential's Key Vault id, never a secret value. ``rejected`` is the one way to build a
rejection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import AwareDatetime, Field, NonNegativeInt

from shared.messages.base import FieldError, Outbound
from shared.messages.fields import SCHEMA_VERSION


class ReplyApplication(Outbound):
    """The application as it now exists in Entra."""

    unique_name: str
    display_name: str | None = None
    client_id: str = Field(description="The appId, which clients use as client_id.")
    object_id: str = Field(description="The application object's id.")
    service_principal_id: str | None = Field(default=None, description="The service principal's object id.")
    tenant_id: str
    service_management_reference: str | None = Field(
        default=None, description="The application's owner reference (Graph's serviceManagementReference)."
    )


class ReplyCredential(Outbound):
    """The secret that was issued. Its value is only in Key Vault, never in a reply."""

    type: Literal["secret"] = "secret"
    key_id: str
    hint: str = Field(description="The first characters of the secret, as Entra shows them.")
    start_date_time: AwareDatetime
    end_date_time: AwareDatetime
    key_vault_secret_id: str = Field(description="The Key Vault secret version holding the value.")


class ReplyCertificate(Outbound):
    """The certificate that was issued. Its private key is only in Key Vault."""

    type: Literal["certificate"] = "certificate"
    key_id: str = Field(description="The key credential's keyId on the application.")
    thumbprint: str = Field(description="The certificate's SHA-1 thumbprint (hex), as the portal shows it.")
    start_date_time: AwareDatetime
    end_date_time: AwareDatetime
    key_vault_certificate_id: str = Field(description="The Key Vault certificate version.")
    key_vault_key_id: str = Field(
        description="The key that signs client assertions in the vault (Key Vault Crypto User can sign with it)."
    )
    exportable: bool = Field(
        description="Whether the certificate's secret (the PFX with the private key) can be downloaded."
    )


class ConsentResult(Outbound):
    """Permissions granted tenant-wide on one API."""

    api: str = Field(description="The API as the request named it.")
    delegated: list[str] = Field(default_factory=list)
    application: list[str] = Field(default_factory=list)


class DataAccessResult(Outbound):
    """Data roles the application's service principal holds on one FHIR or DICOM service."""

    service: str = Field(description="The service as the request named it.")
    url: str = Field(description="The service's URL, where a client sends its requests.")
    scope: str = Field(
        description="What a client asks a token for: {url}/.default for a FHIR service, "
        "https://dicom.healthcareapis.azure.com/.default for a DICOM service (its documented audience)."
    )
    roles: list[str] = Field(
        description="The data roles held. Azure RBAC takes minutes to apply a new assignment."
    )


class FederatedCredentialResult(Outbound):
    """A federated identity credential the application holds, as the request named it."""

    name: str
    issuer: str
    subject: str
    audiences: list[str] = Field(description="Always api://AzureADTokenExchange.")


class RemovedResources(Outbound):
    """What a decommission removed; false or 0 where there was nothing left to remove."""

    application: bool = Field(
        description="The application was deleted (Entra keeps it restorable for 30 days)."
    )
    service_principal: bool = Field(description="The service principal was deleted.")
    key_vault_secret_versions_disabled: NonNegativeInt = Field(
        description="Versions of the application's Key Vault secret, all of which are now disabled "
        "(a redelivered decommission reports the same number)."
    )
    key_vault_certificate_versions_disabled: NonNegativeInt = Field(
        default=0,
        description="Versions of the application's Key Vault certificate, all of which are now disabled: "
        "their keys can no longer sign.",
    )
    role_assignments: NonNegativeInt = Field(
        default=0,
        description="Azure RBAC data-role assignments the service had made for the application, now removed.",
    )


class RegistrationReply(Outbound):
    """The answer to one request, sent to the results queue."""

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: str | None = Field(
        description="The request's requestId; null when the body had none readable."
    )
    requested_by: str | None = Field(
        default=None, description="Who asked, as the request said; null when the body had none readable."
    )
    status: Literal["succeeded", "rejected", "failed"] = Field(
        description="`rejected`: the request can never succeed as sent (see errors). `failed`: it could not "
        "be completed now; sending it again may succeed."
    )
    application: ReplyApplication | None = None
    credential: ReplyCredential | ReplyCertificate | None = Field(default=None, discriminator="type")
    consent: list[ConsentResult] = Field(default_factory=list)
    data_access: list[DataAccessResult] = Field(default_factory=list)
    federated_credentials: list[FederatedCredentialResult] = Field(
        default_factory=list,
        description="The federated identity credentials the request named, as the application now holds them "
        "(a new one can take minutes to work: AADSTS70021).",
    )
    removed: RemovedResources | None = Field(default=None, description="Decommission only.")
    errors: list[FieldError] = Field(default_factory=list)


def rejected(
    request_id: str | None, errors: Sequence[FieldError], requested_by: str | None = None
) -> RegistrationReply:
    """The reply to a request that can never succeed as sent: each problem names its field."""
    return RegistrationReply(
        request_id=request_id, requested_by=requested_by, status="rejected", errors=list(errors)
    )
