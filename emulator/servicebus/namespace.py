"""The emulated Service Bus namespace: its queues, its key, and one lock around all of them.

The AMQP broker runs in its own thread and the HTTPS side (REST send, the control plane) in
the asyncio one; both reach the queues only through ``Namespace``, whose every method takes the
lock and first lets time act (``Queue.sweep``: scheduled messages activate, locks expire), so
an ``advance`` of the emulator clock shows on the next call. ``changed`` wakes the broker when
something may have become deliverable.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.clock import Clock
from emulator.servicebus import auth, codec, conditions
from emulator.servicebus.conditions import AmqpError
from emulator.servicebus.entities import QUEUES, Delivered, Outcome, Queue, QueueSettings, SubQueue

DEAD_LETTER_SUFFIX = "$deadletterqueue"
MANAGEMENT_SUFFIX = "$management"


@dataclass(frozen=True)
class Entity:
    """A queue or its dead-letter subqueue, as a link or a request addresses it."""

    queue: Queue
    dead_letter: bool

    @property
    def sub(self) -> SubQueue:
        return self.queue.dead if self.dead_letter else self.queue.main

    @property
    def path(self) -> str:
        return self.queue.name + ("/$DeadLetterQueue" if self.dead_letter else "")

    @property
    def requires_session(self) -> bool:
        return self.sub.by_session


def entity_path(address: str) -> str:
    """The path under the namespace of a link address or resource URI
    (``amqps://host:port/queue``, ``sb://host/queue``, ``/queue``, ``queue``)."""
    if "://" in address:
        address = address.split("://", 1)[1].partition("/")[2]
    return address.strip("/")


class Namespace:
    def __init__(self, clock: Clock, verify_jwt: auth.JwtVerifier | None = None) -> None:
        self.clock = clock
        self.key_name = auth.KEY_NAME
        self.key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.verify_jwt = verify_jwt
        self.hosts: set[str] = set()
        self.amqp_port: int | None = None
        self.amqp_host = "127.0.0.1"
        self.lock = threading.RLock()
        self.queues: dict[str, Queue] = {}
        self.listeners: list[Callable[[], None]] = []
        self.reset()

    # -- wiring -------------------------------------------------------------------------------

    def serve_at(self, amqp_port: int, https_port: int | None = None) -> None:
        """The namespace's hosts: AMQP on ``amqp_port``, REST on ``https_port``."""
        self.amqp_port = amqp_port
        self.amqp_host = f"127.0.0.1:{amqp_port}"
        for port in (amqp_port, https_port):
            if port is not None:
                self.hosts |= {f"127.0.0.1:{port}", f"localhost:{port}"}

    def changed(self) -> None:
        """Wake whoever delivers messages (the broker): something may be deliverable now."""
        for listener in list(self.listeners):
            listener()

    def reset(self) -> None:
        """Empty queues with their default settings. The queue objects stay (links attached
        before the reset keep working on them); every lock and session lock is gone."""
        with self.lock:
            for settings in QUEUES:
                fresh = QueueSettings(**vars(settings))
                queue = self.queues.get(settings.name.lower())
                if queue is None:
                    self.queues[settings.name.lower()] = Queue(fresh)
                else:
                    queue.clear(fresh)
        self.changed()

    def now(self) -> dt.datetime:
        return self.clock.now()

    def _swept(self) -> dt.datetime:
        now = self.clock.now()
        for queue in self.queues.values():
            queue.sweep(now)
        return now

    def uri(self, path: str) -> str:
        return f"sb://{self.amqp_host}/{path}"

    # -- addressing ---------------------------------------------------------------------------

    def queue(self, name: str) -> Queue:
        queue = self.queues.get(name.lower())
        if queue is None:
            raise conditions.entity_not_found(self.uri(name), f"{self.amqp_host}:{name}")
        return queue

    def entity(self, path: str) -> Entity:
        """The queue or dead-letter subqueue at ``path`` (case-insensitive, as Service Bus)."""
        parts = [p for p in entity_path(path).split("/") if p]
        queue = self.queues.get(parts[0].lower()) if parts else None
        if queue is not None and len(parts) == 1:
            return Entity(queue, False)
        if queue is not None and len(parts) == 2 and parts[1].lower() == DEAD_LETTER_SUFFIX:
            return Entity(queue, True)
        name = "/".join(parts)
        raise conditions.entity_not_found(self.uri(name), f"{self.amqp_host}:{name}")

    # -- authentication -----------------------------------------------------------------------

    def authorize(self, token_type: str, token: str, resource: str) -> auth.Grant:
        """A CBS put-token or a REST Authorization header: the grant, or ``auth.Rejected``.
        The token's form decides, not the declared type: azure-servicebus declares ``jwt`` for
        the SAS tokens it makes from a connection string's key, and the service accepts them."""
        if token.startswith("SharedAccessSignature ") or token_type == auth.SAS_TOKEN_TYPE:
            return auth.verify_sas(token, resource, key_name=self.key_name, key=self.key, hosts=self.hosts)
        if token_type in (auth.JWT_TOKEN_TYPE, "") and self.verify_jwt is not None:
            return auth.verify_jwt(token, resource, verifier=self.verify_jwt, hosts=self.hosts)
        raise auth.Rejected("InvalidTokenType", f"The token type '{token_type}' is not supported.")

    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{self.amqp_host};SharedAccessKeyName={self.key_name};"
            f"SharedAccessKey={self.key};UseDevelopmentEmulator=true"
        )

    # -- messages -----------------------------------------------------------------------------

    def send(self, path: str, envelopes: list[codec.Envelope]) -> list[int]:
        with self.lock:
            now = self._swept()
            entity = self.entity(path)
            if entity.dead_letter:
                raise AmqpError(
                    conditions.NOT_ALLOWED,
                    conditions.tracked(
                        "Messages cannot be sent to a dead-letter queue.", entity.queue.tracker(True)
                    ),
                )
            numbers = entity.queue.enqueue(envelopes, now)
        self.changed()
        return numbers

    def cancel(self, path: str, numbers: list[int]) -> None:
        with self.lock:
            self._swept()
            self.entity(path).queue.cancel(numbers)

    def acquire(
        self, entity: Entity, *, count: int, owner: str, session_id: str | None, delete: bool
    ) -> list[Delivered]:
        with self.lock:
            now = self._swept()
            return entity.queue.acquire(
                entity.sub, count=count, owner=owner, session_id=session_id, delete=delete, now=now
            )

    def settle(
        self,
        entity: Entity,
        token: uuid.UUID,
        outcome: Outcome,
        *,
        session_id: str | None = None,
        reason: str | None = None,
        description: str | None = None,
        modify: dict[str, Any] | None = None,
    ) -> None:
        with self.lock:
            now = self._swept()
            entity.queue.settle(
                entity.sub,
                token,
                outcome,
                now,
                session_id=session_id,
                reason=reason,
                description=description,
                modify=modify,
            )
        if outcome in ("abandon", "release", "dead-letter"):
            self.changed()

    def renew(self, entity: Entity, tokens: list[uuid.UUID]) -> list[dt.datetime]:
        with self.lock:
            now = self._swept()
            return entity.queue.renew(entity.sub, tokens, now)

    def peek(self, entity: Entity, start: int, count: int, session_id: str | None) -> list[bytes]:
        with self.lock:
            now = self._swept()
            return entity.queue.peek(entity.sub, start, count, session_id, now)

    def receive_deferred(
        self, entity: Entity, numbers: list[int], *, owner: str, session_id: str | None, delete: bool
    ) -> list[Delivered]:
        with self.lock:
            now = self._swept()
            return entity.queue.receive_deferred(
                entity.sub, numbers, owner=owner, session_id=session_id, delete=delete, now=now
            )

    # -- sessions -----------------------------------------------------------------------------

    def accept_session(self, entity: Entity, session_id: str | None, owner: str) -> str | None:
        with self.lock:
            now = self._swept()
            return entity.queue.accept_session(session_id, owner, now)

    def session_held(self, entity: Entity, session_id: str, owner: str) -> bool:
        with self.lock:
            now = self._swept()
            return entity.queue.session_held(session_id, owner, now)

    def session_locked_until(self, entity: Entity, session_id: str) -> dt.datetime | None:
        with self.lock:
            held = entity.queue.session_locks.get(session_id)
            return held.locked_until if held else None

    def release_session(self, entity: Entity, session_id: str, owner: str) -> None:
        with self.lock:
            now = self._swept()
            entity.queue.release_session(session_id, owner, now)
        self.changed()

    def renew_session(self, entity: Entity, session_id: str) -> dt.datetime:
        with self.lock:
            now = self._swept()
            return entity.queue.renew_session(session_id, now)

    def session_state(self, entity: Entity, session_id: str) -> bytes | None:
        with self.lock:
            self._swept()
            return entity.queue.session_states.get(session_id)

    def set_session_state(self, entity: Entity, session_id: str, state: bytes | None) -> None:
        with self.lock:
            self._swept()
            if state is None:
                entity.queue.session_states.pop(session_id, None)
            else:
                entity.queue.session_states[session_id] = state

    def list_sessions(self, entity: Entity) -> list[str]:
        with self.lock:
            now = self._swept()
            return entity.queue.list_sessions(now)

    # -- the control plane --------------------------------------------------------------------

    def tick(self) -> None:
        """Let time act on every queue (the broker calls this periodically)."""
        with self.lock:
            self._swept()

    def describe(self) -> list[dict[str, Any]]:
        with self.lock:
            now = self.clock.now()
            return [queue.describe(now) for queue in self.queues.values()]

    def messages(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return self.queue(name).snapshot(self.clock.now())

    def configure(
        self, name: str, *, lock_duration: dt.timedelta | None, max_delivery_count: int | None
    ) -> dict[str, Any]:
        with self.lock:
            queue = self.queue(name)
            if lock_duration is not None:
                queue.settings.lock_duration = lock_duration
            if max_delivery_count is not None:
                queue.settings.max_delivery_count = max_delivery_count
            return queue.describe(self.clock.now())

    def expire_locks(self, name: str) -> int:
        with self.lock:
            count = self.queue(name).expire_locks(self.clock.now())
        self.changed()
        return count
