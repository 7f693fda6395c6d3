"""The emulated Key Vault's certificates and keys, seen through azure-keyvault-certificates'
CertificateClient and azure-keyvault-keys' KeyClient and CryptographyClient (async): create and
its poller, versions and their keys, the policy, the certificate's managed secret (exportable or
not), signing in the vault, disabling, issuers, soft delete; and Graph's certificate-lifetime
policy met with a certificate made in the vault."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.certificates import (
    CertificateContentType,
    CertificateOperation,
    CertificatePolicy,
    KeyType,
    KeyVaultCertificate,
)
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto import SignatureAlgorithm
from azure.keyvault.secrets.aio import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from msgraph.generated.applications.item.add_key.add_key_post_request_body import AddKeyPostRequestBody
from msgraph.generated.models.application import Application
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from emulator.clock import add_months
from emulator.launcher import RunningEmulator
from tests.emulator.clients import certificate_client, credential, crypto_client, key_client, secret_client
from tests.emulator.graph_helpers import graph, odata_error, upsert_app

UTC = dt.UTC


@dataclass
class Vault:
    """The official clients of one test, on one credential."""

    settings: dict[str, str]
    cred: ClientSecretCredential
    certificates: CertificateClient
    secrets: SecretClient
    keys: KeyClient

    async def sign(self, key_id: str, algorithm: SignatureAlgorithm, digest: bytes) -> bytes:
        async with crypto_client(self.settings, key_id, self.cred) as crypto:
            return bytes((await crypto.sign(algorithm, digest)).signature)


@pytest.fixture
async def vault(emulator: RunningEmulator) -> AsyncIterator[Vault]:
    s = emulator.settings
    async with (
        credential(s) as cred,
        certificate_client(s, cred) as certificates,
        secret_client(s, cred) as secrets,
        key_client(s, cred) as keys,
    ):
        yield Vault(s, cred, certificates, secrets, keys)


def policy(**overrides: Any) -> CertificatePolicy:
    """The service's kind of certificate: self-signed, non-exportable RSA 2048, PKCS#12, a year."""
    settings: dict[str, Any] = {
        "issuer_name": "Self",
        "subject": "CN=app-x",
        "exportable": False,
        "key_type": KeyType.rsa,
        "key_size": 2048,
        "reuse_key": False,
        "content_type": CertificateContentType.pkcs12,
        "validity_in_months": 12,
    }
    return CertificatePolicy(**{**settings, **overrides})


async def create(vault: Vault, name: str, **overrides: Any) -> KeyVaultCertificate:
    made = await vault.certificates.create_certificate(name, policy(**overrides))
    assert isinstance(made, KeyVaultCertificate)
    return made


def x509_of(certificate: KeyVaultCertificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(certificate.cer or b""))


