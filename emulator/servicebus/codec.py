"""AMQP 1.0 messages as the emulated Service Bus stores and hands them out (proton's codec).

A message arrives as a sequence of described sections (AMQP 1.0 part 3.2): header, delivery
annotations, message annotations, properties, application properties, a body (data sections,
sequence sections or one value) and a footer. The *bare message* (properties, application
properties, body) is immutable in AMQP and Service Bus hands it back as it was sent, so it is
kept here as the encoded bytes received; the header and the message annotations are rebuilt on
every delivery (delivery count, the broker's ``x-opt-*`` annotations), and delivery annotations
are dropped (they are for one hop). The one change Service Bus makes to the bare message is on
dead-lettering: it adds ``DeadLetterReason`` and ``DeadLetterErrorDescription`` to the
application properties, which are then re-encoded.

A *batch* (message format ``0x80013700``, what azure-servicebus sends for a
``ServiceBusMessageBatch``) carries one encoded message in each data section.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, cast

from proton import UNDESCRIBED, Array, Data, Described, symbol, timestamp, ubyte, uint, ulong

HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES = 0x70, 0x71, 0x72, 0x73
APPLICATION_PROPERTIES, DATA, SEQUENCE, VALUE, FOOTER = 0x74, 0x75, 0x76, 0x77, 0x78
_SYMBOLIC = {
    "amqp:header:list": HEADER,
    "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES,
    "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": SEQUENCE,
    "amqp:amqp-value:*": VALUE,
    "amqp:footer:map": FOOTER,
}
BATCH_FORMAT = 0x80013700
# .NET DateTime ticks (100 ns) at the Unix epoch: how Service Bus writes some times on the wire
# (``com.microsoft:locked-until-utc`` on a session receiver's attach).
DOTNET_EPOCH_TICKS = 621_355_968_000_000_000

X_OPT_SEQUENCE_NUMBER = symbol("x-opt-sequence-number")
X_OPT_ENQUEUED_TIME = symbol("x-opt-enqueued-time")
X_OPT_LOCKED_UNTIL = symbol("x-opt-locked-until")
X_OPT_SCHEDULED_ENQUEUE_TIME = symbol("x-opt-scheduled-enqueue-time")
X_OPT_PARTITION_KEY = symbol("x-opt-partition-key")
X_OPT_MESSAGE_STATE = symbol("x-opt-message-state")
MESSAGE_STATES = {"active": 0, "deferred": 1, "scheduled": 2}
_BROKER_ANNOTATIONS = (X_OPT_SEQUENCE_NUMBER, X_OPT_ENQUEUED_TIME, X_OPT_LOCKED_UNTIL, X_OPT_MESSAGE_STATE)

_PROPERTY_FIELDS = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)


class MalformedMessage(ValueError):
    """The bytes are not an AMQP 1.0 message."""


def ms(moment: dt.datetime) -> timestamp:
    """An AMQP timestamp: milliseconds since the Unix epoch."""
    return timestamp(int(moment.timestamp() * 1000))


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)


def ticks(moment: dt.datetime) -> int:
    """.NET ticks of a UTC time."""
    return DOTNET_EPOCH_TICKS + int(moment.timestamp() * 10_000_000)


def array(amqp_type: int, values: list[Any]) -> Array:
    """An AMQP array of ``amqp_type`` (``Data.LONG``, ``Data.TIMESTAMP``, ``Data.STRING``)."""
    return Array(cast(Any, UNDESCRIBED), amqp_type, *values)


def encode(*values: Any) -> bytes:
    data = Data()
    for value in values:
        data.put_object(value)
    return bytes(data.encode())


def owned(value: Any) -> Any:
    """``value`` with every binary copied out of proton's buffer (proton hands binaries out as
    memoryviews into a ``Data`` that is freed with it)."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, Described):
        return Described(owned(value.descriptor), owned(value.value))
    if isinstance(value, Array):
        return Array(value.descriptor, value.type, *[owned(v) for v in value.elements])
    if isinstance(value, dict):
        return value.__class__({owned(k): owned(v) for k, v in value.items()})
    if isinstance(value, list):
        return [owned(v) for v in value]
    return value


