"""Key Vault certificates: the data plane azure-keyvault-certificates 4.12 talks to.

``CertificateStore`` holds the certificates (their versions, one policy each, the pending
operation), the vault's issuers and an emulator CA per issuer; it shares the vault's secrets
(emulator.keyvault) and keys (emulator.keyvault_keys) as Key Vault does: a certificate version
``v`` of ``n`` is also key ``n/v`` (its private key, which signs in the vault) and secret ``n/v``
(*managed*: the certificate as PFX or PEM, with the private key only when the policy says it is
exportable). ``routes`` puts the REST API in front of it, behind the secrets' challenge, token
and api-version checks.

The quirks imitated, as Key Vault shows them (azure-sdk-for-js's recorded sessions, Microsoft's
about-certificates and how-to-export-certificate):
- create answers 202 with a CertificateOperation ``inProgress``, ``Location``
  (``.../pending?api-version=…&request_id=…``) and ``Retry-After: 10``; the operation of issuer
  ``Self`` (or of an issuer configured in the vault) is done at once, so the SDK's poller finds it
  ``completed`` at its first GET of ``/pending`` and never sleeps. Issuer ``Unknown`` stays
  ``inProgress`` (no merge here); any other issuer must exist in the vault, else 404
  ``CertificateIssuerNotFound`` "Issuer not found" (Key Vault's answer to reading a missing issuer).
- each create makes a new version (a new key unless ``reuse_key``); the request's policy becomes
  the certificate's one policy; defaults: exportable RSA 2048 without key reuse, PKCS#12, EKUs
  server and client authentication, key usage digitalSignature + keyEncipherment, 12 months,
  AutoRenew at 80 % (EmailContacts for issuer Unknown, which cannot renew).
- the X.509 certificate is dated from its issuance on the emulator clock: ``nbf`` 10 minutes
  back, ``exp`` ``validity_months`` calendar months after issuance (Key Vault's recorded
  certificates); key usage critical, basic constraints CA false, EKUs, SANs, key identifiers.
- a non-exportable certificate's secret holds the certificate alone ("the private key isn't part
  of the value when it's retrieved as a secret").
- disabling a version disables its key version and its secret version too (the certificate's
  attributes "are mirrored to attributes of the addressable key and secret").
- delete is soft, for the key and the secret too; recover and purge act on all three.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.clock import Clock, add_months
from emulator.errors import PlatformError
from emulator.identity import VAULT_AUDIENCE
from emulator.keyvault import (
    MAX_TAGS,
    RECOVERABLE_DAYS,
    RECOVERY_LEVEL,
    Vault,
    _api_version,
    _bad,
    _body,
    _name,
    _page,
    _reply,
)
from emulator.keyvault_keys import KeyStore, b64url, pkcs8_base64

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
KEY_SIZES = (2048, 3072, 4096)
DEFAULT_EKUS = ("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2")  # server and client authentication
DEFAULT_KEY_USAGE = ("digitalSignature", "keyEncipherment")
# about-certificates, "Mapping X.509 usage to key operations"
KEY_USAGE_OPERATIONS: dict[str, tuple[str, ...]] = {
    "digitalSignature": ("sign", "verify"),
    "nonRepudiation": ("sign", "verify"),
    "keyCertSign": ("sign", "verify"),
    "cRLSign": ("sign", "verify"),
    "keyEncipherment": ("wrapKey", "unwrapKey"),
    "dataEncipherment": ("encrypt", "decrypt"),
    "encipherOnly": ("encrypt",),
    "decipherOnly": ("decrypt",),
    "keyAgreement": (),
}
SAN_FIELDS = ("emails", "dns_names", "upns", "uris", "ipAddresses")
LIFETIME_ACTIONS = ("AutoRenew", "EmailContacts")
NOT_BEFORE_SKEW = 600  # Key Vault dates a certificate 10 minutes before its issuance
RETRY_AFTER = "10"
IN_PROGRESS = (
    "Pending certificate created. Certificate request is in progress. This may take some time "
    "based on the issuer provider. Please check again later."
)
AWAITING_MERGE = "Pending certificate created. Please Perform Merge to complete the request."
# a subject's attribute types, case-insensitive as Key Vault takes them ("cn=MyCert")
_RDN_TYPE = re.compile(r"(^|,)\s*([A-Za-z][A-Za-z0-9.]*)\s*=")
_NAME_TYPES = {
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "T": NameOID.TITLE,
    "G": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
}
_KEY_USAGE_FLAGS = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}


def _not_found(name: str) -> PlatformError:
    return PlatformError(404, "CertificateNotFound", f"Certificate not found: {name}", service="keyvault")


def _deleted_not_found(name: str) -> PlatformError:
    return PlatformError(
        404, "CertificateNotFound", f"Deleted Certificate not found: {name}", service="keyvault"
    )


def _issuer_not_found() -> PlatformError:
    return PlatformError(404, "CertificateIssuerNotFound", "Issuer not found", service="keyvault")


def _conflict(message: str, inner_code: str | None = None) -> PlatformError:
    return PlatformError(409, "Conflict", message, service="keyvault", inner_code=inner_code)


def generate_rsa(key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


# -- the policy ----------------------------------------------------------------------------


def _section(policy: dict[str, Any], name: str) -> dict[str, Any]:
    value = policy.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{name} must be an object.")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{what} must be a list of strings.")
    return list(value)


def subject_name(text: str) -> x509.Name:
    """An X.500 name as Key Vault's policies write it ("CN=app-x, O=Contoso", any case)."""
    normalized = _RDN_TYPE.sub(lambda m: m.group(1) + m.group(2).upper() + "=", text.strip())
    try:
        return x509.Name.from_rfc4514_string(normalized, _NAME_TYPES)
    except ValueError:
        raise _bad(f"The subject name {text} is not a valid X.500 distinguished name.") from None