def public_numbers(certificate: KeyVaultCertificate) -> rsa.RSAPublicNumbers:
    key = x509_of(certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key.public_numbers()


def vault_requests(emulator: RunningEmulator, method: str | None = None) -> list[tuple[str, str, int]]:
    return [
        (e["method"], e["path"], e["status"])
        for e in emulator.admin.requests()["entries"]
        if e["service"] == "keyvault" and e["status"] != 401 and (method is None or e["method"] == method)
    ]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- create and its operation ----------------------------------------------------------------


async def test_create_answers_202_in_progress_and_the_poller_finishes_at_its_first_poll(
    emulator: RunningEmulator, vault: Vault
) -> None:
    raw = await vault.certificates.send_request(
        HttpRequest(
            "POST",
            "/certificates/raw/create?api-version=7.6",
            json={"policy": {"x509_props": {"subject": "CN=raw"}, "issuer": {"name": "Self"}}},
        )
    )
    assert raw.status_code == 202
    accepted = raw.json()
    assert accepted["status"] == "inProgress" and accepted["issuer"] == {"name": "Self"}
    assert accepted["id"] == f"{vault.certificates.vault_url.rstrip('/')}/certificates/raw/pending"
    assert raw.headers["Retry-After"] == "10"
    assert raw.headers["Location"] == (
        f"{accepted['id']}?api-version=7.6&request_id={accepted['request_id']}"
    )
    x509.load_der_x509_csr(base64.b64decode(accepted["csr"]))  # the request Key Vault signs

    emulator.admin.clear_requests()
    made = await create(vault, "app-x")
    # the SDK's poller sleeps only after a poll that is still in progress: here it never does
    assert vault_requests(emulator) == [
        ("POST", "/certificates/app-x/create", 202),
        ("GET", "/certificates/app-x/pending", 200),
        ("GET", "/certificates/app-x/", 200),
    ]
    operation = await vault.certificates.get_certificate_operation("app-x")
    assert operation.status == "completed" and operation.issuer_name == "Self"
    assert operation.target == f"{made.properties.vault_url}/certificates/app-x"


async def test_a_self_signed_certificate_follows_its_policy_on_the_emulator_clock(
    emulator: RunningEmulator, vault: Vault
) -> None:
    emulator.admin.set_clock("2030-01-31T12:00:00Z")
    made = await create(vault, "app-x", subject="CN=app-x, O=Contoso", validity_in_months=1)

    props = made.properties
    version = props.version or ""
    base = props.vault_url
    assert made.id == f"{base}/certificates/app-x/{version}" and len(version) == 32
    assert (
        made.key_id == f"{base}/keys/app-x/{version}" and made.secret_id == f"{base}/secrets/app-x/{version}"
    )
    assert props.x509_thumbprint == hashlib.sha1(bytes(made.cer or b"")).digest()
    assert props.enabled is True and props.recovery_level == "Recoverable+Purgeable"

    cert = x509_of(made)
    assert cert.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
            x509.NameAttribute(NameOID.COMMON_NAME, "app-x"),
        ]
    )
    assert cert.issuer == cert.subject
    created = props.created_on
    assert created is not None and created.date() == dt.date(2030, 1, 31)
    # dated 10 minutes back, valid for the policy's calendar months (Jan 31 + 1 month: Feb 28)
    assert cert.not_valid_before_utc == created - dt.timedelta(minutes=10) == props.not_before
    assert cert.not_valid_after_utc == add_months(created, 1) == props.expires_on
    assert cert.not_valid_after_utc.date() == dt.date(2030, 2, 28)
    assert public_numbers(made).n.bit_length() == 2048
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.data_encipherment
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False

    p = made.policy
    assert p is not None
    assert (p.issuer_name, p.subject, p.exportable, p.key_type, p.key_size, p.reuse_key) == (
        "Self",
        "CN=app-x, O=Contoso",
        False,
        KeyType.rsa,
        2048,
        False,
    )
    assert (p.content_type, p.validity_in_months) == (CertificateContentType.pkcs12, 1)
    assert [u.value for u in p.key_usage or []] == ["digitalSignature", "keyEncipherment"]
    assert p.enhanced_key_usage == ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]
    assert [(a.action.value, a.lifetime_percentage) for a in p.lifetime_actions or []] == [("AutoRenew", 80)]


async def test_rsa_3072_is_issued_and_what_the_emulator_cannot_make_is_refused(vault: Vault) -> None:
    made = await create(vault, "bigger", key_size=3072)
    assert public_numbers(made).n.bit_length() == 3072
    for name, bad in (("small", {"key_size": 1024}), ("curved", {"key_type": KeyType.ec, "key_size": None})):
        with pytest.raises(HttpResponseError) as refused:
            await create(vault, name, **bad)
        assert refused.value.status_code == 400
        assert refused.value.error is not None and refused.value.error.code == "BadParameter"


# -- versions, keys and the policy -------------------------------------------------------------


