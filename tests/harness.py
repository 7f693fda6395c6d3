"""Drives the real function entry points (built from ``function_app.app``) with real
``azure.functions`` message objects, as the Functions host would.

Everything the functions send out is kept, in order, for the leak detector (tests/leaks.py):
``outputs`` (every value set on an output binding: replies, rotation messages, events),
``failures`` (every exception a function raised: its traceback and everything reachable from
its cause and context chain, see tests/leaks.py) and ``dead_letters``
(the reason of every message ``settle`` dead-lettered).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

from tests.reachable import exception_text

outputs: list[str] = []
failures: list[str] = []
dead_letters: list[str] = []


class Output(func.Out[str]):
    """An output binding: what the function set is what the host would send."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val
        outputs.append(val if isinstance(val, str) else json.dumps(val, default=str))

    def get(self) -> str:
        assert self.value is not None, "the function set no output"
        return self.value


class Outputs(func.Out[list[str]]):
    """A list output binding (many messages at once, as the rotation functions send them);
    each message is recorded for the leak detector like any other output."""

    def __init__(self) -> None:
        self.value: list[str] = []

    def set(self, val: list[str]) -> None:
        self.value = list(val)
        outputs.extend(self.value)

    def get(self) -> list[str]:
        return self.value


@functools.cache
def functions() -> dict[str, Callable[..., Any]]:
    from function_app import app

    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


def message(
    body: dict[str, Any] | bytes | str, *, message_id: str | None = None, delivery_count: int = 1
) -> ServiceBusMessage:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return ServiceBusMessage(
        body=raw,
        message_id=message_id or str(uuid.uuid4()),
        delivery_count=delivery_count,
        content_type="application/json",
        application_properties={},
        user_properties={},
    )


async def register(
    body: dict[str, Any] | bytes | str, *, message_id: str | None = None, delivery_count: int = 1
) -> dict[str, Any]:
    """One delivery of a registration message; the reply as JSON (raises what the function raises)."""
    reply = Output()
    try:
        await functions()["register_application"](
            message(body, message_id=message_id, delivery_count=delivery_count), reply
        )
    except BaseException as error:
        failures.append(exception_text(error))
        raise
    result: dict[str, Any] = json.loads(reply.get())
    return result


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
