"""Certificates (first through PATCH keyCredentials, then addKey with a proof-of-possession
JWT) and owners, through msgraph-sdk."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from msgraph.generated.applications.item.add_key.add_key_post_request_body import AddKeyPostRequestBody
from msgraph.generated.models.application import Application
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate

from emulator.launcher import RunningEmulator
from tests.emulator.graph_helpers import graph, odata_error, upsert_app


def _certificate(name: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.DER)


def _credential(der: bytes) -> KeyCredential:
    return KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=der)  # kiota writes bytes as base64


def _proof(key: rsa.RSAPrivateKey, app_object_id: str) -> str:
    now = int(time.time())
    claims = {
        "aud": "00000002-0000-0000-c000-000000000000",
        "iss": app_object_id,
        "nbf": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, key, algorithm="RS256")


async def test_first_certificate_by_patch_then_add_key_with_proof(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "certified")
        item = client.applications.by_application_id(app.id or "")
        first_key, first_der = _certificate("first")
        second_key, second_der = _certificate("second")
        with pytest.raises(ODataError) as no_cert:  # nothing to prove possession of yet
            await item.add_key.post(
                AddKeyPostRequestBody(
                    key_credential=_credential(second_der), proof=_proof(second_key, app.id or "")
                )
            )
        assert odata_error(no_cert.value)[0] == 400

        await item.patch(Application(key_credentials=[_credential(first_der)]))
        read = await item.get()
        assert read is not None and read.key_credentials and read.key_credentials[0].key is None

        with pytest.raises(ODataError) as wrong_signer:
            await item.add_key.post(
                AddKeyPostRequestBody(
                    key_credential=_credential(second_der), proof=_proof(second_key, app.id or "")
                )
            )
        assert odata_error(wrong_signer.value)[0] == 400
        added = await item.add_key.post(
            AddKeyPostRequestBody(
                key_credential=_credential(second_der), proof=_proof(first_key, app.id or "")
            )
        )
        assert added is not None and added.key_id
        read = await item.get()
        assert read is not None and len(read.key_credentials or []) == 2


async def test_owners_are_listed_and_changed_with_application_read_write_all(
    emulator: RunningEmulator,
) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "owned")
        owners = await client.applications.by_application_id(app.id or "").owners.get()
        assert owners is not None and [o.odata_type for o in owners.value or []] == [
            "#microsoft.graph.servicePrincipal"
        ]
        service_sp = (owners.value or [])[0].id or ""
        alice = str(uuid.uuid5(uuid.UUID("6f1c1d0e-6a43-4d0c-9d55-6b0e0e6a7a10"), "user:Alice"))
        ref = ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{alice}")
        with pytest.raises(ODataError) as denied:  # OwnedBy is not enough to add owners
            await client.applications.by_application_id(app.id or "").owners.ref.post(ref)
        assert odata_error(denied.value)[:2] == (403, "Authorization_RequestDenied")
    async with graph(emulator, admin=True) as admin:
        owners_of = admin.applications.by_application_id(app.id or "").owners
        await owners_of.ref.post(ref)
        listed = await owners_of.get()
        assert listed is not None and {o.id for o in listed.value or []} == {service_sp, alice}
        await owners_of.by_directory_object_id(service_sp).ref.delete()
    async with graph(emulator) as client:
        with pytest.raises(ODataError) as no_longer:
            await client.applications.by_application_id(app.id or "").patch(Application(notes="x"))
        assert odata_error(no_longer.value)[:2] == (403, "Authorization_RequestDenied")
