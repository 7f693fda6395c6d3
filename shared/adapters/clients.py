"""Builds the platform's SDK clients: one credential, one Graph client, one Key Vault client,
the blob container of the per-application leases and Resource Manager's authorization client,
configured for the endpoints and CA in the settings (shared.bootstrap keeps one set per
process and event loop).

Importing this module is cheap: msgraph-sdk (~0.2-0.9 s to import) and the Azure SDKs are
imported inside the builders, so a cold start that only validates a bad request never pays
for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from shared.adapters.graph.calls import GRAPH_SCOPE
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.keyvault.certificates.aio import CertificateClient
    from azure.keyvault.keys.crypto.aio import CryptographyClient
    from azure.keyvault.secrets.aio import SecretClient
    from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
    from azure.servicebus.aio import ServiceBusClient
    from azure.storage.blob.aio import ContainerClient
    from msgraph import GraphServiceClient

# Each write is one HTTP request that gives up after this long (Key Vault, Storage); the lease's
# margin (shared.services.exclusive) is longer, so no write is still in flight when it lapses.
WRITE_TIMEOUT_SECONDS = 20
PUBLIC_AUTHORITY = "https://login.microsoftonline.com"


@dataclass
class PlatformClients:
    credential: AsyncTokenCredential
    graph: GraphServiceClient
    graph_http: httpx.AsyncClient
    vault: SecretClient
    leases: ContainerClient
    authorization: AuthorizationManagementClient
    servicebus: ServiceBusClient
    certificates: CertificateClient
    signers: VaultSigners
    loop: asyncio.AbstractEventLoop

    def cryptography(self, key_id: str) -> CryptographyClient:
        return self.signers.client(key_id)

    async def close(self) -> None:
        await self.servicebus.close()
        await self.signers.close()
        await self.certificates.close()
        await self.vault.close()
        await self.leases.close()
        await self.authorization.close()
        await self.credential.close()


@functools.cache
def _ca_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _transport(settings: Settings) -> dict[str, Any]:
    """An azure-core client's transport when the platform has its own CA (the emulator, or a
    TLS-inspecting proxy): one SSL context in the client's connection pool. Given the CA as
    ``connection_verify`` instead, azure-core builds a new SSL context for every request, and
    aiohttp, whose pool is keyed by it, opens a new TLS connection for every request."""
    if not settings.platform_ca_file:
        return {}
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_ca_context(str(settings.platform_ca_file))),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # as azure-core's own session: the pipeline decompresses
        trust_env=True,
    )
    return {"transport": AioHttpTransport(session=session, session_owner=True)}


def build_credential(settings: Settings) -> AsyncTokenCredential:
    """A client secret where one is configured (local runs, the emulator); otherwise the
    managed identity in Azure, or a developer's Azure CLI login."""
    kwargs = _transport(settings)
    if settings.azure_client_secret is not None and settings.azure_client_id:
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(
            settings.azure_tenant_id,
            settings.azure_client_id,
            settings.azure_client_secret.get_secret_value(),
            authority=settings.azure_authority_host,
            # Instance discovery asks login.microsoftonline.com about the authority: only
            # meaningful for Microsoft's own clouds.
            disable_instance_discovery=settings.azure_authority_host.rstrip("/") != PUBLIC_AUTHORITY,
            **kwargs,
        )
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id, **kwargs)


class _ExpandedUrls:
    """kiota builds a request's URL from its URI template each time the URL is read, three
    times per request (the adapter, the auth provider's host check, the request itself), and
    std-uritemplate percent-encodes character by character: about half of the service's CPU per
    Graph request (docs/benchmarks.md). The same template and values give the same URL, so the
    expansions are kept (least recently used first out)."""

    SIZE = 4096

    def __init__(self, expand: Callable[[str, dict[str, Any]], str]) -> None:
        self._expand = expand
        self._urls: OrderedDict[tuple[str, str], str] = OrderedDict()

    def expand(self, template: str, substitutions: dict[str, Any]) -> str:
        key = (template, repr(sorted(substitutions.items(), key=lambda item: item[0])))
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = self._expand(template, substitutions)
            if len(self._urls) > self.SIZE:
                self._urls.popitem(last=False)
        else:
            self._urls.move_to_end(key)
        return url


def _remember_expanded_urls() -> None:
    """Give kiota's requests ``_ExpandedUrls`` in place of std-uritemplate's ``expand``."""
    from kiota_abstractions import request_information

    template = request_information.StdUriTemplate
    if isinstance(template, _ExpandedUrls):
        return
    request_information.StdUriTemplate = _ExpandedUrls(template.expand)  # type: ignore[assignment,misc]


