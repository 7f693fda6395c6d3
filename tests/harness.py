"""Drives the real function entry points (built from ``function_app.app``) with real
``azure.functions`` message objects, as the Functions host would."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage


class Output(func.Out[str]):
    """An output binding: what the function set is what the host would send."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str:
        assert self.value is not None, "the function set no output"
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
    await functions()["register_application"](
        message(body, message_id=message_id, delivery_count=delivery_count), reply
    )
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
