"""The official SDK clients, pointed at the emulator exactly as the service points them at Azure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import urllib.parse
from typing import Any

import httpx
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto.aio import CryptographyClient
from azure.keyvault.secrets.aio import SecretClient
from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
from azure.servicebus.aio import ServiceBusClient
from azure.storage.blob.aio import ContainerClient
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory


def credential(
    settings: dict[str, str], client_id: str | None = None, secret: str | None = None
) -> ClientSecretCredential:
    """azure-identity's async ClientSecretCredential against the emulator's authority
    (default: the service identity)."""
    return ClientSecretCredential(
        settings["AZURE_TENANT_ID"],
        client_id or settings["AZURE_CLIENT_ID"],
        secret or settings["AZURE_CLIENT_SECRET"],
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )


def container_client(
    settings: dict[str, str], name: str, cred: ClientSecretCredential | None = None
) -> ContainerClient:
    """azure-storage-blob's async ContainerClient for the emulated storage account's container
    ``name`` (default credential: the service identity)."""
    return ContainerClient(
        settings["AzureWebJobsStorage__blobServiceUri"],
        name,
        cred or credential(settings),
        connection_verify=settings["PLATFORM_CA_FILE"],
    )


def admin_credential(settings: dict[str, str]) -> ClientSecretCredential:
    return credential(
        settings, settings["EMULATOR_ADMIN_CLIENT_ID"], settings["EMULATOR_ADMIN_CLIENT_SECRET"]
    )


def graph_client(settings: dict[str, str], cred: ClientSecretCredential) -> GraphServiceClient:
    """msgraph-sdk's GraphServiceClient with the default middleware, its base URL at the emulator."""
    auth = AzureIdentityAuthenticationProvider(
        cred, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=settings["PLATFORM_CA_FILE"]), timeout=60
        )
    )
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = settings["GRAPH_BASE_URL"]
    return GraphServiceClient(request_adapter=adapter)


def secret_client(settings: dict[str, str], cred: ClientSecretCredential) -> SecretClient:
    """azure-keyvault-secrets' async SecretClient against the emulated vault."""
    return SecretClient(
        settings["KEY_VAULT_URL"],
        cred,
        verify_challenge_resource=False,
        connection_verify=settings["PLATFORM_CA_FILE"],
    )


def certificate_client(settings: dict[str, str], cred: ClientSecretCredential) -> CertificateClient:
    """azure-keyvault-certificates' async CertificateClient against the emulated vault."""
    return CertificateClient(
        settings["KEY_VAULT_URL"],
        cred,
        verify_challenge_resource=False,
        connection_verify=settings["PLATFORM_CA_FILE"],
    )


def key_client(settings: dict[str, str], cred: ClientSecretCredential) -> KeyClient:
    """azure-keyvault-keys' async KeyClient against the emulated vault."""
    return KeyClient(
        settings["KEY_VAULT_URL"],
        cred,
        verify_challenge_resource=False,
        connection_verify=settings["PLATFORM_CA_FILE"],
    )


def crypto_client(settings: dict[str, str], key_id: str, cred: ClientSecretCredential) -> CryptographyClient:
    """azure-keyvault-keys' async CryptographyClient for ``key_id`` (a certificate's ``key_id``)."""
    return CryptographyClient(
        key_id, cred, verify_challenge_resource=False, connection_verify=settings["PLATFORM_CA_FILE"]
    )


def authorization_client(
    settings: dict[str, str], cred: ClientSecretCredential
) -> AuthorizationManagementClient:
    """azure-mgmt-authorization's async client (api-version 2022-04-01) against the emulated
    Resource Manager and its subscription."""
    services = json.loads(settings["HEALTH_DATA_SERVICES"])
    subscription_id = services["fhir"]["resourceId"].split("/")[2]
    return AuthorizationManagementClient(
        cred,
        subscription_id,
        base_url=settings["RESOURCE_MANAGER_URL"],
        credential_scopes=[settings["RESOURCE_MANAGER_AUDIENCE"] + "/.default"],
        connection_verify=settings["PLATFORM_CA_FILE"],
    )


def servicebus_client(settings: dict[str, str], **kwargs: Any) -> ServiceBusClient:
    """azure-servicebus's async client from the emulator's connection string (plain AMQP, as
    ``UseDevelopmentEmulator=true`` asks)."""
    return ServiceBusClient.from_connection_string(settings["ServiceBusConnection"], **kwargs)


def sas_token(resource_uri: str, key_name: str, key: str, ttl_seconds: int = 300) -> str:
    """A Service Bus SAS token as Microsoft documents it (service-bus-sas): ``sr`` the
    URL-encoded resource URI, the signature an HMAC-SHA256 with the key of ``{sr}\n{se}``."""
    sr = urllib.parse.quote_plus(resource_uri)
    se = str(int(time.time()) + ttl_seconds)
    digest = hmac.new(key.encode(), f"{sr}\n{se}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={se}&skn={key_name}"
