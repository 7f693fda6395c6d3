"""A test OpenID Connect issuer: the external identity provider of workload identity federation
(what GitHub Actions or a Kubernetes cluster is to Entra), at ``{base_url}/oidc/test-issuer``.

It serves its discovery document and its JWKS, and ``mint`` signs workload tokens for the control
plane (``POST /_emulator/oidc/token``). Its RS256 key is its own, apart from the tenant's token
signing key (``SigningKey`` is both). The emulator has no network, so this is the only issuer
whose keys the token endpoint can resolve. Workload tokens carry real Unix times, as the tenant's
access tokens do (emulator.clock): the token endpoint judges an assertion's ``nbf``/``exp`` on
real time too, so that a test can move the emulator clock without expiring them.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TEST_ISSUER_PATH = "/oidc/test-issuer"
# The audience Entra expects in a workload token (federated identity credentials' ``audiences``).
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_LIFETIME_SECONDS = 600


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """An RSA key that signs RS256 tokens, published as a JWK under its ``kid``."""

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


class OidcIssuer:
    """The test issuer: discovery, keys, and workload tokens signed with its key."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}{TEST_ISSUER_PATH}"
        self.key = SigningKey()

    def routes(self) -> list[Route]:
        return [
            Route(f"{TEST_ISSUER_PATH}/.well-known/openid-configuration", self.openid_configuration),
            Route(f"{TEST_ISSUER_PATH}/keys", self.keys),
        ]

    async def openid_configuration(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"],
            }
        )

    async def keys(self, request: Request) -> JSONResponse:
        return JSONResponse(self.jwks())

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.jwk()]}

    def mint(
        self,
        subject: str,
        audience: str | list[str] = TOKEN_EXCHANGE_AUDIENCE,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A workload token for ``subject``, valid from now for ``lifetime_seconds`` (real time).
        ``claims`` are added last and may replace any standard one (an ``exp`` in the past makes
        an expired token, another ``iss`` a token this issuer signed in another's name)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "jti": str(uuid.uuid4()),
            **(claims or {}),
        }
        return jwt.encode(body, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid})
