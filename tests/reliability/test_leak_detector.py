"""The leak detector (tests/leaks.py) catches a secret wherever the service could emit one."""

from __future__ import annotations

import base64
import json
import logging

from azure.keyvault.certificates import CertificateContentType, CertificatePolicy, KeyType
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.test_registration import sample
from tests.emulator.clients import certificate_client, credential, secret_client
from tests.leaks import LeakDetector, find_leaks, known_secrets

log = logging.getLogger("tests.reliability.leaky")


async def test_a_secret_logged_on_purpose_is_caught(
    emulator: RunningEmulator, leak_detector: LeakDetector
) -> None:
    reply = await harness.register(sample("service-client"))
    assert reply["status"] == "succeeded"
    secrets = known_secrets(emulator.admin.issued_secrets(), emulator.settings)
    assert leak_detector.check(secrets) == [], "the service itself leaked"
    issued = next(s for s in emulator.admin.issued_secrets() if s not in emulator.settings.values())

    log.debug("value=%s", issued)  # in args, at DEBUG, on a logger nobody configured
    log.info("extra", extra={"detail": {"nested": [f"prefix{issued}suffix"]}})  # in an extra field
    try:
        raise RuntimeError(f"boom {issued}")
    except RuntimeError:
        log.warning("failed", exc_info=True)  # in a formatted traceback
    leaks = leak_detector.check(secrets)

    assert len(leaks) == 3
    assert {leak.hint for leak in leaks} == {issued[:3]}
    assert all(issued not in str(leak) for leak in leaks)  # the report never repeats the value
    leak_detector.forget_logs()  # so that this test's own teardown check passes


def test_every_place_the_detector_reads() -> None:
    secret = "Zx8Q~abcdefghijklmnopqrstuvwxyz0123456789"
    detector = LeakDetector()
    detector.start()
    try:
        harness.outputs.append(f'{{"status": "failed", "errors": [{{"message": "{secret}"}}]}}')
        harness.failures.append(f"Traceback ...\nValueError: {secret}")
        harness.dead_letters.append(f"MaxDeliveryCountExceeded: {secret}")
        logging.getLogger("azure.core").debug("header %r", {"Authorization": secret})
        leaks = detector.check({secret}, extra=[("the test's failure report", f"E  assert {secret!r}")])
    finally:
        detector.stop()
        del harness.outputs[-1:], harness.failures[-1:], harness.dead_letters[-1:]
    assert sorted(leak.where.split(" #")[0].split(" (")[0] for leak in leaks) == [
        "a dead-letter reason",
        "a log record",
        "a raised exception",
        "function output",
        "the test's failure report",
    ]


def test_short_values_and_near_misses_are_not_leaks() -> None:
    secret = "Zx8Q~abcdefghijklmnopqrstuvwxyz0123456789"
    texts = [
        ("hint", "hint Zx8"),
        ("one character short", secret[:-1]),
        ("test data stored in the vault", "value v first"),
    ]
    assert find_leaks(texts, {secret, "v", "first"}) == []
    assert [leak.where for leak in find_leaks([("embedded", f"x{secret}y")], {secret})] == ["embedded"]


def test_a_pem_private_key_block_is_a_leak_wherever_it_appears() -> None:
    """Whoever made the key, in whatever PEM form, raw or escaped in JSON; a certificate's PEM
    block is no leak."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    blocks = {
        "pkcs8": rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "traditional": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode(),
        "encrypted": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ).decode(),
        "ec": ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode(),
    }
    texts = [(name, f"reply: {block}") for name, block in blocks.items()]
    texts.append(("in a JSON body", json.dumps({"value": blocks["pkcs8"]})))
    texts.append(("a public key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg...\n-----END PUBLIC KEY-----"))
    texts.append(("a certificate", "-----BEGIN CERTIFICATE-----\nMIIDKDCCAhCg...\n-----END CERTIFICATE-----"))

    leaks = find_leaks(texts, set())

    assert [leak.where for leak in leaks] == ["pkcs8", "traditional", "encrypted", "ec", "in a JSON body"]
    assert all(str(leak).startswith("a PEM private key (-----BEGIN...) appears in") for leak in leaks)


async def test_a_certificates_private_key_and_pfx_are_known_and_caught(
    emulator: RunningEmulator, leak_detector: LeakDetector
) -> None:
    """The emulator lists the private key it generates for a certificate (the base64 of its
    PKCS#8 DER) and an exportable certificate's PFX among the values the detector looks for."""
    s = emulator.settings
    policy = CertificatePolicy(
        issuer_name="Self",
        subject="CN=leaky",
        exportable=True,
        key_type=KeyType.rsa,
        key_size=2048,
        content_type=CertificateContentType.pkcs12,
        validity_in_months=12,
    )
    async with (
        credential(s) as cred,
        certificate_client(s, cred) as certificates,
        secret_client(s, cred) as secrets,
    ):
        await certificates.create_certificate("leaky", policy)
        pfx = (await secrets.get_secret("leaky")).value or ""
    private_key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx), None)
    assert private_key is not None
    pkcs8 = base64.b64encode(
        private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ).decode()
    issued = set(emulator.admin.issued_secrets())
    assert pkcs8 in issued and pfx in issued

    secrets_known = known_secrets(issued, s)
    log.info("key %s", pkcs8)
    log.info("body", extra={"response": {"value": pfx}})
    leaks = leak_detector.check(secrets_known)

    assert len(leaks) == 2
    assert {leak.hint for leak in leaks} == {pkcs8[:3], pfx[:3]}
    leak_detector.forget_logs()  # so that this test's own teardown check passes