def decode_one(payload: bytes) -> tuple[Any, int]:
    """The first AMQP value in ``payload`` and how many bytes it took."""
    data = Data()
    try:
        size = data.decode(payload)
        data.rewind()
        data.next()
        return owned(data.get_object()), size
    except Exception as exc:  # proton raises DataException and friends
        raise MalformedMessage(f"not an AMQP value: {exc}") from None


def _code(descriptor: Any) -> int:
    if isinstance(descriptor, symbol):
        code = _SYMBOLIC.get(str(descriptor))
        if code is None:
            raise MalformedMessage(f"unknown section {descriptor}")
        return code
    return int(descriptor)


def sections(payload: bytes) -> list[tuple[int, bytes, Any]]:
    """``payload`` split into (section code, its encoded bytes, its decoded value)."""
    out: list[tuple[int, bytes, Any]] = []
    position = 0
    view = memoryview(payload)
    while position < len(payload):
        value, size = decode_one(bytes(view[position:]))
        if not isinstance(value, Described):
            raise MalformedMessage("a message section must be a described type")
        code = _code(value.descriptor)
        if not HEADER <= code <= FOOTER:
            raise MalformedMessage(f"unknown section 0x{code:x}")
        out.append((code, bytes(view[position : position + size]), value.value))
        position += size
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass(frozen=True)
class Envelope:
    """One message as stored: the sender's header fields and message annotations, the bare
    message's encoded sections, and the properties the broker reads."""

    properties_section: bytes = b""
    application_properties_section: bytes = b""
    body: bytes = b""  # body sections and footer, as sent
    durable: bool | None = None
    priority: int | None = None
    ttl_ms: int | None = None
    annotations: dict[Any, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str | None:
        return _text(self.properties.get("message_id"))

    @property
    def session_id(self) -> str | None:
        return _text(self.properties.get("group_id"))

    @property
    def scheduled_enqueue_time(self) -> dt.datetime | None:
        value = self.annotations.get(X_OPT_SCHEDULED_ENQUEUE_TIME)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return from_ms(int(value))

    def application_properties(self) -> dict[Any, Any]:
        if not self.application_properties_section:
            return {}
        value, _ = decode_one(self.application_properties_section)
        return dict(value.value or {})

    def with_application_properties(self, extra: dict[str, Any]) -> Envelope:
        """A copy whose application properties also hold ``extra`` (dead-lettering)."""
        merged = {**self.application_properties(), **extra}
        return replace(
            self, application_properties_section=encode(Described(ulong(APPLICATION_PROPERTIES), merged))
        )

    def body_size(self) -> int:
        return len(self.body)


def parse(payload: bytes) -> Envelope:
    """An incoming message, as the broker stores it."""
    durable = priority = ttl = None
    annotations: dict[Any, Any] = {}
    properties: dict[str, Any] = {}
    properties_section = application_section = b""
    body: list[bytes] = []
    for code, raw, value in sections(payload):
        if code == HEADER:
            fields = list(value or []) + [None] * 5
            durable, priority, ttl = fields[0], fields[1], fields[2]
        elif code == MESSAGE_ANNOTATIONS:
            annotations = {
                k: v for k, v in dict(value or {}).items() if symbol(str(k)) not in _BROKER_ANNOTATIONS
            }
        elif code == PROPERTIES:
            properties_section = raw
            properties = {name: item for name, item in zip(_PROPERTY_FIELDS, list(value or []), strict=False)}
        elif code == APPLICATION_PROPERTIES:
            application_section = raw
        elif code in (DATA, SEQUENCE, VALUE, FOOTER):
            body.append(raw)
    return Envelope(
        properties_section=properties_section,
        application_properties_section=application_section,
        body=b"".join(body),
        durable=None if durable is None else bool(durable),
        priority=None if priority is None else int(priority),
        ttl_ms=None if ttl is None else int(ttl),
        annotations=annotations,
        properties=properties,
    )


def unbatch(payload: bytes) -> list[bytes]:
    """The messages of a batch (format ``0x80013700``): each data section's content."""
    return [value for code, _, value in sections(payload) if code == DATA]


def build(
    *,
    properties: dict[str, Any],
    application_properties: dict[str, Any],
    body: bytes,
    ttl_ms: int | None = None,
    annotations: dict[Any, Any] | None = None,
) -> Envelope:
    """A message made by the broker itself (the REST gateway): one data section."""
    fields = [properties.get(name) for name in _PROPERTY_FIELDS]
    while fields and fields[-1] is None:
        fields.pop()
    return Envelope(
        properties_section=encode(Described(ulong(PROPERTIES), fields)) if fields else b"",
        application_properties_section=(
            encode(Described(ulong(APPLICATION_PROPERTIES), cast(Any, application_properties)))
            if application_properties
            else b""
        ),
        body=encode(Described(ulong(DATA), body)),
        ttl_ms=ttl_ms,
        annotations=dict(annotations or {}),
        properties={k: v for k, v in properties.items() if v is not None},
    )


def render(envelope: Envelope, *, delivery_count: int, broker_annotations: dict[Any, Any]) -> bytes:
    """The message as delivered: a header with the delivery count, the sender's message
    annotations plus the broker's, then the bare message as sent."""
    header: list[Any] = [envelope.durable, None if envelope.priority is None else ubyte(envelope.priority)]
    header += [None if envelope.ttl_ms is None else uint(envelope.ttl_ms), None, uint(delivery_count)]
    annotations = {**envelope.annotations, **broker_annotations}
    return (
        encode(
            Described(ulong(HEADER), cast(Any, header)), Described(ulong(MESSAGE_ANNOTATIONS), annotations)
        )
        + envelope.properties_section
        + envelope.application_properties_section
        + envelope.body
    )


def jsonable(value: Any) -> Any:
    """An AMQP value as JSON can hold it (for the control plane)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, symbol) else str(value)
    if isinstance(value, bytes):
        return {"binary": base64.b64encode(value).decode()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Array):
        return [jsonable(v) for v in value.elements]
    if isinstance(value, Described):
        return {"descriptor": jsonable(value.descriptor), "value": jsonable(value.value)}
    return str(value)


def describe_body(envelope: Envelope) -> dict[str, Any]:
    """The body for the control plane: data sections as base64, a value or sequence as JSON."""
    parts = [(code, value) for code, _, value in sections(envelope.body) if code != FOOTER]
    if parts and all(code == DATA for code, _ in parts):
        return {"bodyType": "data", "body": base64.b64encode(b"".join(v for _, v in parts)).decode()}
    if parts and parts[0][0] == VALUE:
        return {"bodyType": "value", "body": jsonable(parts[0][1])}
    return {"bodyType": "sequence", "body": [jsonable(v) for _, v in parts]}


def describe_properties(envelope: Envelope) -> dict[str, Any]:
    """The AMQP properties under Service Bus's names."""
    p = envelope.properties
    return {
        "messageId": _text(p.get("message_id")),
        "correlationId": _text(p.get("correlation_id")),
        "sessionId": _text(p.get("group_id")),
        "replyTo": _text(p.get("reply_to")),
        "replyToSessionId": _text(p.get("reply_to_group_id")),
        "subject": _text(p.get("subject")),
        "contentType": _text(p.get("content_type")),
        "to": _text(p.get("to")),
        "timeToLive": None if envelope.ttl_ms is None else envelope.ttl_ms / 1000,
        "applicationProperties": jsonable(envelope.application_properties()),
    }
