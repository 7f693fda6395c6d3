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
        self._lock = asyncio.Lock()

    async def _sender(self, queue: str) -> ServiceBusSender:
        async with self._lock:
            sender = self._senders.get(queue)
            if sender is None:
                sender = self._senders[queue] = self.client.get_queue_sender(queue)
            return sender

    async def send(self, messages: Sequence[Outbound]) -> None:
        """Send ``messages``, each queue's as one batch (split when a batch is full). Raises
        ``TransientError`` when Service Bus cannot be reached or refuses."""
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import ServiceBusError

        by_queue: dict[str, list[Outbound]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        for queue, outbound in by_queue.items():
            try:
                sender = await self._sender(queue)
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
            except ServiceBusError as error:
                failure = TransientError("ServiceBusUnavailable", f"send to {queue}: {type(error).__name__}")
            else:
                continue
            raise failure

    async def close(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.close()
