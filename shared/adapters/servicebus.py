"""Service Bus gateway: every message the service sends (replies, the rotation fan-out,
events) goes out through azure-servicebus's async ``ServiceBusSender``, one client per process
(shared.adapters.clients), one sender per queue, kept open.

The SDK retries a send itself (``retry_total``); what still fails is mapped to a
``TransientError`` so the delivery is retried as a whole, and the resent messages carry the
same ``MessageId`` (shared.messages.envelope) for Service Bus's duplicate detection to drop.
Needs *Azure Service Bus Data Sender* on each queue it sends to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.domain.errors import TransientError
from shared.messages.envelope import Outbound

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient, ServiceBusSender


class ServiceBusOutbox:
    def __init__(self, client: ServiceBusClient) -> None:
        self.client = client
        self._senders: dict[str, ServiceBusSender] = {}
        # A sender's link takes one send at a time: concurrent deliveries (the host's
        # maxConcurrentCalls) wait their turn per queue rather than fail.
        self._sending: dict[str, asyncio.Lock] = {}
        self._lock = asyncio.Lock()

    async def _sender(self, queue: str) -> tuple[ServiceBusSender, asyncio.Lock]:
        async with self._lock:
            sender = self._senders.get(queue)
            if sender is None:
                sender = self._senders[queue] = self.client.get_queue_sender(queue)
                self._sending[queue] = asyncio.Lock()
            return sender, self._sending[queue]

    async def prepare(self, queue: str) -> None:
        """Open the link to ``queue`` now, so that the first send need not (a new instance's
        first reply). Raises nothing: a failure is the first send's to report."""
        from azure.servicebus.exceptions import ServiceBusError

        sender, turn = await self._sender(queue)
        async with turn:
            with contextlib.suppress(ServiceBusError):
                await sender.create_message_batch()

    async def send(self, messages: Sequence[Outbound]) -> None:
        """Send ``messages``, each queue's as one batch (split when a batch is full). Raises
        ``TransientError`` when Service Bus cannot be reached or refuses."""
        from azure.servicebus.exceptions import ServiceBusError

        by_queue: dict[str, list[Outbound]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        for queue, outbound in by_queue.items():
            sender, turn = await self._sender(queue)
            try:
                async with turn:
                    await self._send_batches(sender, outbound)
            except ServiceBusError as error:
                failure = TransientError("ServiceBusUnavailable", f"send to {queue}: {type(error).__name__}")
            else:
                continue
            raise failure

    async def _send_batches(self, sender: ServiceBusSender, outbound: Sequence[Outbound]) -> None:
        from azure.servicebus import ServiceBusMessage

        batch = await sender.create_message_batch()
        for message in outbound:
            sdk_message = ServiceBusMessage(
                message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                session_id=message.session_id,
                subject=message.subject,
                content_type=message.content_type,
                application_properties={k: v for k, v in message.application_properties.items()},
            )
            try:
                batch.add_message(sdk_message)
            except ValueError:  # full: send what it holds, start the next
                await sender.send_messages(batch)
                batch = await sender.create_message_batch()
                batch.add_message(sdk_message)
        await sender.send_messages(batch)

    async def close(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.close()
