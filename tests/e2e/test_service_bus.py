"""The whole path, as a ticketing system and Azure run it: azure-servicebus sends a request to
the emulated namespace, the local Functions host (emulator.functions_host) receives it with
peek-lock and runs the real function, the service sends its reply with azure-servicebus, and
the requester receives the reply correlated to its request. Also the host's delivery
semantics: a lock lost during a slow registration, and a poison message dead-lettered."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient

from emulator.functions_host import FunctionsHost
from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.tenant import Tenant
from tests.e2e.test_registration import sample

ROOT = Path(__file__).resolve().parents[2]
REQUESTS, RESULTS = "app-registration-requests", "app-registration-results"
SESSION_REPLIES = "app-registration-replies-session"


@pytest.fixture
async def host(emulator: RunningEmulator) -> AsyncIterator[FunctionsHost]:
    """function_app.py running in the local host on the emulated namespace."""
    running = FunctionsHost(emulator.settings, host_json=ROOT / "host.json")
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        await task


@pytest.fixture
async def bus(emulator: RunningEmulator) -> AsyncIterator[ServiceBusClient]:
    async with ServiceBusClient.from_connection_string(emulator.settings["ServiceBusConnection"]) as client:
        yield client


async def send(bus: ServiceBusClient, body: bytes, **properties: Any) -> str:
    message_id = properties.pop("message_id", None) or str(uuid.uuid4())
    async with bus.get_queue_sender(REQUESTS) as sender:
        await sender.send_messages(
            ServiceBusMessage(body, message_id=message_id, content_type="application/json", **properties)
        )
    return message_id


async def replies(bus: ServiceBusClient, queue: str = RESULTS, wait: float = 60, count: int = 1) -> list[Any]:
    """What arrived on ``queue``: ``count`` replies, then anything else within a second."""
    async with bus.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        got = []
        while len(got) < count:
            batch = await receiver.receive_messages(max_message_count=count - len(got), max_wait_time=wait)
            assert batch, f"{count - len(got)} replies never came"
            got.extend(batch)
        got.extend(await receiver.receive_messages(max_message_count=10, max_wait_time=1))
    return got


def body_of(message: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(b"".join(message.body))
    return document


def counts(emulator: RunningEmulator) -> dict[str, dict[str, Any]]:
    queues = emulator.admin.request("GET", "/_emulator/servicebus/queues").json()["value"]
    return {q["name"]: q for q in queues}


async def test_a_request_gets_its_reply_on_its_own_session(
    emulator: RunningEmulator, host: FunctionsHost, bus: ServiceBusClient
) -> None:
    session = str(uuid.uuid4())
    message_id = await send(
        bus,
        json.dumps(sample("service-client")).encode(),
        reply_to=SESSION_REPLIES,
        reply_to_session_id=session,
    )
    async with bus.get_queue_receiver(SESSION_REPLIES, session_id=session, max_wait_time=60) as receiver:
        [reply] = await receiver.receive_messages(max_message_count=1, max_wait_time=60)
        await receiver.complete_message(reply)
    document = body_of(reply)
    assert document["status"] == "succeeded", document["errors"]
    assert reply.correlation_id == message_id
    assert reply.session_id == session
    assert reply.subject == "succeeded"
    assert reply.application_properties[b"requestId"].decode() == "SNOW-CHG0012345"
    assert reply.application_properties[b"status"].decode() == "succeeded"
    assert len(Tenant.read(emulator).apps("dicom-ingest-prod")) == 1
    # The request was completed: nothing left to deliver, nothing dead-lettered.
    state = counts(emulator)[REQUESTS]
    assert (state["active"], state["deadLettered"]) == (0, 0)


async def test_without_reply_to_the_reply_goes_to_the_results_queue(
    emulator: RunningEmulator, host: FunctionsHost, bus: ServiceBusClient
) -> None:
    bad = dict(sample("service-client"), requestId="SNOW-BAD 1")
    message_id = await send(bus, json.dumps(bad).encode())
    [reply] = await replies(bus)
    assert reply.correlation_id == message_id
    assert body_of(reply)["status"] == "rejected"
    assert [e["field"] for e in body_of(reply)["errors"]] == ["requestId"]


async def test_a_reply_to_one_of_the_services_own_queues_goes_to_the_results_queue(
    emulator: RunningEmulator, host: FunctionsHost, bus: ServiceBusClient
) -> None:
    message_id = await send(bus, b"{}", reply_to="app-credential-rotation")
    [reply] = await replies(bus)
    assert reply.correlation_id == message_id and body_of(reply)["status"] == "rejected"


async def test_settings_changed_in_a_process_reply_on_the_link_already_attached(
    emulator: RunningEmulator, settings_env: Callable[..., None]
) -> None:
    """The workflows' dependencies are built again when the settings change, over the same
    clients: they send on the sender already open, rather than attach another each time and
    leave the old one open with its keep-alive."""
    from shared import bootstrap

    bad = dict(sample("service-client"), requestId="SNOW-BAD 1")
    assert (await harness.register(bad))["status"] == "rejected"
    outbox = bootstrap.dependencies().outbox
    open_handlers = len(bootstrap.platform_clients().servicebus._handlers)
    for lifetime in ("P3M", "P6M"):
        settings_env(DEFAULT_SECRET_LIFETIME=lifetime)
        assert (await harness.register(bad))["status"] == "rejected"
    assert bootstrap.dependencies().outbox is outbox
    assert len(bootstrap.platform_clients().servicebus._handlers) == open_handlers


async def test_a_lock_lost_during_a_slow_registration_gives_one_app_and_one_reply(
    emulator: RunningEmulator, host: FunctionsHost, bus: ServiceBusClient
) -> None:
    # The application upsert takes 4 s: long enough to lose the lock while it runs.
    emulator.admin.faults([{"kind": "latency", "service": "graph", "method": "PATCH", "ms": 4000, "nth": 1}])
    message_id = await send(bus, json.dumps(sample("service-client")).encode())
    for _ in range(200):
        if counts(emulator)[REQUESTS]["locked"]:
            break
        await asyncio.sleep(0.05)
    # The lock expires under the running delivery: Service Bus hands the message out again.
    emulator.admin.request("POST", f"/_emulator/servicebus/queues/{REQUESTS}/expire-locks")

    got = await replies(bus, count=1)

    # The first delivery could not complete the message (its lock was gone); the second
    # waited for the application's lease, converged and answered. Its reply carries the same
    # MessageId as the first's, so duplicate detection kept one.
    assert [r.correlation_id for r in got] == [message_id]
    assert body_of(got[0])["status"] == "succeeded"
    # The second delivery settles too: completed, nothing left, nothing dead-lettered, and
    # its reply (the same MessageId) dropped by duplicate detection. The host counts a
    # settlement once the SDK's call returns, after the namespace has applied it: both deliveries'
    # ends are awaited, not only the queue's.
    for _ in range(300):
        state = counts(emulator)[REQUESTS]
        ended = host.completed + host.locks_lost + host.abandoned
        if (state["active"], state["locked"]) == (0, 0) and ended == 2:
            break
        await asyncio.sleep(0.1)
    assert (state["active"], state["locked"], state["deadLettered"]) == (0, 0, 0)
    assert (host.completed, host.locks_lost, host.abandoned) == (1, 1, 0)
    assert await replies(bus, wait=1, count=0) == []
    assert len(Tenant.read(emulator).apps("dicom-ingest-prod")) == 1


def appreg(emulator: RunningEmulator, *args: str) -> Any:
    """The integrator command line, as a person runs it, with --json."""
    settings = emulator.data_dir / "settings.env"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--settings", str(settings), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.long
async def test_a_poison_message_is_dead_lettered_with_a_reason_and_can_be_resubmitted(
    emulator: RunningEmulator, bus: ServiceBusClient
) -> None:
    # A queue whose maxDeliveryCount (2) is below the service's MAX_DELIVERY_COUNT (10): the
    # service keeps asking for redelivery, and Service Bus gives up first.
    emulator.admin.request("PUT", f"/_emulator/servicebus/queues/{REQUESTS}", json={"maxDeliveryCount": 2})
    emulator.admin.faults([{"kind": "status", "status": 503, "service": "graph", "retryAfter": 0}])
    running = FunctionsHost(emulator.settings, host_json=ROOT / "host.json")
    task = asyncio.create_task(running.run())
    try:
        message_id = await send(bus, json.dumps(sample("service-client")).encode())
        for _ in range(600):
            if counts(emulator)[REQUESTS]["deadLettered"]:
                break
            await asyncio.sleep(0.1)
    finally:
        running.stop()
        await task

    listed = await asyncio.to_thread(appreg, emulator, "dead-letters")
    [poisoned] = [m for m in listed if m["messageId"] == message_id]
    assert poisoned["reason"] == "MaxDeliveryCountExceeded"
    assert poisoned["requestId"] == "SNOW-CHG0012345"
    assert running.abandoned == 2

    emulator.admin.clear_faults()
    resubmitted = await asyncio.to_thread(appreg, emulator, "resubmit", message_id)
    assert resubmitted["resubmitted"] == message_id
    assert await asyncio.to_thread(appreg, emulator, "dead-letters") == []
    async with asyncio.timeout(120):
        host = FunctionsHost(emulator.settings, host_json=ROOT / "host.json")
        serving = asyncio.create_task(host.run())
        try:
            [reply] = await replies(bus)
        finally:
            host.stop()
            await serving
    assert body_of(reply)["status"] == "succeeded"


async def test_submit_and_inventory_from_the_command_line(
    emulator: RunningEmulator, host: FunctionsHost
) -> None:
    sent = await asyncio.to_thread(
        appreg, emulator, "submit", str(ROOT / "samples/service-client.json"), "--wait"
    )
    assert sent["reply"]["status"] == "succeeded"
    assert sent["reply"]["application"]["uniqueName"] == "dicom-ingest-prod"
    [row] = [
        r
        for r in await asyncio.to_thread(appreg, emulator, "inventory")
        if r["uniqueName"] == "dicom-ingest-prod"
    ]
    assert row["owner"] == "CI0001001 DICOM ingest"
    assert len(row["credentials"]) == 1 and 170 <= row["daysLeft"] <= 190


# -- the recipes of docs/integration.md, sent exactly as shown ----------------------------------

RECIPE = re.compile(r"<!-- recipe: (?P<name>[^>]+) -->\n```http\n(?P<text>.*?)```", re.S)


def recipes() -> dict[str, str]:
    return {m["name"]: m["text"] for m in RECIPE.finditer((ROOT / "docs/integration.md").read_text())}


def fill(text: str, values: dict[str, str]) -> tuple[str, str, dict[str, str], str]:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.splitlines()
    method, url = request_line.split(" ", 1)
    headers = dict(line.split(": ", 1) for line in header_lines)
    return method, url, headers, body.strip()


@pytest.mark.parametrize("system", ["servicenow", "jira"])
async def test_the_integration_recipes_work_as_written(
    emulator: RunningEmulator, host: FunctionsHost, bus: ServiceBusClient, system: str
) -> None:
    s = emulator.settings
    values = {
        "https://login.microsoftonline.com/{tenant}": f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}",
        "{client-id}": s["EMULATOR_ADMIN_CLIENT_ID"],  # the ticketing system's identity here
        "{client-secret}": s["EMULATOR_ADMIN_CLIENT_SECRET"],
        "https://{namespace}": s["SERVICE_BUS_REST_URL"],
        "{ritm-sys-id}": "9f2c3a1e6b7d4c5e8f901a2b3c4d5e6f",
        "{issue-key}-{transition-id}": "IAM-4711-31",
    }
    found = recipes()
    async with httpx.AsyncClient(verify=s["PLATFORM_CA_FILE"]) as http:
        method, url, headers, body = fill(found[f"{system} token"], values)
        token = await http.request(method, url, headers=headers, content=body)
        assert token.status_code == 200, token.text
        values["{access-token}"] = token.json()["access_token"]
        method, url, headers, body = fill(found[f"{system} send"], values)
        sent = await http.request(method, url, headers=headers, content=body)
        assert sent.status_code == 201, sent.text
    message_id = json.loads(headers["BrokerProperties"])["MessageId"]
    [reply] = await replies(bus)
    assert reply.correlation_id == message_id
    assert body_of(reply)["requestId"] == json.loads(body)["requestId"]
    assert body_of(reply)["status"] == "succeeded", body_of(reply)["errors"]