async def test_each_create_is_a_new_version_with_a_new_key_unless_the_policy_reuses_it(vault: Vault) -> None:
    first = await create(vault, "rotating")
    second = await create(vault, "rotating")
    assert first.properties.version != second.properties.version
    assert public_numbers(first) != public_numbers(second)

    latest = await vault.certificates.get_certificate("rotating")
    assert latest.properties.version == second.properties.version
    older = await vault.certificates.get_certificate_version("rotating", first.properties.version or "")
    assert older.cer == first.cer and older.key_id == first.key_id
    # every version's key stays, under the certificate's name and version
    old_key = await vault.keys.get_key("rotating", first.properties.version)
    assert old_key.id == first.key_id and old_key.key.n == public_numbers(first).n.to_bytes(256, "big")

    third = await create(vault, "rotating", reuse_key=True)
    assert public_numbers(third) == public_numbers(second)
    listed = [p async for p in vault.certificates.list_properties_of_certificate_versions("rotating")]
    assert sorted(p.version or "" for p in listed) == sorted(
        v.properties.version or "" for v in (first, second, third)
    )


async def test_versions_and_certificates_are_listed_in_pages(emulator: RunningEmulator, vault: Vault) -> None:
    made = [
        await vault.certificates.create_certificate("paged", policy(), tags={"n": str(n)}) for n in range(3)
    ]
    await create(vault, "other")
    emulator.admin.clear_requests()

    listed = [
        p async for p in vault.certificates.list_properties_of_certificate_versions("paged", max_page_size=2)
    ]
    assert len(listed) == 3  # two pages: the first one's nextLink was followed
    assert [p for _, p, _ in vault_requests(emulator, "GET")] == ["/certificates/paged/versions"] * 2
    by_version = {p.version: p for p in listed}
    for n, certificate in enumerate(made):
        assert isinstance(certificate, KeyVaultCertificate)
        item = by_version[certificate.properties.version]
        assert item.tags == {"n": str(n)} and item.x509_thumbprint == certificate.properties.x509_thumbprint

    names = [p async for p in vault.certificates.list_properties_of_certificates()]
    assert [(p.name, p.version) for p in names] == [("other", None), ("paged", None)]


async def test_the_policy_is_read_and_updated_and_the_next_version_follows_it(vault: Vault) -> None:
    await create(vault, "policed")
    updated = await vault.certificates.update_certificate_policy(
        "policed", policy(validity_in_months=3, content_type=CertificateContentType.pem, exportable=True)
    )
    assert (updated.validity_in_months, updated.content_type, updated.exportable) == (
        3,
        CertificateContentType.pem,
        True,
    )
    read = await vault.certificates.get_certificate_policy("policed")
    assert read.validity_in_months == 3 and read.subject == "CN=app-x"

    # a create without a policy of its own uses the certificate's
    raw = await vault.certificates.send_request(HttpRequest("POST", "/certificates/policed/create", json={}))
    assert raw.status_code == 202
    latest = await vault.certificates.get_certificate("policed")
    cert = x509_of(latest)
    assert cert.not_valid_after_utc == add_months(cert.not_valid_before_utc + dt.timedelta(minutes=10), 3)
    assert (await vault.secrets.get_secret("policed")).properties.content_type == "application/x-pem-file"


# -- the key: signing in the vault -----------------------------------------------------------------


