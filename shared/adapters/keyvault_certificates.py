"""Key Vault gateway for the applications' certificates: created in the vault, whose private
key never leaves it, and signing in the vault with that key.

Each application issued a certificate has one Key Vault certificate (``cert-{uniqueName}``);
every certificate the service creates for it is a new *version* (a new key each time), tagged
like a secret's versions (shared.domain.stored). A certificate version's key has the same name
and version, and it is the key that signs the proofs of possession Graph asks for
(``CryptographyClient.sign``). Retries and errors are the secrets gateway's
(shared.adapters.keyvault): nothing above sees an azure-core exception.

Permissions (built-in roles on the vault): *Key Vault Certificates Officer* for create, read,
list and update; *Key Vault Crypto User* for sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from shared.adapters.azure_calls import call_azure
from shared.adapters.keyvault import vault_error
from shared.domain.certificates import thumbprint_of
from shared.domain.errors import NotFound, TransientError
from shared.domain.policy import RequestedCertificate
from shared.domain.records import CertificateVersion

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineResponse
    from azure.keyvault.certificates import CertificateProperties, KeyVaultCertificate
    from azure.keyvault.certificates.aio import CertificateClient
    from azure.keyvault.keys.crypto.aio import CryptographyClient


def _version(properties: CertificateProperties, cer: bytes = b"", key_id: str = "") -> CertificateVersion:
    # A certificate version's key has the certificate's name and version (Key Vault's ``kid``).
    key_id = key_id or str(properties.id).replace("/certificates/", "/keys/", 1)
    thumbprint = (properties.x509_thumbprint or b"").hex().upper() or (thumbprint_of(cer) if cer else "")
    return CertificateVersion(
        id=str(properties.id),
        version=str(properties.version),
        thumbprint=thumbprint,
        enabled=bool(properties.enabled),
        not_before=properties.not_before,
        expires_on=properties.expires_on,
        created_on=properties.created_on,
        tags=dict(properties.tags or {}),
        key_id=key_id,
        cer=cer,
    )


def _full(certificate: KeyVaultCertificate) -> CertificateVersion:
    assert certificate.properties is not None  # a certificate read or created has its properties
    return _version(certificate.properties, bytes(certificate.cer or b""), str(certificate.key_id or ""))


class CertificatesGateway:
    def __init__(self, client: CertificateClient, crypto: Callable[[str], CryptographyClient]) -> None:
        self.client = client
        self.crypto = crypto

    async def versions(self, name: str) -> list[CertificateVersion]:
        """Every version's properties and thumbprint (no ``cer``, no key id); [] if none.

        Raises ``PermissionDenied``, ``TransientError``. Needs ``.../certificates/read``.
        """

        async def collect() -> list[CertificateVersion]:
            return [_version(p) async for p in self.client.list_properties_of_certificate_versions(name)]

        try:
            return await call_azure(f"list versions of certificate {name}", collect, vault_error)
        except NotFound:
            return []

    async def latest(self, name: str) -> CertificateVersion | None:
        """The newest version, whole (``cer`` and key id), or None when there is none.

        Raises ``PermissionDenied``, ``TransientError``. Needs ``.../certificates/read``.
        """
        try:
            certificate = await call_azure(
                f"read certificate {name}", lambda: self.client.get_certificate(name), vault_error
            )
        except NotFound:
            return None
        return _full(certificate)

    async def get(self, name: str, version: str) -> CertificateVersion:
        """One version, whole. Raises ``NotFound``, ``PermissionDenied``, ``TransientError``.
        Needs ``.../certificates/read``."""
        certificate = await call_azure(
            f"read certificate {name}/{version}",
            lambda: self.client.get_certificate_version(name, version),
            vault_error,
        )
        return _full(certificate)

    async def create(
        self, name: str, request: RequestedCertificate, issuer: str, tags: Mapping[str, str]
    ) -> CertificateVersion:
        """A new version of ``name`` (a new key, made in the vault) by ``issuer`` (Self, or a
        CA-integrated issuer configured in the vault), waiting until Key Vault has issued it.
        Never created twice by one call; a lost answer to the create itself is raised, and the
        caller finds the version as the vault's newest.

        Raises ``TransientError`` (also while the issuer has not completed it),
        ``PermissionDenied``, ``PermanentError`` (an issuer the vault does not know, a policy
        Key Vault refuses). Needs ``.../certificates/create/action``.
        """
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.keyvault.certificates import (
            CertificateContentType,
            CertificatePolicy,
            CertificatePolicyAction,
            KeyType,
            KeyVaultCertificate,
            LifetimeAction,
        )

        policy = CertificatePolicy(
            issuer_name=issuer,
            subject=request.subject,
            exportable=request.exportable,
            key_type=KeyType.rsa,
            key_size=2048,
            reuse_key=False,
            content_type=CertificateContentType.pkcs12,
            validity_in_months=request.validity_months,
            # Never AutoRenew: a version Key Vault made on its own would not be on the application.
            lifetime_actions=[LifetimeAction(CertificatePolicyAction.email_contacts, lifetime_percentage=80)],
        )

        # The create is one POST and then reads until Key Vault has issued the certificate. A
        # failure after the POST was answered must not POST again (that would make a second
        # version): a retry only reads the operation and the certificate.
        created = False

        def posted(response: PipelineResponse) -> None:
            nonlocal created
            if response.http_request.method == "POST" and response.http_response.status_code == 202:
                created = True

        async def create() -> KeyVaultCertificate:
            if not created:
                unanswered = False
                try:
                    result = await self.client.create_certificate(
                        name, policy, tags=dict(tags), raw_response_hook=posted
                    )
                except (ServiceRequestError, ServiceResponseError):
                    if created:
                        raise  # a read after the create: retried as reads are
                    unanswered = True
                if unanswered:
                    # azure-core calls a connection dropped after the POST was sent a request
                    # error too: the certificate may exist, and the caller finds it.
                    raise TransientError("LostResponse", f"create certificate {name}: no answer")
                if isinstance(result, KeyVaultCertificate):
                    return result
            operation = await self.client.get_certificate_operation(name)
            if operation.status != "completed":  # e.g. a CA that has not issued it yet
                raise TransientError(
                    "CertificatePending", f"certificate {name}: the issuer has not completed it"
                )
            return await self.client.get_certificate(name)

        certificate = await call_azure(
            f"create certificate {name}", create, vault_error, write=True, resend=False
        )
        return _full(certificate)

    async def disable(self, name: str, version: str) -> None:
        """Disable one version: its key can no longer sign, its secret no longer be read.

        Raises ``NotFound``, ``PermissionDenied``, ``TransientError``. Needs
        ``.../certificates/update/action``.
        """
        await call_azure(
            f"disable certificate {name}/{version}",
            lambda: self.client.update_certificate_properties(name, version, enabled=False),
            vault_error,
            write=True,
        )

    async def sign(self, key_id: str, data: bytes) -> bytes:
        """``data`` signed RS256 by the key ``key_id`` (a certificate version's versioned key),
        in the vault: the SHA-256 digest is sent, never the key fetched.

        Raises ``PermissionDenied`` (also for a disabled key), ``TransientError``. Needs
        ``Microsoft.KeyVault/vaults/keys/sign/action``.
        """
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        client = self.crypto(key_id)
        digest = hashlib.sha256(data).digest()
        result = await call_azure(
            f"sign with {key_id}", lambda: client.sign(SignatureAlgorithm.rs256, digest), vault_error
        )
        return bytes(result.signature)
