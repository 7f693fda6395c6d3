"""The Microsoft identity platform's v2.0 endpoints for the client credentials flow.

A client authenticates with one of (certificate-credentials, workload-identity-federation):
- a secret, only while that password credential exists on its application and
  ``startDateTime <= now < endDateTime`` on the emulator clock;
- a certificate assertion (``client_assertion``, jwt-bearer): a JWT with ``iss`` = ``sub`` = the
  client id, ``aud`` this token endpoint, signed (PS256 or RS256) with the key of the app's
  ``keyCredentials`` entry (usage Verify, valid on the emulator clock) named by the header's
  ``x5t#S256`` or ``x5t``;
- a federated assertion: a workload token whose ``iss``, ``sub`` and ``aud`` match a federated
  identity credential of the app, signed with a key of its issuer. With no network, the only
  issuer whose keys resolve is the emulator's own test issuer (emulator.oidc).
An assertion's ``nbf``/``exp`` are judged on real time, as tokens' lifetimes are. Each refusal
carries the AADSTS code Entra answers with (docs/emulator.md lists them with their sources).

Tokens are RS256 JWTs signed with a key published at the tenant's JWKS endpoint; for Microsoft
Graph they carry in ``roles`` the app roles the client's service principal was granted
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
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulator.clock import parse_iso
from emulator.errors import PlatformError
from emulator.oidc import OidcIssuer, SigningKey

if TYPE_CHECKING:
    from jwt.types import Options

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
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# PS256 is what certificate-credentials documents; Entra's AADSTS5002738 answer lists the RS family.
ASSERTION_ALGORITHMS = ("PS256", "RS256", "RS384", "RS512")
CERTIFICATE_DOCS = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
FEDERATION_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"


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


def _identity_error(status: int, error: str, code: int, message: str) -> PlatformError:
    return PlatformError(status, error, f"AADSTS{code}: {message}", service="identity", error_codes=[code])


def _malformed() -> PlatformError:
    return _identity_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")


# Verify an assertion's signature only: its claims are judged one by one, each with its own code.
_SIGNATURE_ONLY: Options = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _audiences(claims: dict[str, Any]) -> list[str]:
    """``aud``, a string or a list of them (RFC 7519 section 4.1.3)."""
    audience = claims["aud"]
    return [a for a in (audience if isinstance(audience, list) else [audience]) if isinstance(a, str)]


def _moment(seconds: float) -> str:
    """A Unix time as Entra writes it in AADSTS700024 (seven fractional digits, ``Z``)."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    except (ValueError, OverflowError, OSError):
        return str(seconds)


def _check_lifetime(claims: dict[str, Any]) -> None:
    """``nbf <= now < exp`` on real time (the clock assertions are minted by). Entra documents no
    maximum lifetime: certificate-credentials advises 5-10 minutes and says it places no
    restriction on ``exp`` (azure-identity's async CertificateCredential asks for 30 minutes)."""
    now = time.time()
    not_before = claims.get("nbf", 0)
    if not not_before <= now < claims["exp"]:
        raise _identity_error(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_moment(now)}, "
            f"assertion valid from {_moment(not_before)}, expiry time of assertion "
            f"{_moment(claims['exp'])}. Review the documentation at {CERTIFICATE_DOCS} .",
        )