def _skip_unused_model_imports() -> None:
    """msgraph-sdk's generated ``Entity.get_field_deserializers`` (the base of every directory
    object) runs ~2,400 ``from .x import X`` statements that it never uses before returning its
    two setters: ~11 ms of CPU for every object parsed, and the first call imports every model
    module (~2,000 modules, ~1.5 s). Replace it with the same two setters, only if the generated
    code is the one measured (docs/benchmarks.md; msgraph-sdk-python#584)."""
    import inspect

    from msgraph.generated.models.entity import Entity

    original = Entity.get_field_deserializers
    if getattr(original, "__wrapped__", None) is not None:
        return
    statements = [line.strip() for line in inspect.getsource(original).splitlines() if line.strip()]
    first = "fields: dict[str, Callable[[Any], None]] = {"
    code = statements[statements.index(first) :] if first in statements else []
    if code != [
        first,
        "\"id\": lambda n : setattr(self, 'id', n.get_str_value()),",
        "\"@odata.type\": lambda n : setattr(self, 'odata_type', n.get_str_value()),",
        "}",
        "return fields",
    ]:
        return

    def get_field_deserializers(self: Entity) -> dict[str, Any]:
        return {
            "id": lambda n: setattr(self, "id", n.get_str_value()),
            "@odata.type": lambda n: setattr(self, "odata_type", n.get_str_value()),
        }

    get_field_deserializers.__wrapped__ = original  # type: ignore[attr-defined]
    Entity.get_field_deserializers = get_field_deserializers  # type: ignore[method-assign]


def build_graph_client(
    settings: Settings, credential: AsyncTokenCredential
) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    """The Graph client, and the httpx client under it (whose response hooks see Graph's
    throttling headers, shared.adapters.graph.calls.ThrottleSignals)."""
    import httpx
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.middleware import ParametersNameDecodingHandler, UserAgentHandler
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory
    from msgraph_core.middleware import GraphTelemetryHandler

    _skip_unused_model_imports()
    _remember_expanded_urls()
    host = urlparse(settings.graph_base_url).hostname or "graph.microsoft.com"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
    verify: ssl.SSLContext | bool = True
    if settings.platform_ca_file:
        verify = _ca_context(str(settings.platform_ca_file))
    # Of kiota's default middleware, only what changes a request the service sends: the query
    # parameters' names decoded (``%24select`` -> ``$select``), the User-Agent, and Graph's
    # telemetry headers (SdkVersion, client-request-id, which Microsoft support asks for).
    # Left out: the RetryHandler (the gateway owns retries, shared.adapters.graph.calls: kiota's
    # would re-send a POST such as addPassword on a 429/503 and could create a second secret,
    # and it cannot pace writes); the RedirectHandler (Graph answers the service's calls without
    # redirects); the UrlReplaceHandler (``/users/TokenToReplace`` -> ``/me``: no signed-in
    # user here); the headers and body inspection handlers (no request asks to inspect). Each
    # costs CPU on every request (docs/benchmarks.md).
    http = GraphClientFactory.create_with_custom_middleware(
        middleware=[ParametersNameDecodingHandler(), UserAgentHandler(), GraphTelemetryHandler()],
        client=httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        ),
    )
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = settings.graph_base_url.rstrip("/")
    return GraphServiceClient(request_adapter=adapter), http


def build_secret_client(settings: Settings, credential: AsyncTokenCredential) -> SecretClient:
    from azure.keyvault.secrets.aio import SecretClient

    return SecretClient(settings.key_vault_url, credential, **_vault_kwargs(settings))


def _vault_kwargs(settings: Settings) -> dict[str, Any]:
    """Key Vault clients' options: no SDK retries (the gateways retry, asking the lease's fence
    before each write), bounded waits, the platform's CA, and the challenge's resource checked
    only where the vault is under vault.azure.net (the emulator is not)."""
    kwargs: dict[str, Any] = {
        "retry_total": 0,
        "connection_timeout": 10,
        "read_timeout": WRITE_TIMEOUT_SECONDS,
        **_transport(settings),
    }
    host = urlparse(settings.key_vault_url).hostname or ""
    kwargs["verify_challenge_resource"] = host not in ("127.0.0.1", "localhost")
    return kwargs


def build_certificate_client(settings: Settings, credential: AsyncTokenCredential) -> CertificateClient:
    from azure.keyvault.certificates.aio import CertificateClient

    return CertificateClient(settings.key_vault_url, credential, **_vault_kwargs(settings))


