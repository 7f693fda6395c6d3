"""Service Bus envelopes: what the service reads off a request message, and the properties of
every message it sends. Pure; the adapter (shared.adapters.servicebus) turns an ``Outbound``
into an azure-servicebus message.

**Request-reply** (Service Bus's documented pattern, learn.microsoft.com/azure/service-bus-messaging/
service-bus-messages-payloads): the reply goes to the request's ``ReplyTo`` when it names one
of the namespace's queues (never one the service itself reads from or emits events to),
else to ``RESULTS_QUEUE``; its ``CorrelationId`` is the request's ``MessageId``; its
``SessionId`` is the request's ``ReplyToSessionId`` when set, so a requester waiting on a
session receives exactly its own replies. The subject is the status; the application
properties carry ``requestId`` and ``status``.

**One outcome per request.** A reply's ``MessageId`` is derived from the request's, and a
rotation message's or an event's from its body, so a redelivered request, or a timer that
fired twice, sends a message Service Bus's duplicate detection drops (within the queue's
window: ``duplicateDetectionHistoryTimeWindow``, 10 minutes by default, up to 7 days).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from shared.messages.replies import RegistrationReply

_NAMESPACE = uuid.UUID("3e1c9a4f-7b2d-4c6e-8f10-5a9d2b7c4e61")
_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,259}")
JSON = "application/json"


@dataclass(frozen=True)
class Inbound:
    """What the service reads off a request message besides its body."""

    message_id: str
    reply_to: str | None = None
    reply_to_session_id: str | None = None


@dataclass(frozen=True)
class Outbound:
    """One message to send, with the properties Service Bus routes and deduplicates by."""

    queue: str
    body: bytes
    message_id: str
    correlation_id: str | None = None
    session_id: str | None = None
    subject: str | None = None
    application_properties: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


def derived_id(kind: str, key: str | bytes) -> str:
    """A message id that is the same whenever ``kind`` and ``key`` are."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\n{text}"))


def reply_queue(reply_to: str | None, results_queue: str, namespace: str | None, own: Iterable[str]) -> str:
    """Where a reply goes: the request's ``ReplyTo`` when it names a queue of this namespace
    that is not one of the service's ``own`` (its input and event queues), else the results
    queue. ``ReplyTo`` may be a queue name or an address in the namespace
    (``sb://{namespace}/{queue}``, ``https://{namespace}/{queue}``)."""
    if not reply_to:
        return results_queue
    name = reply_to
    if "://" in reply_to:
        parsed = urlparse(reply_to)
        if namespace is None or (parsed.netloc or "").lower() != namespace.lower():
            return results_queue
        name = parsed.path.strip("/")
    folded = {q.lower() for q in own}
    if not _QUEUE.fullmatch(name) or name.lower() in folded:
        return results_queue
    return name


def reply_envelope(
    request: Inbound,
    reply: RegistrationReply,
    *,
    results_queue: str,
    namespace: str | None = None,
    own_queues: Iterable[str] = (),
) -> Outbound:
    """The reply's message, correlated to the request as the request-reply pattern says."""
    properties: dict[str, str] = {"status": reply.status}
    if reply.request_id is not None:
        properties["requestId"] = reply.request_id
    return Outbound(
        queue=reply_queue(request.reply_to, results_queue, namespace, own_queues),
        body=reply.model_dump_json(by_alias=True).encode(),
        message_id=derived_id("reply", request.message_id),
        correlation_id=request.message_id,
        session_id=request.reply_to_session_id or None,
        subject=reply.status,
        application_properties=properties,
    )


def body_envelopes(queue: str, kind: str, bodies: Iterable[str]) -> list[Outbound]:
    """Rotation messages or events: each one's id derived from its body."""
    return [
        Outbound(queue=queue, body=b.encode(), message_id=derived_id(kind, b), subject=kind) for b in bodies
    ]