def complete_policy(requested: dict[str, Any], now: int, created: int | None = None) -> dict[str, Any]:
    """The policy Key Vault keeps: ``requested`` checked and completed with its defaults."""
    key_props = _section(requested, "key_props")
    kty = key_props.get("kty") or "RSA"
    if kty not in ("RSA", "RSA-HSM"):
        raise _bad(f"Key type {kty} is not supported by this emulator (RSA and RSA-HSM only).")
    key_size = key_props.get("key_size") or 2048
    if isinstance(key_size, bool) or key_size not in KEY_SIZES:
        raise _bad(f"Invalid key size {key_size} for an RSA key: 2048, 3072 or 4096.")
    if key_props.get("crv") is not None:
        raise _bad("A curve applies to EC keys only.")
    exportable = key_props.get("exportable")
    if exportable is None:
        exportable = kty == "RSA"
    if not isinstance(exportable, bool) or (exportable and kty == "RSA-HSM"):
        raise _bad("exportable must be a boolean, and HSM keys are not exportable.")
    reuse_key = key_props.get("reuse_key") or False
    if not isinstance(reuse_key, bool):
        raise _bad("reuse_key must be a boolean.")

    content_type = _section(requested, "secret_props").get("contentType") or PKCS12
    if content_type not in (PKCS12, PEM):
        raise _bad(f"Invalid secret content type {content_type}: {PKCS12} or {PEM}.")

    x509_props = _section(requested, "x509_props")
    subject = x509_props.get("subject") or ""
    if not isinstance(subject, str):
        raise _bad("The subject must be a string.")
    raw_sans = x509_props.get("sans") or {}
    if not isinstance(raw_sans, dict) or set(raw_sans) - set(SAN_FIELDS):
        raise _bad(f"sans may hold {', '.join(SAN_FIELDS)}.")
    sans = {k: _strings(v, f"sans.{k}") for k, v in raw_sans.items() if v}
    if not subject and not sans:
        raise _bad("Either the subject or one of the subject alternative names is required.")
    if subject:
        subject_name(subject)
    ekus = _strings(x509_props.get("ekus") or list(DEFAULT_EKUS), "ekus")
    for eku in ekus:
        try:
            x509.ObjectIdentifier(eku)
        except ValueError:
            raise _bad(f"Invalid extended key usage {eku}.") from None
    key_usage = _strings(x509_props.get("key_usage") or list(DEFAULT_KEY_USAGE), "key_usage")
    unknown_usage = [u for u in key_usage if u not in KEY_USAGE_OPERATIONS]
    if unknown_usage:
        raise _bad(f"Invalid key usage {unknown_usage[0]}.")
    if {"encipherOnly", "decipherOnly"} & set(key_usage) and "keyAgreement" not in key_usage:
        raise _bad("encipherOnly and decipherOnly need keyAgreement.")
    _alternative_names(sans)  # each one must make a name
    validity = x509_props.get("validity_months") or 12
    if isinstance(validity, bool) or not isinstance(validity, int) or validity < 1:
        raise _bad("validity_months must be a whole number of months, 1 or more.")

    issuer = dict(_section(requested, "issuer"))
    issuer["name"] = issuer.get("name") or "Unknown"
    if not isinstance(issuer["name"], str):
        raise _bad("The issuer name must be a string.")
    renewal = "EmailContacts" if issuer["name"].lower() == "unknown" else "AutoRenew"
    actions = requested.get("lifetime_actions")
    if actions is None:
        actions = [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": renewal}}]
    if not isinstance(actions, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("trigger"), dict)
        and isinstance(a.get("action"), dict)
        and a["action"].get("action_type") in LIFETIME_ACTIONS
        for a in actions
    ):
        raise _bad(
            f"Each lifetime action needs a trigger and an action_type ({', '.join(LIFETIME_ACTIONS)})."
        )

    enabled = _section(requested, "attributes").get("enabled", True)
    return {
        "key_props": {"exportable": exportable, "kty": kty, "key_size": key_size, "reuse_key": reuse_key},
        "secret_props": {"contentType": content_type},
        "x509_props": {
            "subject": subject,
            "sans": sans,
            "ekus": ekus,
            "key_usage": key_usage,
            "validity_months": validity,
            "basic_constraints": {"ca": False},
        },
        "lifetime_actions": actions,
        "issuer": issuer,
        "attributes": {"enabled": bool(enabled), "created": created or now, "updated": now},
    }