async def test_the_key_is_a_public_jwk_and_signs_rs256_and_ps256_in_the_vault(
    emulator: RunningEmulator, vault: Vault
) -> None:
    made = await create(vault, "signer")
    key = await vault.keys.get_key("signer")
    assert key.id == made.key_id and key.properties.managed is True
    assert key.key.kty == "RSA" and key.key.key_ops == ["sign", "verify", "wrapKey", "unwrapKey"]
    assert key.key.d is None and key.key.p is None  # no private part, ever
    public_key = x509_of(made).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)

    emulator.admin.clear_requests()
    digest = hashlib.sha256(b"the proof of possession").digest()
    async with crypto_client(vault.settings, made.key_id or "", vault.cred) as crypto:
        rs256 = await crypto.sign(SignatureAlgorithm.rs256, digest)
        ps256 = await crypto.sign(SignatureAlgorithm.ps256, digest)
        assert rs256.key_id == made.key_id
        assert (await crypto.verify(SignatureAlgorithm.ps256, digest, ps256.signature)).is_valid
        with pytest.raises(HttpResponseError) as short:
            await crypto.sign(SignatureAlgorithm.rs256, digest[:20])
    # the client read the public key once, then signed in the vault (it cannot sign locally)
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in vault_requests(emulator)] == [
        ("GET", made.properties.version),
        ("POST", "sign"),
        ("POST", "sign"),
        ("POST", "sign"),
    ]
    public_key.verify(rs256.signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    public_key.verify(
        ps256.signature,
        digest,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),  # the salt is the digest's length
        utils.Prehashed(hashes.SHA256()),
    )
    assert short.value.status_code == 400
    assert short.value.error is not None and short.value.error.code == "BadParameter"
    assert short.value.error.message == (
        "Invalid length of 'value': 20 bytes. RS256 requires 32 bytes, encoded with base64url."
    )

    # verify in the vault too
    response = await vault.keys.send_request(
        HttpRequest(
            "POST",
            f"/keys/signer/{made.properties.version}/verify?api-version=7.6",
            json={"alg": "RS256", "digest": b64url(digest), "value": b64url(rs256.signature)},
        )
    )
    assert response.json() == {"value": True}


async def test_disabling_a_version_disables_its_key_and_its_secret(vault: Vault) -> None:
    old = await create(vault, "retiring")
    new = await create(vault, "retiring")
    digest = hashlib.sha256(b"data").digest()
    assert await vault.sign(old.key_id or "", SignatureAlgorithm.rs256, digest)

    disabled = await vault.certificates.update_certificate_properties(
        "retiring", old.properties.version or "", enabled=False, tags={"state": "retired"}
    )
    assert disabled.properties.enabled is False and disabled.properties.tags == {"state": "retired"}

    with pytest.raises(HttpResponseError) as refused:
        await vault.sign(old.key_id or "", SignatureAlgorithm.rs256, digest)
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "Forbidden"
    assert refused.value.error.innererror == {"code": "KeyDisabled"}
    assert refused.value.error.message == "Operation sign is not allowed on a disabled key."
    with pytest.raises(HttpResponseError) as secret:
        await vault.secrets.get_secret("retiring", old.properties.version)
    assert secret.value.status_code == 403
    assert secret.value.error is not None and secret.value.error.innererror == {"code": "SecretDisabled"}
    with pytest.raises(HttpResponseError) as key:
        await vault.keys.get_key("retiring", old.properties.version)
    assert key.value.status_code == 403

    # the other version is untouched
    assert await vault.sign(new.key_id or "", SignatureAlgorithm.rs256, digest)
    assert (await vault.certificates.get_certificate("retiring")).properties.enabled is True


# -- the certificate's secret --------------------------------------------------------------------


async def test_an_exportable_certificates_secret_is_its_pfx_with_the_key_or_its_pem(vault: Vault) -> None:
    made = await create(vault, "portable", exportable=True)
    secret = await vault.secrets.get_secret("portable")
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.managed is True and secret.properties.key_id == made.key_id
    assert secret.id == made.secret_id
    private_key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert cert is not None and cert.public_bytes(serialization.Encoding.DER) == made.cer
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.public_key().public_numbers() == public_numbers(made)

    pem_made = await create(vault, "portable-pem", exportable=True, content_type=CertificateContentType.pem)
    pem = (await vault.secrets.get_secret("portable-pem")).value or ""
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    pem_key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(pem_key, rsa.RSAPrivateKey)
    assert pem_key.public_key().public_numbers() == public_numbers(pem_made)
    assert (
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER) == pem_made.cer
    )


