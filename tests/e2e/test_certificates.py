"""Certificates end to end: registered and rotated through the real function entry points,
created in the emulated Key Vault (the private key never leaves it), attached to the
application, and proven the way a consumer uses them: a client assertion signed in the vault
gets a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.keys.crypto.aio import CryptographyClient

from emulator.launcher import EmulatorClock, RunningEmulator
from samples.consumer import token_with_vault_signed_assertion
from shared.domain.errors import TransientError
from tests import harness
from tests.e2e.tenant import Tenant, claims, parse_time
from tests.e2e.test_rotation import register_body, run_day
from tests.emulator.clients import admin_credential, credential, secret_client

CERTIFICATE = {"type": "certificate", "lifetime": "P3M"}


def certificate_request(unique_name: str, **credential_changes: Any) -> dict[str, Any]:
    return register_body(unique_name, {**CERTIFICATE, **credential_changes})


async def vault_token(emulator: RunningEmulator, reply: dict[str, Any]) -> dict[str, Any]:
    """The claims of a Graph token got with an assertion signed in Key Vault by the reply's key."""
    settings = emulator.settings
    consumer = admin_credential(settings)  # a consumer with certificates/get and keys/sign
    async with consumer:
        token = await token_with_vault_signed_assertion(
            authority=settings["AZURE_AUTHORITY_HOST"],
            tenant_id=settings["AZURE_TENANT_ID"],
            client_id=reply["application"]["clientId"],
            certificate_id=reply["credential"]["keyVaultCertificateId"],
            vault_credential=consumer,
            scope="https://graph.microsoft.com/.default",
            connection_verify=settings["PLATFORM_CA_FILE"],
        )
    return claims(token)


@pytest_asyncio.fixture
async def certificates(emulator: RunningEmulator) -> AsyncIterator[CertificateClient]:
    settings = emulator.settings
    admin = admin_credential(settings)
    client = CertificateClient(
        settings["KEY_VAULT_URL"],
        admin,
        verify_challenge_resource=False,
        connection_verify=settings["PLATFORM_CA_FILE"],
    )
    async with admin, client:
        yield client


def keys(tenant: Tenant, unique_name: str) -> list[dict[str, Any]]:
    return sorted(tenant.app(unique_name)["keyCredentials"], key=lambda k: k["startDateTime"])


async def test_a_certificate_client_gets_a_token_with_an_assertion_signed_in_the_vault(
    emulator: RunningEmulator, certificates: CertificateClient
) -> None:
    reply = await harness.register(certificate_request("cert-daemon"))

    assert reply["status"] == "succeeded", reply["errors"]
    credential_reply = reply["credential"]
    assert credential_reply["type"] == "certificate" and credential_reply["exportable"] is False
    tenant = Tenant.read(emulator)
    [key] = keys(tenant, "cert-daemon")
    assert tenant.app("cert-daemon")["passwordCredentials"] == []
    assert key["keyId"] == credential_reply["keyId"] and key["usage"] == "Verify"
    certificate = await certificates.get_certificate("cert-cert-daemon")
    assert certificate.properties is not None and certificate.policy is not None
    assert certificate.properties.x509_thumbprint is not None
    assert certificate.properties.x509_thumbprint.hex().upper() == credential_reply["thumbprint"]
    assert certificate.policy.exportable is False and certificate.policy.subject == "CN=cert-daemon"
    assert credential_reply["keyVaultCertificateId"] == certificate.id
    start, end = parse_time(credential_reply["startDateTime"]), parse_time(credential_reply["endDateTime"])
    assert 89 <= (end - start).days <= 92  # three calendar months

    token = await vault_token(emulator, reply)
    assert token["appid"] == reply["application"]["clientId"]


async def test_a_redelivered_registration_answers_with_the_same_certificate(
    emulator: RunningEmulator, certificates: CertificateClient
) -> None:
    body = certificate_request("cert-again")
    first = await harness.register(body)
    second = await harness.register(body)

    assert second["status"] == "succeeded" and second["credential"] == first["credential"]
    assert len(keys(Tenant.read(emulator), "cert-again")) == 1
    versions = [v async for v in certificates.list_properties_of_certificate_versions("cert-cert-again")]
    assert len(versions) == 1