def _certificate_der(key: str) -> bytes:
    """A keyCredential's ``key`` (base64 of a DER or PEM certificate) as DER."""
    raw = base64.b64decode(key)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(raw).public_bytes(serialization.Encoding.DER)
    return raw


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
        # the external identity provider whose workload tokens federated credentials may trust
        self.test_issuer = OidcIssuer(base_url)
        # resources without a service principal that tokens may be issued for
        self.resources: set[str] = set(AZURE_RESOURCES)

    # -- endpoints ----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            Route("/{tenant}/discovery/v2.0/keys", self.keys),
            Route("/common/discovery/instance", self.instance_discovery),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            *self.test_issuer.routes(),
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
        tenant = request.path_params["tenant"]
        self._check_tenant(tenant)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise _identity_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
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
        # the assertion's audience: this endpoint, named by the tenant's id or as the client called it
        endpoints = {f"{self.base_url}/{name}/oauth2/v2.0/token" for name in (self.tenant_id, tenant)}
        self._authenticate_client(directory, app, form, endpoints)
        return self._issue(directory, client_id, sp_id, scope.removesuffix("/.default"))

    def _issue(self, directory: Directory, client_id: str, sp_id: str, resource: str) -> JSONResponse:
        """The access token for an authenticated client, whichever credential it used."""
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

    # -- client authentication ------------------------------------------------------------

    def _authenticate_client(
        self, directory: Directory, app: dict[str, Any], form: dict[str, str], endpoints: set[str]
    ) -> None:
        """Returns when the form's secret or assertion proves the client is ``app``."""
        client_id = app["appId"]
        secret, assertion = form.get("client_secret"), form.get("client_assertion")
        if secret is not None and assertion is not None:
            # RFC 6749 section 2.3: one authentication method per request. Entra's code for this
            # is not documented; 90023 is its documented "request isn't valid".
            raise _identity_error(
                400,
                "invalid_request",
                90023,
                "The authentication service request isn't valid: send 'client_secret' or "
                "'client_assertion', not both.",
            )
        if assertion is not None:
            assertion_type = form.get("client_assertion_type")
            if assertion_type is None:
                raise _identity_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_assertion_type'.",
                )
            if assertion_type != JWT_BEARER:
                raise _identity_error(
                    400,
                    "invalid_request",
                    90023,
                    f"The authentication service request isn't valid: client_assertion_type "
                    f"'{assertion_type}' is not supported.",
                )
            self._check_assertion(app, assertion, endpoints)
            return
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

    def _check_assertion(self, app: dict[str, Any], assertion: str, endpoints: set[str]) -> None:
        """A certificate assertion names the client as its issuer or subject; anything else is a
        workload token from an external issuer, judged by the app's federated credentials."""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _malformed() from None
        algorithm = header.get("alg")
        if algorithm not in ASSERTION_ALGORITHMS:
            raise _identity_error(
                401,
                "invalid_client",
                5002738,
                f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm. "
                f"Supported signing algorithms are: '{','.join(ASSERTION_ALGORITHMS)}'",
            )
        for required in ("iss", "aud", "exp"):
            if required not in claims:
                raise _identity_error(
                    400,
                    "invalid_request",
                    90014,
                    f"The required field '{required}' is missing from the credential. Ensure that "
                    "you have all the necessary parameters for the login request.",
                )
        if not _is_time(claims["exp"]) or ("nbf" in claims and not _is_time(claims["nbf"])):
            raise _malformed()
        if app["appId"] in (claims["iss"], claims.get("sub")):
            self._check_certificate_assertion(app, assertion, header, claims, endpoints)
        else:
            self._check_federated_assertion(app, assertion, header, claims)

    def _check_certificate_assertion(
        self,
        app: dict[str, Any],
        assertion: str,
        header: dict[str, Any],
        claims: dict[str, Any],
        endpoints: set[str],
    ) -> None:
        client_id = app["appId"]
        if claims["iss"] != client_id:
            raise _identity_error(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter. "
                f"Review the documentation at {CERTIFICATE_DOCS} .",
            )
        if claims.get("sub") != client_id:
            raise _identity_error(
                401, "invalid_client", 50048, "Subject mismatches Issuer claim in the client assertion."
            )
        public_key = self._certificate_key(app, header)
        try:
            jwt.decode(assertion, public_key, algorithms=[header["alg"]], options=_SIGNATURE_ONLY)
        except jwt.PyJWTError:
            raise _identity_error(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        _check_lifetime(claims)
        if not endpoints.intersection(_audiences(claims)):
            raise _identity_error(
                401,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer. Review the "
                f"documentation at {CERTIFICATE_DOCS}.",
            )

    def _certificate_key(self, app: dict[str, Any], header: dict[str, Any]) -> rsa.RSAPublicKey:
        """The public key of the app's certificate (usage Verify, valid now on the emulator
        clock) whose SHA-256 (``x5t#S256``) or SHA-1 (``x5t``) thumbprint the header names."""
        if "x5t#S256" in header:
            named, digest = header["x5t#S256"], hashlib.sha256
        elif "x5t" in header:
            named, digest = header["x5t"], hashlib.sha1
        else:
            raise _identity_error(
                401,
                "invalid_client",
                5002723,
                "Invalid JWT token. No certificate SHA-1 thumbprint, certificate SHA-256 "
                "thumbprint, nor keyId specified in token header.",
            )
        try:
            thumbprint = base64.urlsafe_b64decode(str(named) + "=" * (-len(str(named)) % 4))
        except ValueError:
            raise _malformed() from None
        found = [
            (credential, der)
            for credential in app.get("keyCredentials", [])
            if credential.get("usage") == "Verify"
            and digest(der := _certificate_der(credential["key"])).digest() == thumbprint
        ]
        if not found:
            raise _identity_error(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application. [Reason - The key was not found., Thumbprint of key "
                f"used by client: '{thumbprint.hex().upper()}', Please visit the Azure Portal, "
                "Graph Explorer or directly use MS Graph to see configured keys for app Id "
                f"'{app['appId']}'.]",
            )
        now = self.clock.now()
        for credential, der in found:
            if parse_iso(credential["startDateTime"]) <= now < parse_iso(credential["endDateTime"]):
                public_key = x509.load_der_x509_certificate(der).public_key()
                if not isinstance(public_key, rsa.RSAPublicKey):
                    raise _identity_error(
                        401, "invalid_client", 700027, "Client assertion failed signature validation."
                    )
                return public_key
        credential = found[0][0]
        reason = (
            "The key used is expired."
            if parse_iso(credential["endDateTime"]) <= now
            else "The key used is not yet valid."
        )
        raise _identity_error(
            401,
            "invalid_client",
            700027,
            f"Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key "
            f"used by client: '{thumbprint.hex().upper()}', Found key 'Start="
            f"{credential['startDateTime']}, End={credential['endDateTime']}']",
        )

    def _check_federated_assertion(
        self, app: dict[str, Any], assertion: str, header: dict[str, Any], claims: dict[str, Any]
    ) -> None:
        """Entra trusts a workload token when one federated credential of the app has its issuer,
        one of its audiences and its subject (case-sensitive), and the issuer's keys verify it."""
        issuer, subject = claims["iss"], claims.get("sub")
        trusted = app.get("_federatedIdentityCredentials", [])
        if not trusted:
            raise _identity_error(
                401,
                "invalid_client",
                70025,
                "Client application has no configured federated identity credentials.",
            )
        same_issuer = [f for f in trusted if f["issuer"] == issuer]
        if not same_issuer:
            raise _identity_error(
                401,
                "invalid_client",
                700211,
                f"No matching federated identity record found for presented assertion issuer "
                f"'{issuer}'. Please check your federated identity credential Subject, Audience and "
                f"Issuer against the presented assertion. {FEDERATION_DOCS}",
            )
        if issuer != self.test_issuer.url:  # no network: the issuer's metadata cannot be fetched
            raise _identity_error(400, "invalid_request", 90061, "Request to External OIDC endpoint failed.")
        kid = header.get("kid")
        jwk = next((k for k in self.test_issuer.jwks()["keys"] if k["kid"] == kid), None)
        if jwk is None:
            raise _identity_error(
                401,
                "invalid_client",
                7000272,
                f"The certificate with identifier {kid} used to sign the federated credential could "
                f"not be found in the metadata of identity provider {issuer}. Please validate that "
                "your Identity Provider's metadata exposes the key used to sign the incoming token.",
            )
        try:
            jwt.decode(assertion, jwt.PyJWK(jwk).key, algorithms=[header["alg"]], options=_SIGNATURE_ONLY)
        except jwt.PyJWTError:
            raise _identity_error(
                400,
                "invalid_request",
                50027,
                "Invalid JWT token. External ID token from issuer failed signature verification.",
            ) from None
        _check_lifetime(claims)
        audiences = _audiences(claims)
        same_audience = [f for f in same_issuer if set(f.get("audiences", [])).intersection(audiences)]
        if not same_audience:
            raise _identity_error(
                401,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{', '.join(audiences)}'. Please check your federated identity credential "
                f"Subject, Audience and Issuer against the presented assertion. {FEDERATION_DOCS}",
            )
        if not any(f["subject"] == subject for f in same_audience):
            raise _identity_error(
                401,
                "invalid_client",
                700213,
                f"No matching federated identity record found for presented assertion subject "
                f"'{subject}'. Please note that the matching is done using a case-sensitive "
                "comparison. Check your federated identity credential Subject, Audience and Issuer "
                f"against the presented assertion. {FEDERATION_DOCS}",
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
