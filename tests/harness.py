"""Drives the real function entry points (built from ``function_app.app``) with real
``azure.functions`` message objects, as the Functions host would, and reads what they send
from the emulated Service Bus namespace through azure-servicebus, as the ticketing system and
the host would.

Everything the functions send out is kept, in order, for the leak detector (tests/leaks.py):
``outputs`` (every message read back: replies, rotation messages, events), ``failures``
(every exception a function raised: its traceback and everything reachable from its cause and
context chain, see tests/leaks.py) and ``dead_letters`` (the reason of every message
``settle`` dead-lettered).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from tests.reachable import exception_text

outputs: list[str] = []
failures: list[str] = []
dead_letters: list[str] = []

# How long a reply may take to show up once the function returned (it was sent before).
REPLY_WAIT = 10.0
# A redelivery's reply carries the first reply's MessageId: duplicate detection drops it.
DUPLICATE_WAIT = 0.5


class _Namespace:
    """The emulated namespace as a receiver sees it: one azure-servicebus client for the
    session's event loop, one receive-and-delete receiver per queue, and the replies received
    so far by the request message id they correlate to."""

    def __init__(self) -> None:
        self.client: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.receivers: dict[str, Any] = {}
        # One receive at a time per receiver: azure-servicebus's receiver is not safe for
        # concurrent receives (two at once can both open its link, and one tears down the
        # other's handler). Whoever receives keeps what it got for the others, by correlation.
        self.reading: dict[str, asyncio.Lock] = {}
        # By the request message id a reply correlates to: the first reply received, and those
        # received but not yet handed to their caller.
        self.first_reply: dict[str, dict[str, Any]] = {}
        self.unread: dict[str, list[dict[str, Any]]] = {}

    async def receiver(self, queue: str) -> Any:
        from azure.servicebus import ServiceBusReceiveMode
        from azure.servicebus.aio import ServiceBusClient

        loop = asyncio.get_running_loop()
        if self.client is None or self.loop is not loop:
            self.client = ServiceBusClient.from_connection_string(os.environ["ServiceBusConnection"])
            self.loop, self.receivers, self.reading = loop, {}, {}
        if queue not in self.receivers:
            self.reading[queue] = asyncio.Lock()
            self.receivers[queue] = self.client.get_queue_receiver(
                queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
            )
        return self.receivers[queue]

    async def take(self, queue: str, count: int) -> list[Any]:
        """Exactly ``count`` messages of ``queue`` (all there are, by the emulator's count)."""
        receiver = await self.receiver(queue)
        taken: list[Any] = []
        while len(taken) < count:
            async with self.reading[queue]:
                batch = await receiver.receive_messages(
                    max_message_count=count - len(taken), max_wait_time=REPLY_WAIT
                )
            assert batch, f"{queue}: {count - len(taken)} messages never came"
            taken.extend(batch)
        for m in taken:
            outputs.append(text(m))
        return taken

    async def reply_to(self, message_id: str, queue: str, wait: float) -> dict[str, Any] | None:
        """The next reply correlated to ``message_id`` on ``queue``, or None after ``wait``."""
        receiver = await self.receiver(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            pending = self.unread.get(message_id)
            if pending:
                return pending.pop(0)
            if message_id in self.first_reply:
                # Another caller took the first reply meanwhile: this one is a redelivery's,
                # which Service Bus's duplicate detection drops; wait no longer than for one.
                deadline = min(deadline, loop.time() + DUPLICATE_WAIT)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            async with self.reading[queue]:
                if self.unread.get(message_id):
                    continue  # another caller received it while this one waited its turn
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    continue
                batch = await receiver.receive_messages(max_message_count=1, max_wait_time=left)
            for m in batch:
                outputs.append(text(m))
                reply = json.loads(text(m))
                correlation = str(m.correlation_id)
                self.first_reply.setdefault(correlation, reply)
                self.unread.setdefault(correlation, []).append(reply)

    async def close(self) -> None:
        if self.client is not None:
            for receiver in self.receivers.values():
                await receiver.close()
            await self.client.close()
        self.client, self.receivers, self.reading = None, {}, {}


namespace = _Namespace()


def text(message: Any) -> str:
    body = message.body
    return (body if isinstance(body, bytes) else b"".join(body)).decode()


def queue_counts() -> dict[str, int]:
    """Active messages per queue, by the emulator's control plane."""
    from emulator.launcher import AdminClient

    queues = AdminClient(dict(os.environ)).request("GET", "/_emulator/servicebus/queues").json()
    return {q["name"]: int(q["active"]) for q in queues["value"]}


def forget() -> None:
    """The emulator was reset: replies received before belong to another test."""
    namespace.first_reply.clear()
    namespace.unread.clear()


def functions() -> dict[str, Callable[..., Any]]:
    """The app's functions by name, indexed as the worker (and the local host) index them."""
    from emulator.functions_host import index

    return {f.name: f.call for f in index()}


def message(
    body: dict[str, Any] | bytes | str,
    *,
    message_id: str | None = None,
    delivery_count: int = 1,
    reply_to: str | None = None,
    reply_to_session_id: str | None = None,
) -> ServiceBusMessage:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return ServiceBusMessage(
        body=raw,
        message_id=message_id or str(uuid.uuid4()),
        delivery_count=delivery_count,
        content_type="application/json",
        reply_to=reply_to,
        reply_to_session_id=reply_to_session_id,
        application_properties={},
        user_properties={},
    )


async def register(
    body: dict[str, Any] | bytes | str, *, message_id: str | None = None, delivery_count: int = 1
) -> dict[str, Any]:
    """One delivery of a registration message; the reply the ticket receives, as JSON (raises
    what the function raises). A redelivery's reply is dropped by duplicate detection: the
    ticket keeps the first, which is what this returns then."""
    message_id = message_id or str(uuid.uuid4())
    try:
        await functions()["register_application"](
            message(body, message_id=message_id, delivery_count=delivery_count)
        )
    except BaseException as error:
        failures.append(exception_text(error))
        raise
    results = os.environ.get("RESULTS_QUEUE", "app-registration-results")
    seen = message_id in namespace.first_reply
    reply = await namespace.reply_to(message_id, results, DUPLICATE_WAIT if seen else REPLY_WAIT)
    if reply is None and message_id in namespace.first_reply:
        reply = dict(namespace.first_reply[message_id])
    assert reply is not None, f"no reply to {message_id}"
    return reply


async def run_scheduler(past_due: bool = False) -> tuple[list[str], list[str]]:
    """One timer run: the rotation messages and the events it sent."""
    await functions()["rotation_scheduler"](TimerRequest(past_due=past_due))
    return await sent(rotations=True)


async def rotate(body: str | bytes, *, message_id: str | None = None, delivery_count: int = 1) -> list[str]:
    """One delivery of a rotation message: the events sent since the last look (those of
    concurrent deliveries too; raises what the function raises)."""
    try:
        await functions()["rotate_application"](
            message(body, message_id=message_id, delivery_count=delivery_count)
        )
    except BaseException as error:
        failures.append(exception_text(error))
        raise
    return (await sent(rotations=False))[1]


_looking = asyncio.Lock()


async def sent(*, rotations: bool) -> tuple[list[str], list[str]]:
    async with _looking:
        return await _take_sent(rotations=rotations)


async def _take_sent(*, rotations: bool) -> tuple[list[str], list[str]]:
    after = queue_counts()
    rotation_queue = os.environ.get("ROTATION_QUEUE", "app-credential-rotation")
    events_queue = os.environ.get("EVENTS_QUEUE", "app-credential-events")
    sent_rotations: list[str] = []
    if rotations:
        new = after.get(rotation_queue, 0)
        sent_rotations = [text(m) for m in await namespace.take(rotation_queue, new)] if new else []
    new_events = after.get(events_queue, 0)
    events = [text(m) for m in await namespace.take(events_queue, new_events)] if new_events else []
    return sent_rotations, events


async def deliver_until_settled(
    body: dict[str, Any], *, max_deliveries: int = 10
) -> tuple[dict[str, Any], int]:
    """Deliver like Service Bus: an exception abandons the message and it comes back, with
    the same message id and a higher delivery count. Returns (reply, deliveries)."""
    message_id = str(uuid.uuid4())
    for count in range(1, max_deliveries + 1):
        try:
            return await register(body, message_id=message_id, delivery_count=count), count
        except Exception:  # the host abandons the message on any exception
            if count == max_deliveries:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Settled:
    """How Service Bus settled one message: completed with a reply, or dead-lettered."""

    message_id: str
    deliveries: int
    reply: dict[str, Any] | None = None
    dead_letter_reason: str | None = None


async def settle(
    body: dict[str, Any] | bytes | str, *, message_id: str | None = None, max_deliveries: int = 10
) -> Settled:
    """Deliver like Service Bus with ``maxDeliveryCount`` = ``max_deliveries``: an exception
    abandons the message and it comes back (same message id, delivery count + 1); after the
    last delivery raises, the message is dead-lettered instead of raising here."""
    message_id = message_id or str(uuid.uuid4())
    for count in range(1, max_deliveries + 1):
        try:
            reply = await register(body, message_id=message_id, delivery_count=count)
        except Exception as error:  # the host abandons the message on any exception
            if count == max_deliveries:
                reason = f"MaxDeliveryCountExceeded: {type(error).__name__}: {error}"
                dead_letters.append(reason)
                return Settled(message_id, count, dead_letter_reason=reason)
            continue
        return Settled(message_id, count, reply=reply)
    raise AssertionError("unreachable")