async def test_a_non_exportable_certificates_secret_holds_the_certificate_alone(vault: Vault) -> None:
    """how-to-export-certificate: "the private key isn't part of the value when it's retrieved
    as a secret"."""
    made = await create(vault, "locked")
    secret = await vault.secrets.get_secret("locked")
    assert secret.properties.content_type == "application/x-pkcs12" and secret.properties.managed is True
    private_key, _, certificates = pkcs12.load_key_and_certificates(
        base64.b64decode(secret.value or ""), None
    )
    assert private_key is None
    assert [c.public_bytes(serialization.Encoding.DER) for c in certificates] == [made.cer]

    pem_made = await create(vault, "locked-pem", content_type=CertificateContentType.pem)
    pem = (await vault.secrets.get_secret("locked-pem")).value or ""
    assert "PRIVATE KEY" not in pem and pem.count("-----BEGIN CERTIFICATE-----") == 1
    assert (
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER) == pem_made.cer
    )


async def test_a_certificates_secret_cannot_be_set_and_a_secrets_name_takes_no_certificate(
    vault: Vault,
) -> None:
    await create(vault, "managed")
    with pytest.raises(HttpResponseError) as refused:
        await vault.secrets.set_secret("managed", "overwritten-value")
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "Forbidden"
    assert len([p async for p in vault.secrets.list_properties_of_secret_versions("managed")]) == 1

    await vault.secrets.set_secret("plain", "plain-secret-value")
    with pytest.raises(HttpResponseError) as taken:
        await create(vault, "plain")
    assert taken.value.status_code == 409


# -- issuers -------------------------------------------------------------------------------------


async def test_issuers_self_unknown_configured_and_missing(vault: Vault) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        await create(vault, "ordered", issuer_name="no-such-issuer")
    assert missing.value.error is not None and missing.value.error.code == "CertificateIssuerNotFound"
    assert missing.value.error.message == "Issuer not found"

    # Unknown: the operation stays in progress until someone merges a certificate in
    pending = await vault.certificates.create_certificate("outside", policy(issuer_name="Unknown"))
    assert isinstance(pending, CertificateOperation)
    assert pending.status == "inProgress" and pending.issuer_name == "Unknown"
    again = await vault.certificates.get_certificate_operation("outside")
    assert again.status == "inProgress" and again.csr
    assert [p.name async for p in vault.certificates.list_properties_of_certificates()] == []
    assert [
        p.name async for p in vault.certificates.list_properties_of_certificates(include_pending=True)
    ] == ["outside"]

    issuer = await vault.certificates.create_issuer("contoso-ca", "Test", account_id="keyvaultuser")
    assert issuer.name == "contoso-ca" and issuer.provider == "Test" and issuer.account_id == "keyvaultuser"
    assert (await vault.certificates.get_issuer("contoso-ca")).provider == "Test"
    signed = await create(vault, "ordered", issuer_name="contoso-ca", exportable=True)
    cert = x509_of(signed)
    assert cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "contoso-ca (emulator CA)"
    secret = await vault.secrets.get_secret("ordered")
    _, leaf, chain = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert leaf is not None and [c.subject for c in chain] == [cert.issuer]
    ca_key = chain[0].public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())


# -- soft delete -----------------------------------------------------------------------------------


