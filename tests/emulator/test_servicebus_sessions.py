"""Sessions on the session-enabled replies queue, through azure-servicebus's async session
receivers: a receiver holds one session's lock and gets only its messages, in order; the next
available session; session state; renew and loss of the session lock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from emulator.launcher import RunningEmulator
from tests.emulator.clients import servicebus_client

REPLIES = "app-registration-replies-session"


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[ServiceBusClient]:
    async with servicebus_client(emulator.settings) as sb:
        async with sb.get_queue_sender(REPLIES) as sender:
            await sender.send_messages(
                [
                    ServiceBusMessage("a1", session_id="caller-a", correlation_id="req-a1"),
                    ServiceBusMessage("b1", session_id="caller-b", correlation_id="req-b1"),
                    ServiceBusMessage("a2", session_id="caller-a", correlation_id="req-a2"),
                ]
            )
        yield sb


async def test_a_session_receiver_gets_only_its_session(client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(REPLIES, session_id="caller-a") as receiver:
        assert receiver.session.session_id == "caller-a"
        assert receiver.session.locked_until_utc is not None
        got = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
        if len(got) < 2:
            got += await receiver.receive_messages(max_message_count=10, max_wait_time=2)
        assert [(str(m), m.session_id, m.correlation_id) for m in got] == [
            ("a1", "caller-a", "req-a1"),
            ("a2", "caller-a", "req-a2"),
        ]
        for message in got:
            await receiver.complete_message(message)
        assert await receiver.receive_messages(max_wait_time=1) == []


async def test_next_available_session(client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(REPLIES, session_id=NEXT_AVAILABLE_SESSION) as first:
        assert first.session.session_id == "caller-a"  # the oldest message's session
        async with client.get_queue_receiver(REPLIES, session_id=NEXT_AVAILABLE_SESSION) as second:
            assert second.session.session_id == "caller-b"
            [message] = await second.receive_messages(max_wait_time=5)
            assert str(message) == "b1"
            await second.complete_message(message)


async def test_a_locked_session_cannot_be_accepted_twice(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_receiver(REPLIES, session_id="caller-b") as holder:
        async with servicebus_client(emulator.settings, retry_total=0) as other:
            with pytest.raises(SessionCannotBeLockedError):
                async with other.get_queue_receiver(REPLIES, session_id="caller-b"):
                    pass
        [message] = await holder.receive_messages(max_wait_time=5)
        await holder.complete_message(message)


async def test_waiting_for_a_session_is_bounded_by_the_clients_try_timeout(emulator: RunningEmulator) -> None:
    """The service holds a next-available attach until a session has messages (60 s at most,
    then ``com.microsoft:timeout``); this SDK sends no timeout of its own, so a caller bounds
    the wait with ``try_timeout``."""
    async with servicebus_client(emulator.settings, retry_total=0, try_timeout=2) as empty:
        with pytest.raises(OperationTimeoutError):
            async with empty.get_queue_receiver(REPLIES, session_id=NEXT_AVAILABLE_SESSION):
                pass
    assert emulator.admin.servicebus_queues()[REPLIES]["sessions"] == {}


async def test_session_state_and_renewal(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(REPLIES, session_id="caller-a") as receiver:
        session = receiver.session
        assert await session.get_state() is None
        await session.set_state(b"step-2")
        assert await session.get_state() == b"step-2"
        before = session.locked_until_utc
        assert before is not None
        emulator.admin.advance("PT40S")
        renewed = await session.renew_lock()
        assert renewed > before
        emulator.admin.advance("PT40S")  # past the first lock, inside the renewed one
        [message] = (await receiver.receive_messages(max_wait_time=5))[:1]
        await receiver.complete_message(message)
    async with client.get_queue_receiver(REPLIES, session_id="caller-a") as again:
        assert await again.session.get_state() == b"step-2"  # state outlives the lock


async def test_a_lost_session_lock_frees_the_session(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_receiver(REPLIES, session_id="caller-b") as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        emulator.admin.expire_locks(REPLIES)
        with pytest.raises(SessionLockLostError):
            await receiver.complete_message(message)
    async with client.get_queue_receiver(REPLIES, session_id="caller-b") as successor:
        [again] = await successor.receive_messages(max_wait_time=5)
        assert (str(again), again.delivery_count) == ("b1", 1)
        await successor.complete_message(again)


async def test_a_session_queue_needs_session_ids_and_session_receivers(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with servicebus_client(emulator.settings, retry_total=0) as once:
        async with once.get_queue_sender(REPLIES) as sender:
            with pytest.raises(ServiceBusError, match="SessionId"):
                await sender.send_messages(ServiceBusMessage("no session"))
        with pytest.raises(ServiceBusError):
            async with once.get_queue_receiver(REPLIES) as plain:
                await plain.receive_messages(max_wait_time=1)