async def test_an_attempt_that_stopped_before_attaching_is_attached_not_made_again(
    emulator: RunningEmulator, certificates: CertificateClient
) -> None:
    body = certificate_request("cert-crash")
    # Graph refuses the update that attaches the certificate: it is made in the vault, and the
    # delivery fails before it is on the application.
    emulator.admin.faults(
        [
            {
                "kind": "status",
                "service": "graph",
                "method": "PATCH",
                "path": r"^/v1\.0/applications/[0-9a-f-]{36}$",
            }
        ]
    )
    with pytest.raises(TransientError):
        await harness.register(body, message_id="crash", delivery_count=1)
    emulator.admin.clear_faults()
    [first] = [v async for v in certificates.list_properties_of_certificate_versions("cert-cert-crash")]
    assert keys(Tenant.read(emulator), "cert-crash") == []

    reply = await harness.register(body, message_id="crash", delivery_count=2)

    assert reply["status"] == "succeeded", reply["errors"]
    versions = [v async for v in certificates.list_properties_of_certificate_versions("cert-cert-crash")]
    assert [v.version for v in versions] == [first.version], "the redelivery attached the first attempt's"
    assert (await vault_token(emulator, reply))["appid"] == reply["application"]["clientId"]


async def test_an_exportable_certificates_pfx_can_be_downloaded_and_used(emulator: RunningEmulator) -> None:
    from azure.identity.aio import CertificateCredential
    from cryptography.hazmat.primitives.serialization import pkcs12

    reply = await harness.register(certificate_request("cert-export", exportable=True))
    assert reply["status"] == "succeeded", reply["errors"]
    assert reply["credential"]["exportable"] is True

    settings = emulator.settings
    async with admin_credential(settings) as admin, secret_client(settings, admin) as secrets:
        secret = await secrets.get_secret("cert-cert-export")
    assert secret.value is not None and secret.properties.content_type == "application/x-pkcs12"
    import base64

    pfx = base64.b64decode(secret.value)
    _, certificate, _ = pkcs12.load_key_and_certificates(pfx, None)
    assert certificate is not None
    client = CertificateCredential(
        settings["AZURE_TENANT_ID"],
        reply["application"]["clientId"],
        certificate_data=pfx,
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )
    async with client:
        token = await client.get_token("https://graph.microsoft.com/.default")
    assert claims(token.token)["appid"] == reply["application"]["clientId"]


async def test_rotation_attaches_the_new_certificate_first_and_retires_the_old_after_the_grace_period(
    emulator: RunningEmulator, clock: EmulatorClock, certificates: CertificateClient
) -> None:
    reply = await harness.register(certificate_request("cert-rotated"))
    assert reply["status"] == "succeeded", reply["errors"]
    old_key = reply["credential"]["keyId"]

    clock.advance("P75D")  # inside the 30-day window before the 3-month certificate ends
    events = await run_day()

    rotated = [e for e in events if e["action"] == "rotate"]
    assert len(rotated) == 1 and rotated[0]["app"]["uniqueName"] == "cert-rotated"
    tenant = Tenant.read(emulator)
    both = keys(tenant, "cert-rotated")
    assert both[0]["keyId"] == old_key and len(both) == 2, "overlap: both keys are on the app"
    add_keys = [e for e in emulator.admin.requests()["entries"] if e["path"].endswith("/addKey")]
    assert add_keys, "the second certificate went on with addKey and a proof signed in the vault"
    latest = await certificates.get_certificate("cert-cert-rotated")
    new = {**reply, "credential": {**reply["credential"], "keyVaultCertificateId": latest.id}}
    assert (await vault_token(emulator, new))["appid"] == reply["application"]["clientId"]
    assert (await vault_token(emulator, reply))["appid"] == reply["application"]["clientId"]

    clock.advance("P1D")
    assert not [e for e in await run_day() if e["action"] == "retire"], "the grace period runs"
    clock.advance("P2D")
    retired = [e for e in await run_day() if e["action"] == "retire"]
    assert [e["keyId"] for e in retired] == [old_key]
    [kept] = keys(Tenant.read(emulator), "cert-rotated")
    assert kept["keyId"] != old_key
    old_version = reply["credential"]["keyVaultCertificateId"].rstrip("/").split("/")[-1]
    old = await certificates.get_certificate_version("cert-cert-rotated", old_version)
    assert old.properties is not None and old.properties.enabled is False
    with pytest.raises(Exception, match=r"AADSTS|invalid_client|not registered|disabled|Forbidden"):
        await vault_token(emulator, reply)


