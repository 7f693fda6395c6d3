"""``make demo``: the service's main job, offline, on the emulator.

Starts the emulator and runs function_app.py in the local Functions host
(emulator.functions_host) on the emulated Service Bus namespace. Sends each request in samples/
to the registration queue with azure-servicebus, as a ticketing system would (ReplyTo a
session of its own), reads the correlated reply, and proves the secret stored in Key Vault
authenticates, the certificate client gets a token with an assertion signed in Key Vault (its
private key never leaves the vault), and a pipeline with a federated credential exchanges its
identity provider's token for the application's; then advances the emulator's clock past the rotation window, runs the
rotation timer now (as the host's admin endpoint does) and lets the host's rotation function
take the messages, shows the new credential and Key Vault version, and after the grace period the
retirement of the old one. A client given data roles reads its FHIR and DICOM services with
a token got with the stored secret (403 until Azure RBAC applies the roles, 200 after), and
no longer once decommissioned. Secret values are never printed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from emulator.functions_host import FunctionsHost
from emulator.launcher import EmulatorClock, RunningEmulator, running

SAMPLES = Path(__file__).resolve().parent
ROOT = SAMPLES.parent


async def token_with_stored_secret(
    settings: dict[str, str], client_id: str, secret_name: str, version: str | None, scope: str
) -> str:
    """Read the stored secret as the service does and get a token with it for ``scope``, as a
    consumer would."""
    from azure.identity.aio import ClientSecretCredential

    from shared import bootstrap

    value = await bootstrap.dependencies().vault.read(secret_name, version)
    credential = ClientSecretCredential(
        settings["AZURE_TENANT_ID"],
        client_id,
        value.reveal(),
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )
    try:
        return (await credential.get_token(scope)).token
    finally:
        await credential.close()


async def authenticates(
    settings: dict[str, str], client_id: str, secret_name: str, version: str | None
) -> bool:
    """Whether the stored secret gets a Microsoft Graph token."""
    scope = "https://graph.microsoft.com/.default"
    return bool(await token_with_stored_secret(settings, client_id, secret_name, version, scope))


# Azure RBAC applies a new role assignment, or a removal, within minutes; the emulator's data
# planes honour one 5 minutes (emulator clock) after the change.
RBAC_PROPAGATION = "PT5M"
DICOM_SCOPE = "https://dicom.healthcareapis.azure.com/.default"
# What a user reads of each kind of service: (its name, the path of the read).
DATA_READS = {"fhir": ("FHIR", "/Patient"), "dicom": ("DICOM", "/v2/studies")}


def data_read(access: dict[str, Any]) -> tuple[str, str]:
    """The kind's name and read path for one ``dataAccess`` reply entry (a DICOM service's
    token scope is the one DICOM audience)."""
    return DATA_READS["dicom" if access["scope"] == DICOM_SCOPE else "fhir"]


async def read_data(settings: dict[str, str], token: str, access: dict[str, Any]) -> int:
    """The status of a read on the service of one ``dataAccess`` reply entry: FHIR's
    ``GET /Patient`` or DICOM's ``GET /v2/studies``."""
    import httpx

    async with httpx.AsyncClient(verify=settings["PLATFORM_CA_FILE"]) as http:
        response = await http.get(
            access["url"] + data_read(access)[1], headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def data_access_demo(
    emulator: RunningEmulator, app: dict[str, Any], secret_name: str, entries: list[dict[str, Any]]
) -> dict[str, str]:
    """Each service the client was given roles on: 403 until Azure RBAC applies them, then the
    read a user wants. Returns the tokens got, by service, for the decommission to show."""
    tokens = {}
    for access in entries:
        print(f"    data access  {access['service']}: {access['roles']} at {access['url']}")
        print(f"                 token scope {access['scope']}")
        tokens[access["service"]] = await token_with_stored_secret(
            emulator.settings, app["clientId"], secret_name, None, access["scope"]
        )
    for access in entries:
        status = await read_data(emulator.settings, tokens[access["service"]], access)
        print(f"    before the roles apply, {data_read(access)[0]} answers {status}")
    emulator.admin.advance(RBAC_PROPAGATION)
    print("    clock advanced 5 minutes (Azure RBAC applies role assignments within minutes)")
    for access in entries:
        status = await read_data(emulator.settings, tokens[access["service"]], access)
        print(
            f"    the new client reads {data_read(access)[0]}: {'yes' if status == 200 else 'NO'} ({status})"
        )
    return tokens


async def decommission_demo(emulator: RunningEmulator, reply: dict[str, Any], tokens: dict[str, str]) -> None:
    """Decommission the client; its tokens, still unexpired, no longer read."""
    app = reply["application"]
    print(f"\n== decommission of {app['uniqueName']}")
    retire = {
        "schemaVersion": 1,
        "requestId": f"{reply['requestId']}-retire",
        "action": "decommission",
        "requestedBy": reply["requestedBy"],
        "application": {
            "uniqueName": app["uniqueName"],
            "serviceManagementReference": app["serviceManagementReference"],
        },
    }
    answer = await request(emulator, json.dumps(retire).encode())
    print(f"    {answer['status']}: removed {answer['removed']}")
    emulator.admin.advance(RBAC_PROPAGATION)
    for access in reply["dataAccess"]:
        status = await read_data(emulator.settings, tokens[access["service"]], access)
        print(f"    with a token got before, {data_read(access)[0]} now answers {status}")


def show_credential(label: str, credential: dict[str, Any]) -> None:
    print(
        f"    {label}: keyId {credential['keyId']}  hint {credential['hint']}…  expires {credential['endDateTime']}"
    )


async def request(emulator: RunningEmulator, body: bytes) -> dict[str, Any]:
    """Send a request to the registration queue as a ticketing system does (azure-servicebus,
    ReplyTo a session of its own) and wait for the reply correlated to it."""
    from cli.appreg import submit

    sent = await submit(emulator.settings, body, wait=True, wait_seconds=60)
    assert sent["reply"] is not None, "no reply within a minute"
    reply: dict[str, Any] = sent["reply"]
    return reply


async def register_samples(
    emulator: RunningEmulator,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    replies, tokens = {}, {}
    for path in sorted(SAMPLES.glob("*.json")):
        reply = await request(emulator, path.read_bytes())
        replies[path.stem] = reply
        print(f"\n== {path.name}: {reply['status']} (sent through Service Bus, reply correlated)")
        if reply["status"] != "succeeded":
            print(f"    errors: {reply['errors']}")
            continue
        app = reply["application"]
        print(f"    uniqueName   {app['uniqueName']}")
        print(f"    owner        {app['serviceManagementReference']} (asked by {reply['requestedBy']})")
        print(f"    client id    {app['clientId']}")
        print(f"    tenant id    {app['tenantId']}")
        for consent in reply["consent"]:
            print(f"    consent      {consent['api']}: {consent['delegated'] + consent['application']}")
        credential = reply["credential"]
        if credential is None:
            print("    secret       none (a public client holds no secret)")
            continue
        if credential["type"] == "certificate":
            await certificate_demo(emulator, app, credential)
            continue
        print(f"    Key Vault    {credential['keyVaultSecretId']}")
        print(f"    expires      {credential['endDateTime']}")
        name, version = credential["keyVaultSecretId"].split("/secrets/", 1)[1].split("/")
        ok = await authenticates(emulator.settings, app["clientId"], name, version)
        print(f"    the stored secret authenticates: {'yes' if ok else 'NO'}")
        if reply["dataAccess"]:
            tokens[path.stem] = await data_access_demo(emulator, app, name, reply["dataAccess"])
    return replies, tokens


async def certificate_demo(
    emulator: RunningEmulator, app: dict[str, Any], credential: dict[str, Any]
) -> None:
    """A certificate made in Key Vault: the client signs its assertion in the vault (the private
    key never leaves it) and gets a token."""
    from azure.identity.aio import ClientSecretCredential

    from samples.consumer import token_with_vault_signed_assertion

    print(f"    certificate  {credential['keyVaultCertificateId']}")
    print(f"    thumbprint   {credential['thumbprint']}  exportable: {credential['exportable']}")
    print(f"    expires      {credential['endDateTime']}")
    settings = emulator.settings
    # The consumer's own identity, with certificates/get and keys/sign on the vault.
    consumer = ClientSecretCredential(
        settings["AZURE_TENANT_ID"],
        settings["EMULATOR_ADMIN_CLIENT_ID"],
        settings["EMULATOR_ADMIN_CLIENT_SECRET"],
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )
    async with consumer:
        token = await token_with_vault_signed_assertion(
            authority=settings["AZURE_AUTHORITY_HOST"],
            tenant_id=settings["AZURE_TENANT_ID"],
            client_id=app["clientId"],
            certificate_id=credential["keyVaultCertificateId"],
            vault_credential=consumer,
            scope="https://graph.microsoft.com/.default",
            connection_verify=settings["PLATFORM_CA_FILE"],
        )
    print(f"    an assertion signed in Key Vault gets a token: {'yes' if token else 'NO'}")


async def federated_demo(emulator: RunningEmulator) -> None:
    """A deployment pipeline with no secret and no certificate at all: a federated credential
    trusts its identity provider's token for one subject (here the emulator's test issuer,
    GitHub-Actions-like), and the pipeline exchanges that token for the application's."""
    from azure.identity.aio import ClientAssertionCredential

    settings = emulator.settings
    subject = "repo:contoso/fhir-export:environment:prod"
    body = {
        "schemaVersion": 1,
        "requestId": "JIRA-IAM-4712",
        "action": "register",
        "requestedBy": "bob@contoso.com",
        "application": {
            "serviceManagementReference": "CI0001004 FHIR export",
            "uniqueName": "fhir-export-deploy",
            "displayName": "FHIR export deployment pipeline",
            "clientType": "service",
        },
        "credential": {"type": "none"},
        "federatedCredentials": [
            {"name": "github-prod", "issuer": settings["EMULATOR_OIDC_ISSUER"], "subject": subject}
        ],
    }
    reply = await request(emulator, json.dumps(body).encode())
    print(f"\n== federated credential: {reply['status']} (sent through Service Bus, reply correlated)")
    if reply["status"] != "succeeded":
        print(f"    errors: {reply['errors']}")
        return
    for fic in reply["federatedCredentials"]:
        print(f"    trusts       {fic['issuer']} for {fic['subject']} ({fic['audiences'][0]})")

    def workload_token() -> str:
        # What the pipeline's identity provider hands the job (minted by the emulator's issuer).
        minted = emulator.admin.request("POST", "/_emulator/oidc/token", json={"subject": subject}).json()
        return str(minted["token"])

    exchange = ClientAssertionCredential(
        settings["AZURE_TENANT_ID"],
        reply["application"]["clientId"],
        workload_token,
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )
    async with exchange:
        token = await exchange.get_token("https://graph.microsoft.com/.default")
    print(
        f"    the workload token is exchanged for the application's token: {'yes' if token.token else 'NO'}"
    )


async def sweep(emulator: RunningEmulator, host: FunctionsHost) -> list[dict[str, Any]]:
    """One day of rotation as the host runs it: the timer now, then the host's rotation
    function takes each message it queued; the events are read off the events queue."""
    from azure.servicebus import ServiceBusReceiveMode
    from azure.servicebus.aio import ServiceBusClient

    await host.run_now("rotation_scheduler")
    async with (
        ServiceBusClient.from_connection_string(emulator.settings["ServiceBusConnection"]) as client,
        client.get_queue_receiver(
            emulator.settings.get("EVENTS_QUEUE", "app-credential-events"),
            receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE,
        ) as receiver,
    ):
        received = await receiver.receive_messages(max_message_count=50, max_wait_time=30)
    return [json.loads(b"".join(m.body)) for m in received]


async def rotate_demo(
    emulator: RunningEmulator, host: FunctionsHost, reply: dict[str, Any], clock: EmulatorClock
) -> None:
    app = reply["application"]
    old = reply["credential"]
    end = dt.datetime.fromisoformat(old["endDateTime"].replace("Z", "+00:00"))
    print(f"\n== rotation of {app['uniqueName']}")
    show_credential("current  ", old)
    moment = end - dt.timedelta(days=20)
    clock.set(moment)
    print(f"    clock set to {moment:%Y-%m-%d}, 20 days before it expires (window: 30 days)")
    for e in await sweep(emulator, host):
        print(f"    event: {e['action']:<8} {e['app']['uniqueName']} keyId {e.get('keyId')}  ({e['reason']})")
    name = f"app-{app['uniqueName']}"
    snapshot = emulator.admin.snapshot()
    [stored_app] = [a for a in snapshot["applications"] if a.get("uniqueName") == app["uniqueName"]]
    [secret] = [s for s in snapshot["vault"]["secrets"] if s["name"] == name]
    for password in stored_app["passwordCredentials"]:
        marker = "new" if password["keyId"] != old["keyId"] else "old"
        print(f"    {marker} credential keyId {password['keyId']}  expires {password['endDateTime']}")
    print(
        f"    Key Vault: {name} now resolves to version {secret['latest']} ({len(secret['versions'])} versions)"
    )
    ok = await authenticates(emulator.settings, app["clientId"], name, None)
    print(
        f"    the unversioned secret authenticates: {'yes' if ok else 'NO'}; the old one stays valid for the grace period"
    )
    clock.advance("PT49H")
    print("    clock advanced 49 hours, past the 48-hour grace period")
    for e in await sweep(emulator, host):
        print(f"    event: {e['action']:<8} {e['app']['uniqueName']} keyId {e.get('keyId')}  ({e['reason']})")
    snapshot = emulator.admin.snapshot()
    [stored_app] = [a for a in snapshot["applications"] if a.get("uniqueName") == app["uniqueName"]]
    print(f"    credentials left: {[p['keyId'] for p in stored_app['passwordCredentials']]}")
    ok = await authenticates(emulator.settings, app["clientId"], name, None)
    print(f"    the unversioned secret authenticates: {'yes' if ok else 'NO'}")


async def main(emulator: RunningEmulator) -> None:
    from shared import testing
    from shared.testing import reset_clients

    # The service decides at the emulator's time, which the demo moves forward.
    clock = EmulatorClock(emulator.admin)
    testing.use_clock(clock.now)
    # The app runs in a local Functions host (emulator.functions_host), as Azure would run it.
    host = FunctionsHost(emulator.settings, host_json=ROOT / "host.json")
    serving = asyncio.create_task(host.run())
    try:
        print(
            f"Emulator at {emulator.settings['EMULATOR_URL']} (tenant {emulator.settings['AZURE_TENANT_ID']}); "
            f"function app running in the local host on {emulator.settings['ServiceBusConnection__fullyQualifiedNamespace']}"
        )
        replies, tokens = await register_samples(emulator)
        await federated_demo(emulator)
        service = replies.get("service-client")
        if service and service["status"] == "succeeded":
            await rotate_demo(emulator, host, service, clock)
            await decommission_demo(emulator, service, tokens.get("service-client", {}))
    finally:
        host.stop()
        await serving
        await reset_clients()


def run() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="demo-emulator-") as data_dir,
        running(Path(data_dir)) as emulator,
    ):
        os.environ.update(emulator.settings)
        os.environ.setdefault("ROTATION_SCHEDULE", "0 0 3 * * *")
        asyncio.run(main(emulator))
    print("\nEmulator stopped.")


if __name__ == "__main__":
    run()
