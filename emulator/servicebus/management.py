"""The request-response nodes: ``$cbs`` (claims-based security) and ``{entity}/$management``
(service-bus-amqp-request-response).

A request is an AMQP message whose application properties name the ``operation`` and whose
body is an AMQP map; the answer carries the request's ``message-id`` as its
``correlation-id``, a status code and description in application properties (``status-code`` /
``status-description`` on ``$cbs``, ``statusCode`` / ``statusDescription`` on
``$management``, plus ``errorCondition`` when it failed) and a map body.

``$cbs``: ``put-token`` with ``type`` (``servicebus.windows.net:sastoken`` or ``jwt``),
``name`` (the audience: a resource URI) and the token as the body. 202 on success; 401 for a
token that does not verify or does not cover the audience; 404 when the audience names an
entity that does not exist (as the service answers it: the SDKs then report "Put token failed.
status-code: 404 … could not be found").

``$management``: ``com.microsoft:renew-lock``, ``update-disposition``, ``receive-by-sequence-number``,
``peek-message``, ``schedule-message``, ``cancel-scheduled-message``, ``renew-session-lock``,
``get-session-state``, ``set-session-state``, ``get-message-sessions``. Rules and filters
(topics) are not emulated: any other operation answers 501 ``amqp:not-implemented``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from proton import Array, Data, Message, symbol

from emulator.servicebus import auth, codec, conditions
from emulator.servicebus.conditions import AmqpError
from emulator.servicebus.entities import Delivered, Outcome
from emulator.servicebus.namespace import Entity, Namespace, entity_path

_LOG = logging.getLogger(__name__)

OPERATION = "operation"
_DISPOSITIONS: dict[str, Outcome] = {
    "completed": "complete",
    "abandoned": "abandon",
    "defered": "defer",  # sic: the wire spelling
    "deferred": "defer",
    "suspended": "dead-letter",
}


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Array):
        return list(value.elements)
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    return uuid.UUID(str(value))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _reply(request: Message, properties: dict[str, Any], body: Any = None) -> Message:
    return Message(body=body, properties=properties, correlation_id=request.id)


def cbs(namespace: Namespace, request: Message, grants: list[auth.Grant]) -> Message:
    properties: dict[Any, Any] = request.properties or {}

    def answer(status: int, description: str) -> Message:
        return _reply(request, {"status-code": status, "status-description": description})

    if properties.get(OPERATION) != "put-token":
        return answer(400, "The operation is not supported on $cbs.")
    name = _text(properties.get("name")) or ""
    token_type = _text(properties.get("type")) or ""
    token = _text(request.body)
    if not token:
        return answer(400, "The token is missing.")
    try:
        grant = namespace.authorize(token_type, token, name)
    except auth.Rejected as rejected:
        _LOG.info("put-token refused for %s: %s %r", name, rejected.code, token_type)
        return answer(401, conditions.tracked(rejected.detail, f"{namespace.amqp_host}:{entity_path(name)}"))
    path = entity_path(name)
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1].lower() == "$management":
        parts.pop()
    if parts:
        try:
            namespace.entity("/".join(parts))
        except AmqpError as missing:
            return answer(404, missing.description)
    grants.append(grant)
    return answer(202, "Accepted")


class Management:
    """One entity's ``$management`` node."""

    def __init__(self, namespace: Namespace, entity: Entity, owner_of: Callable[[str | None], str]) -> None:
        self.namespace = namespace
        self.entity = entity
        self.owner_of = owner_of

    def handle(self, request: Message) -> Message:
        properties: dict[Any, Any] = request.properties or {}
        operation = _text(properties.get(OPERATION)) or ""
        body = request.body if isinstance(request.body, dict) else {}
        body = {_text(k): v for k, v in body.items()}
        associated = _text(properties.get("associated-link-name"))
        handler = {
            "com.microsoft:renew-lock": self._renew_lock,
            "com.microsoft:update-disposition": self._update_disposition,
            "com.microsoft:receive-by-sequence-number": self._receive_by_sequence_number,
            "com.microsoft:peek-message": self._peek_message,
            "com.microsoft:schedule-message": self._schedule_message,
            "com.microsoft:cancel-scheduled-message": self._cancel_scheduled_message,
            "com.microsoft:renew-session-lock": self._renew_session_lock,
            "com.microsoft:get-session-state": self._get_session_state,
            "com.microsoft:set-session-state": self._set_session_state,
            "com.microsoft:get-message-sessions": self._get_message_sessions,
        }.get(operation)
        try:
            if handler is None:
                raise AmqpError(
                    conditions.NOT_IMPLEMENTED,
                    conditions.tracked(f"The operation '{operation}' is not supported.", self.entity.path),
                )
            status, response = handler(body, associated)
        except AmqpError as error:
            return _reply(
                request,
                {
                    "statusCode": error.status,
                    "statusDescription": error.description,
                    "errorCondition": symbol(error.condition),
                },
            )
        except (KeyError, TypeError, ValueError) as error:
            return _reply(
                request,
                {
                    "statusCode": 400,
                    "statusDescription": conditions.tracked(
                        f"The request is invalid: {error!r}.", self.entity.path
                    ),
                    "errorCondition": symbol(conditions.ARGUMENT_ERROR),
                },
            )
        description = {200: "OK", 204: "No Content"}.get(status, "")
        return _reply(request, {"statusCode": status, "statusDescription": description}, response)

    # -- operations: (body, associated link name) -> (status, response body) ------------------

    def _renew_lock(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        tokens = [_uuid(t) for t in _items(body["lock-tokens"])]
        expirations = self.namespace.renew(self.entity, tokens)
        return 200, {"expirations": codec.array(Data.TIMESTAMP, [codec.ms(e) for e in expirations])}

    def _update_disposition(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        status = _text(body["disposition-status"]) or ""
        outcome = _DISPOSITIONS.get(status.lower())
        if outcome is None:
            raise AmqpError(
                conditions.ARGUMENT_ERROR,
                conditions.tracked(f"The disposition status '{status}' is not valid.", self.entity.path),
            )
        modify = body.get("properties-to-modify")
        for token in _items(body["lock-tokens"]):
            self.namespace.settle(
                self.entity,
                _uuid(token),
                outcome,
                session_id=_text(body.get("session-id")),
                reason=_text(body.get("deadletter-reason")),
                description=_text(body.get("deadletter-description")),
                modify={_text(k) or "": v for k, v in modify.items()} if isinstance(modify, dict) else None,
            )
        return 200, {}

    def _received(self, delivered: list[Delivered]) -> tuple[int, Any]:
        if not delivered:
            return 204, {}
        messages = []
        for item in delivered:
            entry: dict[str, Any] = {"message": item.payload}
            if item.lock_token is not None:
                entry["lock-token"] = item.lock_token
            messages.append(entry)
        return 200, {"messages": messages}

    def _receive_by_sequence_number(self, body: dict[str, Any], associated: str | None) -> tuple[int, Any]:
        numbers = [int(n) for n in _items(body["sequence-numbers"])]
        delete = int(body.get("receiver-settle-mode", 1)) == 0
        delivered = self.namespace.receive_deferred(
            self.entity,
            numbers,
            owner=self.owner_of(associated),
            session_id=_text(body.get("session-id")),
            delete=delete,
        )
        return self._received(delivered)

    def _peek_message(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        start = int(body.get("from-sequence-number", 1))
        count = int(body.get("message-count", 1))
        payloads = self.namespace.peek(self.entity, start, count, _text(body.get("session-id")))
        return self._received([Delivered(None, p, 0) for p in payloads])

    def _schedule_message(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        envelopes = [codec.parse(bytes(item["message"])) for item in _items(body["messages"])]
        numbers = self.namespace.send(self.entity.path, envelopes)
        return 200, {"sequence-numbers": codec.array(Data.LONG, numbers)}

    def _cancel_scheduled_message(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        numbers = [int(n) for n in _items(body["sequence-numbers"])]
        self.namespace.cancel(self.entity.path, numbers)
        return 200, {}

    def _session(self, body: dict[str, Any]) -> str:
        session_id = _text(body.get("session-id"))
        if not session_id:
            raise AmqpError(
                conditions.ARGUMENT_ERROR, conditions.tracked("The session id is missing.", self.entity.path)
            )
        return session_id

    def _renew_session_lock(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        until = self.namespace.renew_session(self.entity, self._session(body))
        return 200, {"expiration": codec.ms(until)}

    def _get_session_state(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        return 200, {"session-state": self.namespace.session_state(self.entity, self._session(body))}

    def _set_session_state(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        state = body.get("session-state")
        self.namespace.set_session_state(
            self.entity, self._session(body), None if state is None else bytes(state)
        )
        return 200, {}

    def _get_message_sessions(self, body: dict[str, Any], _: str | None) -> tuple[int, Any]:
        skip, top = int(body.get("skip", 0)), int(body.get("top", 2**31 - 1))
        sessions = self.namespace.list_sessions(self.entity)[skip : skip + top]
        if not sessions:
            return 204, {}
        return 200, {"skip": skip + len(sessions), "sessions-ids": codec.array(Data.STRING, sessions)}