async def test_delete_is_soft_for_the_certificate_its_key_and_its_secret(vault: Vault) -> None:
    made = await create(vault, "doomed")
    deleted = await vault.certificates.delete_certificate("doomed")
    assert deleted.recovery_id == f"{made.properties.vault_url}/deletedcertificates/doomed"
    assert deleted.deleted_on is not None and deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_on == dt.timedelta(days=90)
    for read in (
        vault.certificates.get_certificate("doomed"),
        vault.secrets.get_secret("doomed"),
        vault.keys.get_key("doomed"),
    ):
        with pytest.raises(ResourceNotFoundError):
            await read
    with pytest.raises(HttpResponseError) as reused:
        await create(vault, "doomed")
    assert reused.value.status_code == 409

    recovered = await vault.certificates.recover_deleted_certificate("doomed")
    assert recovered.properties.version == made.properties.version
    assert (await vault.keys.get_key("doomed")).id == made.key_id
    assert (await vault.secrets.get_secret("doomed")).properties.managed is True

    await vault.certificates.delete_certificate("doomed")
    await vault.certificates.purge_deleted_certificate("doomed")
    with pytest.raises(ResourceNotFoundError):
        await vault.certificates.get_deleted_certificate("doomed")
    assert (await create(vault, "doomed")).properties.version != made.properties.version


# -- Graph: the tenant's certificate-lifetime policy, with certificates from the vault -----------------


def _key_credential(certificate: KeyVaultCertificate) -> KeyCredential:
    return KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=bytes(certificate.cer or b""))


async def _proof(vault: Vault, certificate: KeyVaultCertificate, app_object_id: str) -> str:
    """addKey's proof of possession, an RS256 JWT signed in the vault with the certificate's key."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5t": b64url(certificate.properties.x509_thumbprint or b"")}
    claims = {
        "aud": "00000002-0000-0000-c000-000000000000",
        "iss": app_object_id,
        "nbf": now,
        "exp": now + 600,
    }
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    digest = hashlib.sha256(signing_input.encode()).digest()
    signature = await vault.sign(certificate.key_id or "", SignatureAlgorithm.rs256, digest)
    return f"{signing_input}.{b64url(signature)}"


async def test_graph_refuses_new_key_credentials_that_outlive_the_certificate_lifetime_policy(
    emulator: RunningEmulator, vault: Vault
) -> None:
    short = await create(vault, "short-lived", validity_in_months=3)
    long = await create(vault, "long-lived", validity_in_months=12)
    emulator.admin.policy(maxCertificateLifetime="P180D")
    async with graph(emulator) as client:
        app = await upsert_app(client, "certified-by-vault")
        item = client.applications.by_application_id(app.id or "")

        with pytest.raises(ODataError) as too_long:
            await item.patch(Application(key_credentials=[_key_credential(long)]))
        assert odata_error(too_long.value)[:2] == (400, "CredentialInvalidLifetimeAsPerAppPolicy")
        await item.patch(Application(key_credentials=[_key_credential(short)]))
        read = await item.get()
        kept = read.key_credentials or [] if read else []
        assert len(kept) == 1

        # addKey, its proof signed in the vault by the certificate already on the app
        with pytest.raises(ODataError) as refused:
            await item.add_key.post(
                AddKeyPostRequestBody(
                    key_credential=_key_credential(long), proof=await _proof(vault, short, app.id or "")
                )
            )
        assert odata_error(refused.value)[:2] == (400, "CredentialInvalidLifetimeAsPerAppPolicy")

        # only new credentials are checked: one kept by its keyId passes a tighter policy
        emulator.admin.policy(maxCertificateLifetime="P30D")
        await item.patch(Application(key_credentials=[KeyCredential(key_id=kept[0].key_id)]))
        with pytest.raises(ODataError) as tighter:
            await item.patch(
                Application(key_credentials=[KeyCredential(key_id=kept[0].key_id), _key_credential(short)])
            )
        assert odata_error(tighter.value)[:2] == (400, "CredentialInvalidLifetimeAsPerAppPolicy")

        emulator.admin.policy(maxCertificateLifetime=None)
        added = await item.add_key.post(
            AddKeyPostRequestBody(
                key_credential=_key_credential(long), proof=await _proof(vault, short, app.id or "")
            )
        )
        assert added is not None and added.key_id
        read = await item.get()
        assert read is not None and len(read.key_credentials or []) == 2