class VaultSigners:
    """One ``CryptographyClient`` per key the service signs with (a certificate version's key),
    kept for the process: each first reads its key once."""

    def __init__(self, settings: Settings, credential: AsyncTokenCredential) -> None:
        self.settings = settings
        self.credential = credential
        self.clients: dict[str, CryptographyClient] = {}

    def client(self, key_id: str) -> CryptographyClient:
        if key_id not in self.clients:
            from azure.keyvault.keys.crypto.aio import CryptographyClient

            self.clients[key_id] = CryptographyClient(key_id, self.credential, **_vault_kwargs(self.settings))
        return self.clients[key_id]

    async def close(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.close()


def build_lease_container(settings: Settings, credential: AsyncTokenCredential) -> ContainerClient:
    """The container of per-application lease blobs in the function app's storage account."""
    from azure.storage.blob.aio import ContainerClient, ExponentialRetry

    kwargs: dict[str, Any] = {
        # The SDK's default back-off (15 s, then 15 + 3**n) would let one lease call retry for
        # about a minute: longer than the lease itself. These retries (about 1, 3 and 5 s) fit
        # in the lease's margin (shared.services.exclusive).
        "retry_policy": ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1
        ),
        "connection_timeout": 10,
        "read_timeout": WRITE_TIMEOUT_SECONDS,
        **_transport(settings),
    }
    return ContainerClient(settings.blob_service_url, settings.lease_container, credential, **kwargs)


def build_authorization_client(
    settings: Settings, credential: AsyncTokenCredential
) -> AuthorizationManagementClient:
    """Resource Manager's role assignments (api-version 2022-04-01), at the configured cloud's
    endpoint and token audience."""
    from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient

    kwargs: dict[str, Any] = {
        # No SDK retries: the gateway retries, asking the lease's fence before each write.
        "retry_total": 0,
        "connection_timeout": 10,
        "read_timeout": WRITE_TIMEOUT_SECONDS,
        "base_url": settings.resource_manager_url,
        "credential_scopes": [f"{settings.resource_manager_audience}/.default"],
        **_transport(settings),
    }
    # The client wants a subscription for its subscription-wide operations; the gateway's
    # operations all take their scope, so any id will do.
    subscription = next(
        (s.resource_id.split("/")[2] for s in settings.health_data_services.values()),
        "00000000-0000-0000-0000-000000000000",
    )
    return AuthorizationManagementClient(credential, subscription, **kwargs)


def build_servicebus_client(settings: Settings, credential: AsyncTokenCredential) -> ServiceBusClient:
    """One Service Bus client for the process: identity-based on the host's namespace
    (``ServiceBusConnection__fullyQualifiedNamespace``), or a connection string where one is set
    (local runs, the emulator)."""
    from azure.servicebus.aio import ServiceBusClient

    if settings.service_bus_connection is not None:
        return ServiceBusClient.from_connection_string(settings.service_bus_connection.get_secret_value())
    if settings.service_bus_namespace is None:
        raise ValueError(
            "set ServiceBusConnection__fullyQualifiedNamespace: replies, rotation messages and events "
            "are sent to the namespace the triggers read from"
        )
    return ServiceBusClient(settings.service_bus_namespace, credential)


# A secret the vault does not have: reading it takes the vault's challenge (and token) and
# returns 404, never a value.
WARM_UP_SECRET = "entra-app-registration-warm-up"


async def warm_up(clients: PlatformClients, settings: Settings) -> None:
    """A new instance's first calls to Resource Manager and Key Vault, made beside the first
    request's own instead of inside it: the Resource Manager token, and Key Vault's challenge
    (its SDK first sends a request without a token to learn the vault's tenant and resource)
    with its token. Graph's and Storage's tokens are left to the request, whose first calls
    need them at once. And the lease blobs, made once for the storage account (one read
    when they exist), so that a lease is one round trip (shared.adapters.leases). Failures are
    ignored: each call tries again at its first real use."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from shared.adapters.leases import BlobLeases
    from shared.domain import stored
    from shared.domain.errors import ServiceError

    async def resource_manager() -> None:
        with contextlib.suppress(AzureError):
            await clients.credential.get_token(f"{settings.resource_manager_audience}/.default")

    async def vault() -> None:
        with contextlib.suppress(ResourceNotFoundError, AzureError):
            await clients.vault.get_secret(WARM_UP_SECRET)

    async def leases() -> None:
        with contextlib.suppress(ServiceError, AzureError):
            await BlobLeases(clients.leases).ensure(stored.lease_names(), stored.LEASE_PREFIX)

    await asyncio.gather(resource_manager(), vault(), leases())


def build_platform_clients(settings: Settings, loop: asyncio.AbstractEventLoop) -> PlatformClients:
    """One credential and the clients that share it, bound to ``loop`` (the SDKs bind to one)."""
    credential = build_credential(settings)
    graph, graph_http = build_graph_client(settings, credential)
    return PlatformClients(
        credential=credential,
        graph=graph,
        graph_http=graph_http,
        vault=build_secret_client(settings, credential),
        leases=build_lease_container(settings, credential),
        authorization=build_authorization_client(settings, credential),
        servicebus=build_servicebus_client(settings, credential),
        certificates=build_certificate_client(settings, credential),
        signers=VaultSigners(settings, credential),
        loop=loop,
    )
