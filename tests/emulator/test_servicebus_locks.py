"""Peek-lock as Service Bus runs it, through azure-servicebus's async receiver: abandon counts
a failed delivery, a lock that expires (``expire-locks``, or the emulator clock) redelivers the
message with its count raised and makes its old lock token worthless, renew-lock extends a
lock, dead-lettering keeps the reason, and ``maxDeliveryCount`` failed deliveries dead-letter a
message with ``MaxDeliveryCountExceeded``."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver
from azure.servicebus.exceptions import MessageLockLostError

from emulator.launcher import RunningEmulator
from tests.emulator.clients import servicebus_client

QUEUE = "app-credential-rotation"


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[ServiceBusClient]:
    async with servicebus_client(emulator.settings) as sb:
        async with sb.get_queue_sender(QUEUE) as sender:
            await sender.send_messages(ServiceBusMessage("work", message_id="w-1"))
        yield sb


async def receive_one(receiver: ServiceBusReceiver) -> ServiceBusReceivedMessage:
    messages = await receiver.receive_messages(max_wait_time=5)
    assert len(messages) == 1, messages
    return messages[0]


async def test_abandon_counts_a_failed_delivery(client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        first = await receive_one(receiver)
        assert first.delivery_count == 0
        await receiver.abandon_message(first)
        second = await receive_one(receiver)
        assert (second.message_id, second.delivery_count) == ("w-1", 1)
        assert second.lock_token != first.lock_token
        await receiver.complete_message(second)


async def test_an_expired_lock_redelivers_and_the_old_lock_is_lost(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        first = await receive_one(receiver)
        assert emulator.admin.expire_locks(QUEUE) == 1
        second = await receive_one(receiver)
        assert (second.message_id, second.delivery_count) == ("w-1", 1)
        with pytest.raises(MessageLockLostError):
            await receiver.complete_message(first)
        await receiver.complete_message(second)
    assert emulator.admin.servicebus_messages(QUEUE) == []


async def test_locks_expire_on_the_emulator_clock(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        first = await receive_one(receiver)
        emulator.admin.advance("PT61S")
        with pytest.raises(MessageLockLostError):
            await receiver.abandon_message(first)
        second = await receive_one(receiver)
        assert second.delivery_count == 1
        await receiver.complete_message(second)


async def test_renew_lock_extends_the_lock(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        message = await receive_one(receiver)
        before = message.locked_until_utc
        assert before is not None
        emulator.admin.advance("PT40S")
        renewed = await receiver.renew_message_lock(message)
        assert renewed == message.locked_until_utc
        assert renewed - before > dt.timedelta(seconds=35)
        emulator.admin.advance("PT40S")  # 80 s after the receive: alive only thanks to the renewal
        await receiver.complete_message(message)


async def test_renewing_a_lost_lock_fails(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        message = await receive_one(receiver)
        emulator.admin.expire_locks(QUEUE)
        with pytest.raises(MessageLockLostError):
            await receiver.renew_message_lock(message)


async def test_dead_letter_with_a_reason(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        message = await receive_one(receiver)
        await receiver.dead_letter_message(message, reason="PermanentError", error_description="bad ticket")
    details = emulator.admin.servicebus_queues()[QUEUE]["countDetails"]
    assert (details["activeMessageCount"], details["deadLetterMessageCount"]) == (0, 1)
    async with client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead:
        letter = await receive_one(dead)
        assert (letter.message_id, str(letter)) == ("w-1", "work")
        assert letter.dead_letter_reason == "PermanentError"
        assert letter.dead_letter_error_description == "bad ticket"
        assert letter.sequence_number == message.sequence_number
        await dead.complete_message(letter)
    assert emulator.admin.servicebus_messages(QUEUE) == []


async def test_max_delivery_count_dead_letters(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    emulator.admin.servicebus_configure(QUEUE, maxDeliveryCount=3)
    async with client.get_queue_receiver(QUEUE) as receiver:
        first = await receive_one(receiver)
        await receiver.abandon_message(first)
        second = await receive_one(receiver)
        emulator.admin.expire_locks(QUEUE)  # a lost lock counts like an abandon
        third = await receive_one(receiver)
        assert [m.delivery_count for m in (first, second, third)] == [0, 1, 2]
        await receiver.abandon_message(third)
        assert await receiver.receive_messages(max_wait_time=1) == []
    [letter] = emulator.admin.servicebus_messages(QUEUE)
    assert letter["subQueue"] == "deadletter" and letter["deliveryCount"] == 3
    async with client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead:
        message = await receive_one(dead)
        assert message.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert (
            message.dead_letter_error_description
            == "Message could not be consumed after 3 delivery attempts."
        )
        assert message.delivery_count == 3
        await dead.complete_message(message)


async def test_the_default_max_delivery_count_is_ten(
    emulator: RunningEmulator, client: ServiceBusClient
) -> None:
    async with client.get_queue_receiver(QUEUE) as receiver:
        counts = []
        for _ in range(10):
            message = await receive_one(receiver)
            counts.append(message.delivery_count)
            await receiver.abandon_message(message)
        assert counts == list(range(10))
        assert await receiver.receive_messages(max_wait_time=1) == []
    [letter] = emulator.admin.servicebus_messages(QUEUE)
    assert (letter["subQueue"], letter["deadLetterReason"]) == ("deadletter", "MaxDeliveryCountExceeded")


async def test_a_lock_outlives_its_receive_link(emulator: RunningEmulator, client: ServiceBusClient) -> None:
    """Service Bus ties a lock to the message, not to the link that received it."""
    async with client.get_queue_receiver(QUEUE) as receiver:
        await receive_one(receiver)
    assert emulator.admin.servicebus_queues()[QUEUE]["countDetails"]["lockedMessageCount"] == 1
    async with client.get_queue_receiver(QUEUE) as other:
        assert await other.receive_messages(max_wait_time=1) == []  # still locked
        emulator.admin.advance("PT61S")
        again = await receive_one(other)
        assert again.delivery_count == 1
        await other.complete_message(again)