def _merged(policy: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` over ``policy``: Key Vault's update sets the members given, section by section."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in policy.items()}
    for name, value in patch.items():
        if value is None or name == "id":
            continue
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name].update({k: v for k, v in value.items() if v is not None})
        else:
            merged[name] = value
    return merged


def key_operations(policy: dict[str, Any]) -> tuple[str, ...]:
    operations = (op for usage in policy["x509_props"]["key_usage"] for op in KEY_USAGE_OPERATIONS[usage])
    return tuple(dict.fromkeys(operations))


# -- X.509 ---------------------------------------------------------------------------------


def _utf8_string(value: str) -> bytes:
    """DER UTF8String, the value of a UPN's otherName (1.3.6.1.4.1.311.20.2.3)."""
    data = value.encode()
    size = len(data)
    width = (size.bit_length() + 7) // 8
    length = bytes([size]) if size < 128 else bytes([0x80 | width]) + size.to_bytes(width, "big")
    return b"\x0c" + length + data


def _alternative_names(sans: dict[str, list[str]]) -> list[x509.GeneralName]:
    upn = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
    try:
        return [
            *(x509.DNSName(v) for v in sans.get("dns_names", [])),
            *(x509.RFC822Name(v) for v in sans.get("emails", [])),
            *(x509.UniformResourceIdentifier(v) for v in sans.get("uris", [])),
            *(x509.OtherName(upn, _utf8_string(v)) for v in sans.get("upns", [])),
            *(x509.IPAddress(ipaddress.ip_address(v)) for v in sans.get("ipAddresses", [])),
        ]
    except ValueError as error:
        raise _bad(f"Invalid subject alternative name: {error}") from None


def issue(
    policy: dict[str, Any],
    public_key: rsa.RSAPublicKey,
    issued: int,
    signer: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
) -> x509.Certificate:
    """The X.509 certificate ``policy`` describes for ``public_key``, issued at ``issued``;
    self-signed when ``issuer`` is None, else by the CA ``issuer`` with ``signer``."""
    props = policy["x509_props"]
    subject = subject_name(props["subject"]) if props["subject"] else x509.Name([])
    at = dt.datetime.fromtimestamp(issued, dt.UTC)
    usage = {flag: name in props["key_usage"] for name, flag in _KEY_USAGE_FLAGS.items()}
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1)
        .not_valid_before(at - dt.timedelta(seconds=NOT_BEFORE_SKEW))
        .not_valid_after(add_months(at, props["validity_months"]))
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if props["ekus"]:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(e) for e in props["ekus"]]), critical=False
        )
    alternative = _alternative_names(props["sans"])
    if alternative:  # critical when the subject is empty (RFC 5280 4.2.1.6)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative), critical=not props["subject"]
        )
    return builder.sign(signer, hashes.SHA256())


def _request(policy: dict[str, Any], private_key: rsa.RSAPrivateKey) -> bytes:
    """The CSR the pending operation shows (DER)."""
    props = policy["x509_props"]
    subject = subject_name(props["subject"]) if props["subject"] else x509.Name([])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(private_key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def secret_value(
    content_type: str,
    private_key: rsa.RSAPrivateKey | None,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
) -> str:
    """The certificate's secret: PFX (base64, no password) or PEM (private key first, then the
    certificates); ``private_key`` None for a non-exportable certificate."""
    if content_type == PEM:
        parts = []
        if private_key is not None:
            parts.append(
                private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode()
            )
        parts += [c.public_bytes(serialization.Encoding.PEM).decode() for c in (certificate, *chain)]
        return "".join(parts)
    pfx = pkcs12.serialize_key_and_certificates(
        None, private_key, certificate, chain or None, serialization.NoEncryption()
    )
    return base64.b64encode(pfx).decode()


# -- state ---------------------------------------------------------------------------------


@dataclass
class CertificateVersion:
    version: str
    cer: bytes | None  # None while the operation is pending
    enabled: bool
    nbf: int
    exp: int
    created: int
    updated: int
    tags: dict[str, str] | None


@dataclass
class Operation:
    request_id: str
    issuer: dict[str, Any]
    csr: bytes
    completed: bool


@dataclass
class Certificate:
    name: str
    policy: dict[str, Any]
    versions: list[CertificateVersion] = field(default_factory=list)  # in creation order
    operation: Operation | None = None
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_date is not None

    @property
    def latest(self) -> CertificateVersion:
        """The newest issued version; the pending one while none is issued."""
        issued = [v for v in self.versions if v.cer is not None]
        return issued[-1] if issued else self.versions[-1]

    def find(self, version: str) -> CertificateVersion | None:
        return next((v for v in self.versions if v.version == version), None)


@dataclass
class Issuer:
    name: str
    provider: str
    account_id: str | None  # the password is never kept: nothing here may hand it out
    org_details: dict[str, Any] | None
    enabled: bool
    created: int
    updated: int


@dataclass(frozen=True)
class Plan:
    """What a create will make, checked before its key is generated (off the event loop)."""

    policy: dict[str, Any]
    enabled: bool
    tags: dict[str, str] | None
    reused_key: rsa.RSAPrivateKey | None = field(repr=False)


class CertificateStore:
    """One vault's certificates and issuers; its secrets and keys are ``vault``'s and ``keys``."""

    def __init__(self, clock: Clock, vault: Vault, keys: KeyStore) -> None:
        self.clock = clock
        self.vault = vault
        self.keys = keys
        self._certificates: dict[str, Certificate] = {}  # by lower-cased name
        self._issuers: dict[str, Issuer] = {}
        self._authorities: dict[str, tuple[rsa.RSAPrivateKey, x509.Certificate]] = {}
        self._material: list[str] = []  # every private key generated, PKCS#8 DER in base64

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def snapshot(self) -> list[dict[str, Any]]:
        """Every certificate with its versions' public facts (thumbprint, validity, enabled,
        tags), for tests to compare; never key material."""
        self._purge_due()
        return [
            {
                "name": certificate.name,
                "deleted": certificate.is_deleted,
                "versions": [
                    {
                        "version": v.version,
                        "x5t": None if v.cer is None else hashlib.sha1(v.cer).hexdigest().upper(),  # noqa: S324
                        "enabled": v.enabled,
                        "nbf": v.nbf,
                        "exp": v.exp,
                        "created": v.created,
                        "tags": v.tags or {},
                    }
                    for v in certificate.versions
                ],
            }
            for certificate in self._certificates.values()
        ]

    def _purge_due(self) -> None:
        now = self._now()
        for name, certificate in list(self._certificates.items()):
            if certificate.scheduled_purge_date is not None and certificate.scheduled_purge_date <= now:
                del self._certificates[name]

    def _live(self, name: str) -> Certificate:
        self._purge_due()
        certificate = self._certificates.get(name.lower())
        if certificate is None or certificate.is_deleted or not certificate.versions:
            raise _not_found(name)
        return certificate

    def _deleted(self, name: str) -> Certificate:
        self._purge_due()
        certificate = self._certificates.get(name.lower())
        if certificate is None or not certificate.is_deleted:
            raise _deleted_not_found(name)
        return certificate

    # -- create -------------------------------------------------------------------------

    def plan(self, name: str, body: dict[str, Any]) -> Plan:
        """Check a create (name, policy, issuer, attributes, tags) before any key is made."""
        certificate = self._check_name(name)
        requested = body.get("policy")
        if requested is None and certificate is not None:
            policy = certificate.policy
        elif isinstance(requested, dict):
            policy = complete_policy(requested, self._now())
        else:
            raise _bad("The certificate policy is required.")
        self._check_issuer(policy)
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict) or not isinstance(attributes.get("enabled", True), bool):
            raise _bad("attributes.enabled must be a boolean.")
        reused = None
        if policy["key_props"]["reuse_key"] and certificate is not None:
            reused = self.keys.private_key(name)
        return Plan(policy, attributes.get("enabled", True), _tags(body.get("tags")), reused)

    def _check_name(self, name: str) -> Certificate | None:
        self._purge_due()
        certificate = self._certificates.get(name.lower())
        if certificate is not None and certificate.is_deleted:
            raise _conflict(
                f"Certificate {name} is currently in a deleted but recoverable state, and its name cannot be "
                "reused; in this state, the certificate can only be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        if certificate is not None and certificate.operation and not certificate.operation.completed:
            raise _conflict(f"There is a pending certificate operation for {name}.")
        self.vault.reserve_managed(name)
        return certificate

    def _check_issuer(self, policy: dict[str, Any]) -> None:
        issuer = policy["issuer"]["name"].lower()
        if issuer not in ("self", "unknown") and issuer not in self._issuers:
            raise _issuer_not_found()

    def create(self, name: str, plan: Plan, private_key: rsa.RSAPrivateKey) -> Certificate:
        """A new version of ``name`` with ``private_key``: issued at once unless its issuer is
        ``Unknown``, whose operation stays pending."""
        existing = self._check_name(name)  # again: the key was made while other requests ran
        self._check_issuer(plan.policy)
        policy, now = plan.policy, self._now()
        issuer = policy["issuer"]["name"].lower()
        csr = _request(policy, private_key)
        if issuer == "self":
            issued: tuple[x509.Certificate, list[x509.Certificate]] | None = (
                issue(policy, private_key.public_key(), now, private_key, None),
                [],
            )
        elif issuer != "unknown":
            ca_key, ca_cert = self._authority(issuer)
            issued = issue(policy, private_key.public_key(), now, ca_key, ca_cert), [ca_cert]
        else:
            issued = None
        # from here on, nothing is refused
        self._material.append(pkcs8_base64(private_key))
        certificate = existing or self._certificates.setdefault(name.lower(), Certificate(name, policy))
        certificate.policy = policy
        certificate.operation = Operation(uuid.uuid4().hex, dict(policy["issuer"]), csr, issued is not None)
        if issued is None:  # dated as the request is, until someone merges a certificate in
            at = dt.datetime.fromtimestamp(now, dt.UTC)
            expires = int(add_months(at, policy["x509_props"]["validity_months"]).timestamp())
            pending = CertificateVersion(
                uuid.uuid4().hex, None, False, now - NOT_BEFORE_SKEW, expires, now, now, plan.tags
            )
            certificate.versions.append(pending)
            return certificate
        cert, chain = issued
        version = CertificateVersion(
            uuid.uuid4().hex,
            cert.public_bytes(serialization.Encoding.DER),
            plan.enabled,
            int(cert.not_valid_before_utc.timestamp()),
            int(cert.not_valid_after_utc.timestamp()),
            now,
            now,
            plan.tags,
        )
        certificate.versions.append(version)
        exportable = policy["key_props"]["exportable"]
        content_type = policy["secret_props"]["contentType"]
        self.keys.add(
            name,
            version.version,
            private_key,
            kty=policy["key_props"]["kty"],
            key_ops=key_operations(policy),
            enabled=version.enabled,
            nbf=version.nbf,
            exp=version.exp,
        )
        self.vault.add_managed(
            name,
            version.version,
            secret_value(content_type, private_key if exportable else None, cert, chain),
            content_type=content_type,
            enabled=version.enabled,
            nbf=version.nbf,
            exp=version.exp,
            # a PFX, one line of base64, is found as it is; a PEM's key by its BEGIN line
            holds_private_key=exportable and content_type == PKCS12,
        )
        return certificate

    def _authority(self, issuer: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """The emulator's CA for a configured issuer (made on first use): it signs that issuer's
        certificates at once, where Key Vault would order them from the issuer's provider."""
        if issuer not in self._authorities:
            key = generate_rsa(2048)
            self._material.append(pkcs8_base64(key))
            name = x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, f"{self._issuers[issuer].name} (emulator CA)")]
            )
            now = self.clock.now()
            ca = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(add_months(now, 120))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            self._authorities[issuer] = (key, ca)
        return self._authorities[issuer]

    # -- read and update ------------------------------------------------------------------

    def get(self, name: str, version: str = "") -> tuple[Certificate, CertificateVersion]:
        certificate = self._live(name)
        if not version:
            return certificate, certificate.latest
        found = certificate.find(version)
        if found is None:
            raise _not_found(f"{name}/{version}")
        return certificate, found

    def operation(self, name: str) -> Certificate:
        self._purge_due()
        certificate = self._certificates.get(name.lower())
        if certificate is None or certificate.is_deleted or certificate.operation is None:
            raise PlatformError(
                404, "CertificateNotFound", f"Pending certificate not found: {name}", service="keyvault"
            )
        return certificate

    def certificates(self, include_pending: bool) -> list[Certificate]:
        self._purge_due()
        return sorted(
            (
                c
                for c in self._certificates.values()
                if not c.is_deleted and c.versions and (include_pending or c.latest.cer is not None)
            ),
            key=lambda c: c.name.lower(),
        )

    def versions(self, name: str) -> tuple[Certificate | None, list[CertificateVersion]]:
        """Key Vault lists no versions, rather than 404, for a name it does not hold."""
        self._purge_due()
        certificate = self._certificates.get(name.lower())
        if certificate is None or certificate.is_deleted:
            return None, []
        return certificate, sorted(certificate.versions, key=lambda v: v.version)

    def update(self, name: str, version: str, body: dict[str, Any]) -> tuple[Certificate, CertificateVersion]:
        """enabled (mirrored on the version's key and secret), tags, and the policy."""
        certificate, found = self.get(name, version)
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _bad("attributes must be an object.")
        enabled = attributes.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise _bad("attributes.enabled must be a boolean.")
        tags = _tags(body.get("tags")) if "tags" in body and body["tags"] is not None else found.tags
        policy = body.get("policy")
        if policy is not None:
            self.update_policy(name, policy)
        if enabled is not None and found.cer is not None:
            self.keys.set_enabled(name, found.version, enabled)
            self.vault.update(name, found.version, enabled=enabled)
        found.enabled = found.enabled if enabled is None else enabled
        found.tags = tags
        found.updated = self._now()
        return certificate, found

    def update_policy(self, name: str, patch: Any) -> Certificate:
        certificate = self._live(name)
        if not isinstance(patch, dict):
            raise _bad("The certificate policy must be an object.")
        policy = complete_policy(
            _merged(certificate.policy, patch),
            self._now(),
            created=certificate.policy["attributes"]["created"],
        )
        self._check_issuer(policy)
        certificate.policy = policy
        return certificate

    # -- soft delete ----------------------------------------------------------------------

    def delete(self, name: str) -> Certificate:
        """Soft: the certificate, its key and its secret."""
        certificate = self._live(name)
        now = self._now()
        certificate.deleted_date = now
        certificate.scheduled_purge_date = now + RECOVERABLE_DAYS * 86400
        self.keys.delete(name, certificate.deleted_date, certificate.scheduled_purge_date)
        _unless_missing(lambda: self.vault.delete(name))
        return certificate

    def deleted(self, name: str) -> Certificate:
        return self._deleted(name)

    def deleted_certificates(self) -> list[Certificate]:
        self._purge_due()
        return sorted((c for c in self._certificates.values() if c.is_deleted), key=lambda c: c.name.lower())

    def recover(self, name: str) -> Certificate:
        certificate = self._deleted(name)
        certificate.deleted_date = certificate.scheduled_purge_date = None
        self.keys.recover(name)
        _unless_missing(lambda: self.vault.recover(name))
        return certificate

    def purge(self, name: str) -> None:
        certificate = self._deleted(name)
        del self._certificates[certificate.name.lower()]
        self.keys.purge(name)
        _unless_missing(lambda: self.vault.purge(name))

    # -- issuers --------------------------------------------------------------------------

    def set_issuer(self, name: str, body: dict[str, Any], *, update: bool) -> Issuer:
        """Create or replace (PUT), or change the members given (PATCH, of an existing issuer)."""
        now = self._now()
        existing = self._issuers.get(name.lower())
        if update and existing is None:
            raise _issuer_not_found()
        provider = body.get("provider", existing.provider if existing and update else None)
        if not isinstance(provider, str) or not provider:
            raise _bad("The issuer provider is required.")
        credentials = body.get("credentials")
        if credentials is not None and not isinstance(credentials, dict):
            raise _bad("credentials must be an object.")
        org_details = body.get("org_details")
        if org_details is not None and not isinstance(org_details, dict):
            raise _bad("org_details must be an object.")
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _bad("attributes must be an object.")
        keep = existing if update else None
        issuer = Issuer(
            name=existing.name if existing else name,
            provider=provider,
            account_id=(credentials or {}).get("account_id", keep.account_id if keep else None),
            org_details={"zip": 0, **org_details} if org_details else (keep.org_details if keep else None),
            enabled=bool(attributes.get("enabled", keep.enabled if keep else True)),
            created=existing.created if existing else now,
            updated=now,
        )
        self._issuers[name.lower()] = issuer
        return issuer

    def issuer(self, name: str) -> Issuer:
        found = self._issuers.get(name.lower())
        if found is None:
            raise _issuer_not_found()
        return found

    def issuers(self) -> list[Issuer]:
        return sorted(self._issuers.values(), key=lambda i: i.name.lower())

    def delete_issuer(self, name: str) -> Issuer:
        found = self.issuer(name)
        del self._issuers[name.lower()]
        self._authorities.pop(name.lower(), None)
        return found

    # -- for tests ------------------------------------------------------------------------

    def issued_values(self) -> list[str]:
        """Every private key generated (certificates' and the emulator CAs'), as the base64 of
        its PKCS#8 DER: key material the service must never emit."""
        return list(dict.fromkeys(self._material))


def _unless_missing(action: Callable[[], object]) -> None:
    """The secret of a certificate never issued does not exist: that is no error here."""
    try:
        action()
    except PlatformError as error:
        if error.status != 404:
            raise


def _tags(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad("tags must map strings to strings.")
    if len(value) > MAX_TAGS:
        raise _bad(f"Too many tags: {len(value)}. A maximum of {MAX_TAGS} tags is allowed.")
    return dict(value)


# -- wire format --------------------------------------------------------------------------


def _attributes(v: CertificateVersion) -> dict[str, Any]:
    return {
        "enabled": v.enabled,
        "nbf": v.nbf,
        "exp": v.exp,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    }


def _policy(vault_url: str, certificate: Certificate) -> dict[str, Any]:
    return {"id": f"{vault_url}/certificates/{certificate.name}/policy", **certificate.policy}


def _item(
    vault_url: str, certificate: Certificate, v: CertificateVersion, *, with_version: bool
) -> dict[str, Any]:
    """CertificateItem."""
    body: dict[str, Any] = {
        "id": f"{vault_url}/certificates/{certificate.name}" + (f"/{v.version}" if with_version else ""),
        "attributes": _attributes(v),
    }
    if v.cer is not None:
        body["x5t"] = b64url(hashlib.sha1(v.cer).digest())  # noqa: S324 - x5t is the SHA-1 thumbprint
    if v.tags is not None:
        body["tags"] = v.tags
    return body


def _bundle(vault_url: str, certificate: Certificate, v: CertificateVersion) -> dict[str, Any]:
    """CertificateBundle: kid, sid and cer once issued; the policy; the pending operation's id."""
    body = _item(vault_url, certificate, v, with_version=True)
    if v.cer is not None:
        body["kid"] = f"{vault_url}/keys/{certificate.name}/{v.version}"
        body["sid"] = f"{vault_url}/secrets/{certificate.name}/{v.version}"
        body["cer"] = base64.b64encode(v.cer).decode()
    body["policy"] = _policy(vault_url, certificate)
    if certificate.operation is not None:
        body["pending"] = {"id": f"{vault_url}/certificates/{certificate.name}/pending"}
    return body


def _deleted(vault_url: str, certificate: Certificate, *, item: bool) -> dict[str, Any]:
    """DeletedCertificateBundle (the latest version) or, for lists, DeletedCertificateItem."""
    latest = certificate.latest
    body = (
        _item(vault_url, certificate, latest, with_version=False)
        if item
        else _bundle(vault_url, certificate, latest)
    )
    return {
        "recoveryId": f"{vault_url}/deletedcertificates/{certificate.name}",
        "deletedDate": certificate.deleted_date,
        "scheduledPurgeDate": certificate.scheduled_purge_date,
        **body,
    }


def _operation(vault_url: str, certificate: Certificate, *, accepted: bool = False) -> dict[str, Any]:
    """CertificateOperation: ``status_details`` while in progress, ``target`` once completed;
    ``accepted``: as create answers it, in progress whatever came of it since."""
    operation = certificate.operation
    assert operation is not None
    completed = operation.completed and not accepted
    body: dict[str, Any] = {
        "id": f"{vault_url}/certificates/{certificate.name}/pending",
        "issuer": operation.issuer,
        "csr": base64.b64encode(operation.csr).decode(),
        "cancellation_requested": False,
        "status": "completed" if completed else "inProgress",
    }
    if completed:
        body["target"] = f"{vault_url}/certificates/{certificate.name}"
    else:
        unknown = operation.issuer["name"].lower() == "unknown"
        body["status_details"] = AWAITING_MERGE if unknown else IN_PROGRESS
    body["request_id"] = operation.request_id
    return body


def _issuer(vault_url: str, issuer: Issuer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{vault_url}/certificates/issuers/{issuer.name}",
        "provider": issuer.provider,
    }
    if issuer.account_id is not None:
        body["credentials"] = {"account_id": issuer.account_id}
    if issuer.org_details is not None:
        body["org_details"] = issuer.org_details
    body["attributes"] = {"enabled": issuer.enabled, "created": issuer.created, "updated": issuer.updated}
    return body


Handler = Callable[[Request, CertificateStore, str], Awaitable[Response]]


def routes(
    vault_url: str, identity: IdentityPlatform, current: Callable[[], CertificateStore]
) -> list[BaseRoute]:
    """The certificates' REST API at ``vault_url``; ``current`` gives the store of the moment."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            identity.authenticate(request, (VAULT_AUDIENCE,))
            api_version = _api_version(request)
            return await handler(request, current(), api_version)

        return run

    async def create(request: Request, store: CertificateStore, api_version: str) -> Response:
        name = _name(request)
        plan = store.plan(name, await _body(request))
        private_key = plan.reused_key
        if private_key is None:  # a new key: made off the event loop, it takes a while
            private_key = await run_in_threadpool(generate_rsa, plan.policy["key_props"]["key_size"])
        certificate = store.create(name, plan, private_key)
        operation = certificate.operation
        assert operation is not None
        response = _reply(request, _operation(vault_url, certificate, accepted=True), status=202)
        response.headers["Location"] = (
            f"{vault_url}/certificates/{certificate.name}/pending?api-version={api_version}"
            f"&request_id={operation.request_id}"
        )
        response.headers["Retry-After"] = RETRY_AFTER
        return response

    async def get_operation(request: Request, store: CertificateStore, _: str) -> Response:
        certificate = store.operation(_name(request))
        response = _reply(request, _operation(vault_url, certificate))
        if certificate.operation is not None and not certificate.operation.completed:
            response.headers["Retry-After"] = RETRY_AFTER
        return response

    async def get_certificate(request: Request, store: CertificateStore, _: str) -> Response:
        certificate, version = store.get(_name(request), request.path_params.get("version", ""))
        return _reply(request, _bundle(vault_url, certificate, version))

    async def update_certificate(request: Request, store: CertificateStore, _: str) -> Response:
        name = _name(request)
        certificate, version = store.update(
            name, request.path_params.get("version", ""), await _body(request)
        )
        return _reply(request, _bundle(vault_url, certificate, version))

    async def list_certificates(request: Request, store: CertificateStore, api_version: str) -> Response:
        include_pending = request.query_params.get("includePending", "").lower() == "true"
        keyed = [
            (c.name.lower(), _item(vault_url, c, c.latest, with_version=False))
            for c in store.certificates(include_pending)
        ]
        return _reply(request, _page(request, api_version, keyed))

    async def list_versions(request: Request, store: CertificateStore, api_version: str) -> Response:
        certificate, versions = store.versions(_name(request))
        keyed = (
            [(v.version, _item(vault_url, certificate, v, with_version=True)) for v in versions]
            if certificate
            else []
        )
        return _reply(request, _page(request, api_version, keyed))

    async def get_policy(request: Request, store: CertificateStore, _: str) -> Response:
        certificate, _version = store.get(_name(request))
        return _reply(request, _policy(vault_url, certificate))

    async def update_policy(request: Request, store: CertificateStore, _: str) -> Response:
        certificate = store.update_policy(_name(request), await _body(request))
        return _reply(request, _policy(vault_url, certificate))

    async def delete_certificate(request: Request, store: CertificateStore, _: str) -> Response:
        return _reply(request, _deleted(vault_url, store.delete(_name(request)), item=False))

    async def get_deleted(request: Request, store: CertificateStore, _: str) -> Response:
        return _reply(request, _deleted(vault_url, store.deleted(_name(request)), item=False))

    async def list_deleted(request: Request, store: CertificateStore, api_version: str) -> Response:
        keyed = [(c.name.lower(), _deleted(vault_url, c, item=True)) for c in store.deleted_certificates()]
        return _reply(request, _page(request, api_version, keyed))

    async def recover(request: Request, store: CertificateStore, _: str) -> Response:
        certificate = store.recover(_name(request))
        return _reply(request, _bundle(vault_url, certificate, certificate.latest))

    async def purge(request: Request, store: CertificateStore, _: str) -> Response:
        store.purge(_name(request))
        return _reply(request, None, status=204)

    def issuer_name(request: Request) -> str:
        name: str = request.path_params["issuer"]
        if not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", name):
            raise _bad(f"The request URI contains an invalid name: {name}")
        return name

    async def set_issuer(request: Request, store: CertificateStore, _: str) -> Response:
        update = request.method == "PATCH"
        issuer = store.set_issuer(issuer_name(request), await _body(request), update=update)
        return _reply(request, _issuer(vault_url, issuer))

    async def get_issuer(request: Request, store: CertificateStore, _: str) -> Response:
        return _reply(request, _issuer(vault_url, store.issuer(issuer_name(request))))

    async def delete_issuer(request: Request, store: CertificateStore, _: str) -> Response:
        return _reply(request, _issuer(vault_url, store.delete_issuer(issuer_name(request))))

    async def list_issuers(request: Request, store: CertificateStore, api_version: str) -> Response:
        keyed = [
            (i.name.lower(), {"id": f"{vault_url}/certificates/issuers/{i.name}", "provider": i.provider})
            for i in store.issuers()
        ]
        return _reply(request, _page(request, api_version, keyed))

    # Order matters: "issuers" and the operations under a certificate's name come before
    # the name/version routes they would otherwise match.
    return [
        Route("/certificates", endpoint(list_certificates), methods=["GET"]),
        Route("/certificates/issuers", endpoint(list_issuers), methods=["GET"]),
        Route("/certificates/issuers/{issuer}", endpoint(set_issuer), methods=["PUT", "PATCH"]),
        Route("/certificates/issuers/{issuer}", endpoint(get_issuer), methods=["GET"]),
        Route("/certificates/issuers/{issuer}", endpoint(delete_issuer), methods=["DELETE"]),
        Route("/certificates/{name}", endpoint(get_certificate), methods=["GET"]),
        Route("/certificates/{name}", endpoint(delete_certificate), methods=["DELETE"]),
        Route("/certificates/{name}/create", endpoint(create), methods=["POST"]),
        Route("/certificates/{name}/pending", endpoint(get_operation), methods=["GET"]),
        Route("/certificates/{name}/versions", endpoint(list_versions), methods=["GET"]),
        Route("/certificates/{name}/policy", endpoint(get_policy), methods=["GET"]),
        Route("/certificates/{name}/policy", endpoint(update_policy), methods=["PATCH"]),
        # the SDK asks for the latest version as /certificates/{name}/ (an empty version)
        Route("/certificates/{name}/", endpoint(get_certificate), methods=["GET"]),
        Route("/certificates/{name}/", endpoint(update_certificate), methods=["PATCH"]),
        Route("/certificates/{name}/{version}", endpoint(get_certificate), methods=["GET"]),
        Route("/certificates/{name}/{version}", endpoint(update_certificate), methods=["PATCH"]),
        Route("/deletedcertificates", endpoint(list_deleted), methods=["GET"]),
        Route("/deletedcertificates/{name}", endpoint(get_deleted), methods=["GET"]),
        Route("/deletedcertificates/{name}", endpoint(purge), methods=["DELETE"]),
        Route("/deletedcertificates/{name}/recover", endpoint(recover), methods=["POST"]),
    ]
