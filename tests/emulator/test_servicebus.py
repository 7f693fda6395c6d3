"""The emulated Service Bus namespace through the unchanged azure-servicebus SDK (async, and the
sync client once): sending (single, batch, scheduled), what a received message carries,
duplicate detection, receive modes and the control plane. Settlement and lock expiry are in
test_servicebus_locks.py, sessions in test_servicebus_sessions.py, authentication and the REST
send in test_servicebus_auth.py. Time moves only through the emulator clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from azure.servicebus import ServiceBusClient as SyncServiceBusClient
from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageNotFoundError, MessageSizeExceededError

from emulator.launcher import RunningEmulator
from tests.emulator.clients import servicebus_client

REQUESTS = "app-registration-requests"
RESULTS = "app-registration-results"
ROTATION = "app-credential-rotation"
EVENTS = "app-credential-events"


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[ServiceBusClient]:
    async with servicebus_client(emulator.settings) as sb:
        yield sb


def counts(emulator: RunningEmulator, queue: str) -> dict[str, int]:
    details: dict[str, int] = emulator.admin.servicebus_queues()[queue]["countDetails"]
    return details


def test_the_settings_name_the_namespace(emulator: RunningEmulator) -> None:
    s = emulator.settings
    host = s["ServiceBusConnection__fullyQualifiedNamespace"]
    assert host.startswith("127.0.0.1:") and host != "127.0.0.1:0"
    assert s["ServiceBusConnection"] == (
        f"Endpoint=sb://{host};SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={s['SERVICE_BUS_SAS_KEY']};UseDevelopmentEmulator=true"
    )
    assert s["SERVICE_BUS_SAS_KEY_NAME"] == "RootManageSharedAccessKey"
    assert s["SERVICE_BUS_REST_URL"] == s["EMULATOR_URL"]
    assert s["SERVICE_BUS_SAS_KEY"] in emulator.admin.issued_secrets()  # the leak detector's list
    queues = emulator.admin.servicebus_queues()
    assert set(queues) == {REQUESTS, RESULTS, ROTATION, EVENTS, "app-registration-replies-session"}
    for name, queue in queues.items():
        assert (queue["maxDeliveryCount"], queue["lockDuration"]) == (10, "PT1M")
        assert queue["requiresSession"] == (name == "app-registration-replies-session")
        assert queue["requiresDuplicateDetection"] == (name in (REQUESTS, RESULTS, EVENTS))
        if queue["requiresDuplicateDetection"]:
            assert queue["duplicateDetectionHistoryTimeWindow"] == "PT10M"


async def test_send_receive_complete(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(ServiceBusMessage("hello"))
    assert counts(emulator, ROTATION)["activeMessageCount"] == 1
    short = emulator.admin.servicebus_queues()[ROTATION]
    assert (short["active"], short["scheduled"], short["deadLettered"], short["locked"]) == (1, 0, 0, 0)
    async with client.get_queue_receiver(ROTATION, max_wait_time=5) as receiver:
        [message] = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert str(message) == "hello"
        assert message.delivery_count == 0  # the AMQP header counts earlier failed attempts
        assert message.sequence_number == 1
        assert isinstance(message.lock_token, uuid.UUID)
        assert message.enqueued_time_utc is not None
        assert message.locked_until_utc is not None
        assert dt.timedelta(seconds=55) < message.locked_until_utc - message.enqueued_time_utc
        assert counts(emulator, ROTATION)["lockedMessageCount"] == 1
        await receiver.complete_message(message)
        assert await receiver.receive_messages(max_wait_time=1) == []
    assert counts(emulator, ROTATION)["activeMessageCount"] == 0


async def test_a_batch_arrives_as_separate_messages(client: ServiceBusClient) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        batch = await sender.create_message_batch()
        for n in range(3):
            batch.add_message(ServiceBusMessage(f"m{n}", message_id=f"id-{n}"))
        await sender.send_messages(batch)
        await sender.send_messages([ServiceBusMessage("list-1"), ServiceBusMessage("list-2")])
    async with client.get_queue_receiver(ROTATION) as receiver:
        received = []
        while len(received) < 5:
            got = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
            assert got, "the queue ran dry"
            received += got
        assert [str(m) for m in received] == ["m0", "m1", "m2", "list-1", "list-2"]
        assert [m.message_id for m in received[:3]] == ["id-0", "id-1", "id-2"]
        assert [m.sequence_number for m in received] == [1, 2, 3, 4, 5]
        for message in received:
            await receiver.complete_message(message)


async def test_properties_and_annotations_round_trip(client: ServiceBusClient) -> None:
    sent = ServiceBusMessage(
        b'{"ticket": 1}',
        message_id="req-1",
        correlation_id="corr-1",
        reply_to="app-registration-replies-session",
        reply_to_session_id="caller-7",
        subject="register",
        content_type="application/json",
        to="registrar",
        time_to_live=dt.timedelta(minutes=5),
        application_properties={"attempt": 2, "kind": "ticket", "urgent": True, "ratio": 0.5},
    )
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(sent)
    async with client.get_queue_receiver(ROTATION) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert b"".join(message.body) == b'{"ticket": 1}'
        assert (message.message_id, message.correlation_id) == ("req-1", "corr-1")
        assert (message.reply_to, message.reply_to_session_id) == (
            "app-registration-replies-session",
            "caller-7",
        )
        assert (message.subject, message.content_type, message.to) == (
            "register",
            "application/json",
            "registrar",
        )
        assert message.time_to_live == dt.timedelta(minutes=5)
        assert message.expires_at_utc == message.enqueued_time_utc + dt.timedelta(minutes=5)
        assert message.application_properties == {
            b"attempt": 2,
            b"kind": b"ticket",
            b"urgent": True,
            b"ratio": 0.5,
        }
        assert message.state == ServiceBusMessageState.ACTIVE
        await receiver.complete_message(message)


async def test_a_session_id_round_trips_on_a_plain_queue(client: ServiceBusClient) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(ServiceBusMessage("s", session_id="anything"))
    async with client.get_queue_receiver(ROTATION) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert message.session_id == "anything"
        await receiver.complete_message(message)


async def test_scheduled_messages_wait_for_the_emulator_clock(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    async with client.get_queue_sender(ROTATION) as sender:
        [first] = await sender.schedule_messages(ServiceBusMessage("later"), at)
        [cancelled] = await sender.schedule_messages(ServiceBusMessage("never"), at)
        await sender.send_messages(ServiceBusMessage("annotated", scheduled_enqueue_time_utc=at))
        await sender.cancel_scheduled_messages(cancelled)
    assert (first, cancelled) == (1, 2)
    assert counts(emulator, ROTATION)["scheduledMessageCount"] == 2
    async with client.get_queue_receiver(ROTATION) as receiver:
        peeked = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert [(p.sequence_number, p.state) for p in peeked] == [
            (1, ServiceBusMessageState.SCHEDULED),
            (3, ServiceBusMessageState.SCHEDULED),
        ]
        assert await receiver.receive_messages(max_wait_time=1) == []
        emulator.admin.advance("PT1H1M")
        received = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        if len(received) < 2:
            received += await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert sorted(str(m) for m in received) == ["annotated", "later"]
        for message in received:
            assert message.scheduled_enqueue_time_utc is not None
            assert abs(message.enqueued_time_utc - at) < dt.timedelta(seconds=1)
            await receiver.complete_message(message)


async def test_duplicate_detection_drops_a_resend_within_the_window(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_sender(RESULTS) as sender:
        await sender.send_messages(ServiceBusMessage("first", message_id="result-1"))
        await sender.send_messages(ServiceBusMessage("resend", message_id="result-1"))  # accepted, dropped
        await sender.send_messages(ServiceBusMessage("other", message_id="result-2"))
    assert counts(emulator, RESULTS)["activeMessageCount"] == 2
    emulator.admin.advance("PT11M")
    async with client.get_queue_sender(RESULTS) as sender:
        await sender.send_messages(ServiceBusMessage("after the window", message_id="result-1"))
    async with client.get_queue_sender(ROTATION) as sender:  # no duplicate detection there
        await sender.send_messages(
            [ServiceBusMessage("a", message_id="x"), ServiceBusMessage("b", message_id="x")]
        )
    assert counts(emulator, RESULTS)["activeMessageCount"] == 3
    assert counts(emulator, ROTATION)["activeMessageCount"] == 2
    bodies = [m["body"] for m in emulator.admin.servicebus_messages(RESULTS)]
    assert len(bodies) == 3  # "first", "other", "after the window" (base64)


async def test_a_message_expires_after_its_time_to_live(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(ServiceBusMessage("short-lived", time_to_live=dt.timedelta(minutes=1)))
        await sender.send_messages(ServiceBusMessage("long-lived"))
    emulator.admin.advance("PT2M")
    async with client.get_queue_receiver(ROTATION) as receiver:
        received = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert [str(m) for m in received] == ["long-lived"]
        await receiver.complete_message(received[0])
    assert counts(emulator, ROTATION)["deadLetterMessageCount"] == 0  # no dead-lettering on expiration


async def test_receive_and_delete_and_iteration(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages([ServiceBusMessage(f"n{n}") for n in range(3)])
    async with client.get_queue_receiver(
        ROTATION, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=2
    ) as receiver:
        messages = [message async for message in receiver]
        assert [str(m) for m in messages] == ["n0", "n1", "n2"]
        assert counts(emulator, ROTATION)["activeMessageCount"] == 0
        with pytest.raises(ValueError):
            await receiver.complete_message(messages[0])  # nothing to settle: they are gone


async def test_deferred_messages_come_back_by_sequence_number(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(ServiceBusMessage("later please"))
    async with client.get_queue_receiver(ROTATION) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.defer_message(message)
        assert await receiver.receive_messages(max_wait_time=1) == []
        assert counts(emulator, ROTATION)["deferredMessageCount"] == 1
        [deferred] = await receiver.receive_deferred_messages([message.sequence_number])
        assert str(deferred) == "later please"
        assert deferred.state == ServiceBusMessageState.DEFERRED
        await receiver.complete_message(deferred)  # through $management's update-disposition
    assert counts(emulator, ROTATION)["deferredMessageCount"] == 0
    async with servicebus_client(emulator.settings, retry_total=0) as once:
        async with once.get_queue_receiver(ROTATION) as receiver:
            with pytest.raises(MessageNotFoundError):
                await receiver.receive_deferred_messages([message.sequence_number])


async def test_large_messages_cross_in_many_frames_up_to_256_kb(client: ServiceBusClient) -> None:
    body = bytes(range(256)) * 800  # 200 KB: several 64 KB frames each way
    async with client.get_queue_sender(ROTATION) as sender:
        await sender.send_messages(ServiceBusMessage(body))
        with pytest.raises(MessageSizeExceededError):  # the link announced 256 KB (the SDK's default is 1 MB)
            await sender.send_messages(ServiceBusMessage(b"x" * (300 * 1024)))
    async with client.get_queue_receiver(ROTATION) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert b"".join(message.body) == body
        await receiver.complete_message(message)


def test_the_sync_client_works_too(emulator: RunningEmulator) -> None:
    with SyncServiceBusClient.from_connection_string(emulator.settings["ServiceBusConnection"]) as sb:
        with sb.get_queue_sender(EVENTS) as sender:
            sender.send_messages(ServiceBusMessage("sync", message_id="e-1"))
        with sb.get_queue_receiver(EVENTS) as receiver:
            [message] = receiver.receive_messages(max_wait_time=5)
            assert str(message) == "sync"
            receiver.complete_message(message)


def test_the_control_plane_shows_every_message_and_reset_clears_them(emulator: RunningEmulator) -> None:
    with SyncServiceBusClient.from_connection_string(emulator.settings["ServiceBusConnection"]) as sb:
        with sb.get_queue_sender(ROTATION) as sender:
            sender.send_messages(
                ServiceBusMessage("look", message_id="m-1", application_properties={"k": "v"})
            )
    [message] = emulator.admin.servicebus_messages(ROTATION)
    assert message["subQueue"] == "main" and message["state"] == "active"
    assert (message["messageId"], message["applicationProperties"]) == ("m-1", {"k": "v"})
    assert message["bodyType"] == "data"
    changed = emulator.admin.servicebus_configure(ROTATION, lockDuration="PT30S", maxDeliveryCount=3)
    assert (changed["lockDuration"], changed["maxDeliveryCount"]) == ("PT30S", 3)
    for bad in ({"lockDuration": "PT1S"}, {"maxDeliveryCount": 0}, {"requiresSession": True}):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            emulator.admin.servicebus_configure(ROTATION, **bad)
        assert refused.value.response.status_code == 400
    with pytest.raises(httpx.HTTPStatusError) as missing:
        emulator.admin.expire_locks("nope")
    assert missing.value.response.status_code == 404
    emulator.admin.reset()
    assert emulator.admin.servicebus_messages(ROTATION) == []
    assert emulator.admin.servicebus_queues()[ROTATION]["lockDuration"] == "PT1M"
