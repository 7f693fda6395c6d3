"""Service Bus's REST send (``POST https://{namespace}/{queue}/messages``) on the emulator's
HTTPS port, into the same queues the AMQP broker serves.

As the REST reference documents it (send-message-to-queue, message-headers-and-properties):

- ``Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…`` (emulator.servicebus.auth; the
  resource is ``https://{host}/{queue}``) or ``Authorization: Bearer {Entra token for
  https://servicebus.azure.net}``;
- the body is the message body (one AMQP data section, as received by AMQP clients), the
  ``Content-Type`` header its content type;
- ``BrokerProperties``: JSON with ``MessageId``, ``CorrelationId``, ``SessionId``, ``ReplyTo``,
  ``ReplyToSessionId``, ``Label`` (the subject), ``To``, ``TimeToLive`` (seconds),
  ``ScheduledEnqueueTimeUtc`` (an RFC 1123 date) and ``PartitionKey``; other broker properties
  are ignored, as documented. A message sent without ``MessageId`` gets a new GUID (the
  ``N`` format), as the REST gateway assigns one;
- every other non-standard header becomes an application property: a JSON literal (``"High"``,
  ``12``, ``true``) is read as JSON, anything else as the string it is. HTTP header names are
  case-insensitive and reach the emulator lower-cased, so property names arrive lower-cased;
- 201 Created with an empty body; errors in Service Bus's REST format,
  ``<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>``: 400 for bad
  ``BrokerProperties`` or a message a session queue refuses, 401 (``MissingToken``,
  ``MalformedToken``, ``InvalidSignature``, ``ExpiredToken``, ``InvalidAudience``), 403 for a
  message above 256 KB, 404 for a queue that does not exist (the reference's table says 410;
  the service's own detail text says the entity "could not be found").

Not emulated: batch send (``application/vnd.microsoft.servicebus.json``), REST receive, peek,
unlock and delete, topics.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import uuid
from typing import Any

from proton import symbol
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.errors import PlatformError
from emulator.servicebus import auth, codec, conditions
from emulator.servicebus.conditions import AmqpError
from emulator.servicebus.namespace import Namespace

MAX_MESSAGE_SIZE = 256 * 1024
# Headers that carry HTTP itself, or the message's own fields: never application properties.
STANDARD_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "authorization",
        "brokerproperties",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "date",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "pragma",
        "proxy-authorization",
        "proxy-connection",
        "referer",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-ms-retrypolicy",
    }
)


def _error(status: int, detail: str, tracker: str) -> PlatformError:
    return PlatformError(status, str(status), conditions.tracked(detail, tracker), service="servicebus")


def _property(value: str) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, str | int | float | bool) else value


def _time(value: Any) -> dt.datetime:
    text = str(value)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def envelope_of(body: bytes, headers: dict[str, str], broker: dict[str, Any]) -> codec.Envelope:
    """The AMQP message a REST send makes."""
    annotations: dict[Any, Any] = {}
    if broker.get("ScheduledEnqueueTimeUtc"):
        annotations[codec.X_OPT_SCHEDULED_ENQUEUE_TIME] = codec.ms(_time(broker["ScheduledEnqueueTimeUtc"]))
    if broker.get("PartitionKey") is not None:
        annotations[codec.X_OPT_PARTITION_KEY] = str(broker["PartitionKey"])
    ttl = broker.get("TimeToLive")
    content_type = headers.get("content-type")
    application = {
        name: _property(value) for name, value in headers.items() if name.lower() not in STANDARD_HEADERS
    }
    return codec.build(
        properties={
            "message_id": _text(broker.get("MessageId")) or uuid.uuid4().hex,
            "to": _text(broker.get("To")),
            "subject": _text(broker.get("Label")),
            "reply_to": _text(broker.get("ReplyTo")),
            "correlation_id": _text(broker.get("CorrelationId")),
            "content_type": symbol(content_type) if content_type else None,
            "group_id": _text(broker.get("SessionId")),
            "reply_to_group_id": _text(broker.get("ReplyToSessionId")),
        },
        application_properties=application,
        body=body,
        ttl_ms=None if ttl is None else int(float(ttl) * 1000),
        annotations=annotations,
    )


def routes(namespace: Namespace) -> list[Route]:
    async def send(request: Request) -> Response:
        queue = request.path_params["queue"]
        tracker = f"{namespace.amqp_host}:{queue}"
        header = request.headers.get("authorization", "")
        resource = f"https://{request.headers.get('host', '')}/{queue}"
        if not header:
            raise _error(
                401,
                "MissingToken: The authorization header was not found. To know more visit "
                "https://aka.ms/sbResourceMgrExceptions. ",
                tracker,
            )
        try:
            if header.lower().startswith("bearer "):
                namespace.authorize(auth.JWT_TOKEN_TYPE, header[7:].strip(), resource)
            else:
                namespace.authorize(auth.SAS_TOKEN_TYPE, header, resource)
        except auth.Rejected as rejected:
            raise _error(401, rejected.detail, tracker) from None
        try:
            namespace.entity(queue)
        except AmqpError as missing:
            raise PlatformError(404, "404", missing.description, service="servicebus") from None
        body = await request.body()
        if len(body) > MAX_MESSAGE_SIZE:
            raise _error(
                403,
                f"The received message (size:{len(body)} bytes) exceeds the limit ({MAX_MESSAGE_SIZE} bytes) "
                "currently allowed on the entity.",
                tracker,
            )
        try:
            broker = json.loads(request.headers.get("brokerproperties") or "{}")
            if not isinstance(broker, dict):
                raise ValueError("not a JSON object")
            envelope = envelope_of(body, dict(request.headers.items()), broker)
        except (ValueError, TypeError) as bad:
            raise _error(400, f"The BrokerProperties header is not valid: {bad}.", tracker) from None
        try:
            namespace.send(queue, [envelope])
        except AmqpError as refused:
            raise PlatformError(400, "400", refused.description, service="servicebus") from None
        content_type = request.headers.get("content-type")
        return Response(status_code=201, headers={"Content-Type": content_type} if content_type else None)

    return [Route("/{queue}/messages", send, methods=["POST"])]
