"""The Microsoft identity platform's v2.0 endpoints for the client credentials flow.

A client authenticates with a secret only while that password credential exists on its
application and ``startDateTime <= now < endDateTime`` on the emulator clock. Tokens are
RS256 JWTs signed with a key published at the tenant's JWKS endpoint; for Microsoft Graph
they carry in ``roles`` the app roles the client's service principal was granted
(appRoleAssignedTo). Token lifetimes run on real time (see emulator.clock).

Tokens are issued for a resource with a service principal in the tenant, or for one of
``IdentityPlatform.resources``: Azure's own resources (Key Vault, Storage, Resource Manager,
DICOM, Service Bus) and the URL of each seeded FHIR service (a FHIR service's audience is its
URL). Each emulated service checks a token with ``verify`` (``verify_token`` for a token that
did not come in an HTTP header: Service Bus's CBS) and answers a ``TokenRejected`` in its own
wire format; ``authenticate`` does that for Graph, Key Vault and Storage.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulator.errors import PlatformError

if TYPE_CHECKING:
    from emulator.clock import Clock
    from emulator.directory import Directory

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
VAULT_AUDIENCE = "https://vault.azure.net"
STORAGE_AUDIENCE = "https://storage.azure.com"
MANAGEMENT_AUDIENCE = "https://management.azure.com"
DICOM_AUDIENCE = "https://dicom.healthcareapis.azure.com"
# azure-servicebus asks for ``https://servicebus.azure.net//.default``: the resource then ends
# with a slash, and both spellings are Service Bus.
SERVICE_BUS_AUDIENCES = ("https://servicebus.azure.net", "https://servicebus.azure.net/")
# Resources with no service principal in the tenant that tokens may still be issued for (the
# platform adds its FHIR services' URLs to ``IdentityPlatform.resources``).
AZURE_RESOURCES = (
    VAULT_AUDIENCE,
    STORAGE_AUDIENCE,
    MANAGEMENT_AUDIENCE,
    DICOM_AUDIENCE,
    *SERVICE_BUS_AUDIENCES,
)
TOKEN_LIFETIME_SECONDS = 3599


@dataclass(frozen=True)
class Principal:
    """Who called: the client application and its service principal in this tenant."""

    app_id: str
    service_principal_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    expires_on: int = 0  # the token's ``exp`` (Unix seconds)

    def has_any(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class TokenRejected(Exception):
    """Why a request's bearer token was refused; each service words the 401 its own way.
    ``claims`` are the token's claims read without verification (empty if unreadable)."""

    def __init__(
        self, reason: Literal["missing", "expired", "audience", "invalid"], claims: dict[str, Any]
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "alg": "RS256",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


def _identity_error(status: int, error: str, code: int, message: str) -> PlatformError:
    return PlatformError(status, error, f"AADSTS{code}: {message}", service="identity", error_codes=[code])


class IdentityPlatform:
    """The token endpoint and its discovery documents for one tenant. It reads the directory
    through ``directory`` (a reset replaces the directory object) and decides by ``clock``."""

    def __init__(
        self, *, base_url: str, tenant_id: str, clock: Clock, directory: Callable[[], Directory]
    ) -> None:
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.clock = clock
        self.directory = directory
        self.key = SigningKey()
        # resources without a service principal that tokens may be issued for
        self.resources: set[str] = set(AZURE_RESOURCES)

    # -- endpoints ----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            Route("/{tenant}/discovery/v2.0/keys", self.keys),
            Route("/common/discovery/instance", self.instance_discovery),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
        ]

    def _issuer(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    def _check_tenant(self, tenant: str) -> None:
        if tenant not in (self.tenant_id, "organizations", "common"):
            raise _identity_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")

    async def openid_configuration(self, request: Request) -> JSONResponse:
        self._check_tenant(request.path_params["tenant"])
        base = f"{self.base_url}/{self.tenant_id}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": self._issuer(),
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "roles"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "emulator",
            }
        )

    async def keys(self, request: Request) -> JSONResponse:
        self._check_tenant(request.path_params["tenant"])
        return JSONResponse({"keys": [self.key.jwk()]})

    async def instance_discovery(self, request: Request) -> JSONResponse:
        host = self.base_url.split("://", 1)[1]
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{self.base_url}/{self.tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def token(self, request: Request) -> JSONResponse:
        self._check_tenant(request.path_params["tenant"])
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise _identity_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            raise _identity_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        directory = self.directory()
        object_id = directory.app_by_app_id.get(client_id)
        app = directory.applications.get(object_id) if object_id else None
        sp_id = directory.sp_by_app_id.get(client_id)
        if app is None or sp_id is None:
            raise _identity_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        if secret is None:
            raise _identity_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        matches, valid = directory.valid_secret(app, secret, self.clock.now())
        if not matches:
            raise _identity_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the "
                f"request is the client secret value, not the client secret ID, for a "
                f"secret added to app '{client_id}'.",
            )
        if not valid:
            raise _identity_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client_id}' are expired or not yet valid.",
            )
        resource = scope.removesuffix("/.default")
        resource_sp = directory.sp_by_app_id.get(resource)
        if resource_sp is None:
            resource_sp = next(
                (
                    sp["id"]
                    for sp in directory.service_principals.values()
                    if resource in sp.get("servicePrincipalNames", [])
                ),
                None,
            )
        if resource_sp is None and resource not in self.resources:
            raise _identity_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant.",
            )
        resource_app_id = directory.service_principals[resource_sp]["appId"] if resource_sp else resource
        roles = directory.graph_roles(sp_id, resource_app_id)
        now = int(time.time())
        claims = {
            "aud": "https://graph.microsoft.com" if resource_app_id == GRAPH_AUDIENCES[1] else resource,
            "iss": self._issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "appid": client_id,
            "azp": client_id,
            "idtyp": "app",
            "oid": sp_id,
            "sub": sp_id,
            "tid": self.tenant_id,
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
        if roles:
            claims["roles"] = roles
        token = jwt.encode(claims, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid})
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            }
        )

    # -- verification -------------------------------------------------------------------

    def verify(self, request: Request, audiences: tuple[str, ...]) -> Principal:
        """The caller of ``request`` if it bears a valid token for one of ``audiences``, else
        ``TokenRejected``."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise TokenRejected("missing", {})
        return self.verify_token(header[7:].strip(), audiences)

    def verify_token(self, token: str, audiences: tuple[str, ...]) -> Principal:
        """The caller bearing ``token`` if it is valid for one of ``audiences``, else
        ``TokenRejected``."""
        try:
            claims = jwt.decode(
                token,
                self.key.private_key.public_key(),
                algorithms=["RS256"],
                audience=list(audiences),
                issuer=self._issuer(),
            )
        except jwt.PyJWTError as exc:
            try:
                unverified = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                unverified = {}
            if isinstance(exc, jwt.ExpiredSignatureError):
                raise TokenRejected("expired", unverified) from None
            if isinstance(exc, jwt.InvalidAudienceError):
                raise TokenRejected("audience", unverified) from None
            raise TokenRejected("invalid", unverified) from None
        return Principal(
            app_id=claims["appid"],
            service_principal_id=claims["oid"],
            roles=frozenset(claims.get("roles", [])),
            expires_on=int(claims.get("exp", 0)),
        )

    def authenticate(self, request: Request, audiences: tuple[str, ...]) -> Principal:
        """The caller of ``request``, or a 401 in the wire format of the service asked
        (Graph, Key Vault or Storage)."""
        service = (
            "keyvault"
            if VAULT_AUDIENCE in audiences
            else "storage"
            if STORAGE_AUDIENCE in audiences
            else "graph"
        )
        try:
            return self.verify(request, audiences)
        except TokenRejected as rejected:
            reason = rejected.reason
        if reason == "missing":
            if service == "keyvault":
                raise self.vault_challenge(
                    "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
                )
            if service == "storage":
                raise self.storage_challenge(
                    "NoAuthenticationInformation",
                    "Server failed to authenticate the request. Please refer to the information in "
                    "the www-authenticate header.",
                )
            raise PlatformError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if reason == "expired":
            if service == "keyvault":
                raise self.vault_challenge("Unauthorized", "AKV10032: Invalid issuer or token expired.")
            if service == "storage":
                raise self.storage_challenge(
                    "InvalidAuthenticationInfo",
                    "Server failed to authenticate the request. The token is expired.",
                )
            raise PlatformError(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            )
        if service == "keyvault":
            raise self.vault_challenge("Unauthorized", "AKV10022: Invalid audience or token.")
        if service == "storage":
            raise self.storage_challenge(
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Invalid audience.",
            )
        raise PlatformError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )

    def storage_challenge(self, code: str, message: str) -> PlatformError:
        authority = f"{self.base_url}/{self.tenant_id}/oauth2/authorize"
        return PlatformError(
            401,
            code,
            message,
            service="storage",
            headers={
                "WWW-Authenticate": f"Bearer authorization_uri={authority} resource_id={STORAGE_AUDIENCE}",
                "x-ms-error-code": code,
            },
        )

    def vault_challenge(self, code: str, message: str) -> PlatformError:
        authority = f"{self.base_url}/{self.tenant_id}"
        return PlatformError(
            401,
            code,
            message,
            service="keyvault",
            headers={"WWW-Authenticate": f'Bearer authorization="{authority}", resource="{VAULT_AUDIENCE}"'},
        )
