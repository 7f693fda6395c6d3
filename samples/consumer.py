"""How a client the service registered with a certificate gets its tokens, without ever holding
the private key: the client assertion is signed in Key Vault.

Microsoft's certificate credential (identity-platform "certificate-credentials") is a JWT with
header ``alg`` RS256/PS256 and ``x5t#S256`` (the certificate's SHA-256 thumbprint), and claims
``aud`` (the token endpoint), ``iss`` = ``sub`` = the client id, ``jti``, ``nbf``, ``iat`` and
``exp`` at most 10 minutes later. The consumer needs *Key Vault Crypto User* on the
certificate's key (the reply's ``keyVaultKeyId``) and the certificate's public part
(``keyVaultCertificateId``); azure-identity's ``ClientAssertionCredential`` calls back for a
fresh assertion whenever it needs a token.

With ``exportable: true`` a consumer may instead download the PFX from the certificate's
secret and use azure-identity's ``CertificateCredential``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.keyvault.keys.crypto.aio import CryptographyClient

ASSERTION_LIFETIME_SECONDS = 600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


async def vault_signed_assertion(
    crypto: CryptographyClient, cer: bytes, client_id: str, token_endpoint: str
) -> str:
    """A client assertion for ``client_id`` whose signature Key Vault makes with the key of
    the certificate ``cer`` (DER): only the SHA-256 digest leaves this process."""
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    header = {"alg": "RS256", "typ": "JWT", "x5t#S256": _b64url(hashlib.sha256(cer).digest())}
    now = int(time.time())
    claims = {
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECONDS,
    }
    signing_input = ".".join(_b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    result = await crypto.sign(SignatureAlgorithm.rs256, hashlib.sha256(signing_input.encode()).digest())
    return f"{signing_input}.{_b64url(result.signature)}"


async def token_with_vault_signed_assertion(
    *,
    authority: str,
    tenant_id: str,
    client_id: str,
    certificate_id: str,
    vault_credential: Any,
    scope: str,
    **transport: Any,
) -> str:
    """A token for ``scope`` as ``client_id``, authenticated by an assertion signed in Key Vault
    with the key of ``certificate_id`` (a versioned certificate id from the service's reply).
    ``vault_credential`` is the consumer's own identity (it needs certificates/get and
    keys/sign); ``transport`` goes to the SDK clients (``connection_verify`` for a private CA)."""
    from azure.identity.aio import ClientAssertionCredential
    from azure.keyvault.certificates.aio import CertificateClient
    from azure.keyvault.keys.crypto.aio import CryptographyClient

    vault_url, rest = certificate_id.split("/certificates/", 1)
    name, version = rest.rstrip("/").split("/")[:2]
    local = vault_url.split("://", 1)[-1].split(":")[0] in ("127.0.0.1", "localhost")
    options = {**transport, "verify_challenge_resource": not local}
    async with CertificateClient(vault_url, vault_credential, **options) as certificates:
        certificate = await certificates.get_certificate_version(name, version)
    assert certificate.cer is not None and certificate.key_id is not None
    token_endpoint = f"{authority.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
    async with CryptographyClient(certificate.key_id, vault_credential, **options) as crypto:
        assertion = await vault_signed_assertion(crypto, bytes(certificate.cer), client_id, token_endpoint)

    def fresh_assertion() -> str:
        return assertion  # one token is all this asks; a long-lived client signs anew each time

    client = ClientAssertionCredential(
        tenant_id,
        client_id,
        fresh_assertion,
        authority=authority,
        disable_instance_discovery=local,
        **transport,
    )
    async with client:
        return (await client.get_token(scope)).token