async def test_a_tenant_certificate_lifetime_policy_is_reported_and_nothing_is_left_behind(
    emulator: RunningEmulator, certificates: CertificateClient
) -> None:
    emulator.admin.policy(maxCertificateLifetime="P60D")
    reply = await harness.register(certificate_request("cert-refused"))

    assert reply["status"] == "rejected"
    assert [e["field"] for e in reply["errors"]] == ["credential"]
    assert "Nothing was left behind" in reply["errors"][0]["message"]
    assert Tenant.read(emulator).apps("cert-refused") == []
    versions = [v async for v in certificates.list_properties_of_certificate_versions("cert-cert-refused")]
    assert versions and not any(v.enabled for v in versions)


async def test_decommission_disables_the_certificate_so_its_key_can_no_longer_sign(
    emulator: RunningEmulator,
) -> None:
    reply = await harness.register(certificate_request("cert-gone"))
    assert reply["status"] == "succeeded", reply["errors"]
    decommission = {
        "schemaVersion": 1,
        "requestId": "REQ-cert-gone-2",
        "action": "decommission",
        "requestedBy": "alice@contoso.com",
        "application": {"uniqueName": "cert-gone", "serviceManagementReference": "CI0009999 rotation tests"},
    }
    first = await harness.register(decommission)
    again = await harness.register(decommission)

    assert first["removed"]["keyVaultCertificateVersionsDisabled"] == 1
    assert again["removed"] == first["removed"]
    settings = emulator.settings
    async with credential(settings) as service:
        crypto = CryptographyClient(
            reply["credential"]["keyVaultKeyId"],
            service,
            verify_challenge_resource=False,
            connection_verify=settings["PLATFORM_CA_FILE"],
        )
        async with crypto:
            from azure.keyvault.keys.crypto import SignatureAlgorithm

            with pytest.raises(HttpResponseError):
                await crypto.sign(SignatureAlgorithm.rs256, b"\0" * 32)


async def test_rotate_on_request_issues_a_new_certificate_and_a_redelivery_answers_the_same(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    reply = await harness.register(certificate_request("cert-on-request"))
    assert reply["status"] == "succeeded", reply["errors"]
    rotate = {
        "schemaVersion": 1,
        "requestId": "REQ-cert-rotate-now",
        "action": "rotate",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": "cert-on-request",
            "serviceManagementReference": "CI0009999 rotation tests",
        },
    }
    first = await harness.register(rotate)
    again = await harness.register(rotate)

    assert first["status"] == "succeeded", first["errors"]
    assert first["credential"]["type"] == "certificate"
    assert first["credential"]["keyId"] != reply["credential"]["keyId"]
    assert again["credential"] == first["credential"]
    assert len(keys(Tenant.read(emulator), "cert-on-request")) == 2
    assert (await vault_token(emulator, first))["appid"] == reply["application"]["clientId"]


async def test_a_tenant_policy_refusing_the_renewed_certificate_is_reported_and_the_current_one_stays(
    emulator: RunningEmulator, clock: EmulatorClock, certificates: CertificateClient
) -> None:
    reply = await harness.register(certificate_request("cert-policy"))
    assert reply["status"] == "succeeded", reply["errors"]
    emulator.admin.policy(maxCertificateLifetime="P60D")  # the tenant tightened its policy since

    clock.advance("P75D")
    events = await run_day()

    reports = [e["reason"] for e in events if e["action"] == "report"]
    assert reports == ["tenant-policy:CredentialInvalidLifetimeAsPerAppPolicy"], events
    [kept] = keys(Tenant.read(emulator), "cert-policy")
    assert kept["keyId"] == reply["credential"]["keyId"]
    versions = [v async for v in certificates.list_properties_of_certificate_versions("cert-cert-policy")]
    assert sorted(v.enabled for v in versions) == [False, True], "the refused certificate opens nothing"
    assert (await vault_token(emulator, reply))["appid"] == reply["application"]["clientId"]
