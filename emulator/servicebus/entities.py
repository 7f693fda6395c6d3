"""A Service Bus queue's state machine: messages, peek-locks, sessions, scheduling, duplicate
detection and its dead-letter subqueue, on the emulator clock. No I/O and no locking: the
namespace (emulator.servicebus.namespace) serialises every call.

What is imitated, as Service Bus documents it (service-bus-queues-topics-subscriptions,
message-transfers-locks-settlement, message-sessions, service-bus-dead-letter-queues,
duplicate-detection, message-deferral, message-sequencing):

- sequence numbers per queue, from 1; ``x-opt-enqueued-time`` the time the message became
  active (a scheduled message's scheduled time);
- peek-lock: a delivery locks the message for the queue's ``lockDuration`` under a new lock
  token; completing, abandoning, deferring or dead-lettering needs a live lock
  (``com.microsoft:message-lock-lost`` otherwise); abandon and lock expiry count a failed
  delivery (the AMQP header's ``delivery-count`` counts earlier failed attempts, so the first
  delivery carries 0); a release (the client handing back a message it never looked at) does
  not. When the count reaches ``maxDeliveryCount`` the message moves to the dead-letter
  subqueue with ``DeadLetterReason`` ``MaxDeliveryCountExceeded``;
- receive-and-delete removes the message as it is sent;
- dead-lettering adds ``DeadLetterReason`` / ``DeadLetterErrorDescription`` to the application
  properties; dead letters keep their sequence number and delivery count and never expire;
- scheduled messages (``x-opt-scheduled-enqueue-time``) are stored at once (they get their
  sequence number then, can be peeked and cancelled) and become receivable at that time;
- deferred messages leave the queue's flow and are received only by sequence number;
- duplicate detection: a message whose ``MessageId`` was accepted within the window is
  accepted and dropped;
- time to live: a message expires at enqueued time + TTL and is then dropped (no queue here
  dead-letters on expiration);
- sessions: a session queue refuses messages without a session id; a session receiver holds
  the session's lock (``lockDuration``, renewable) and gets only that session's messages, in
  order; session state is kept per session.
"""

from __future__ import annotations

import datetime as dt
import heapq
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from emulator.servicebus import codec, conditions
from emulator.servicebus.conditions import AmqpError

MessageState = Literal["active", "scheduled", "deferred"]
Outcome = Literal["complete", "abandon", "defer", "dead-letter", "release"]

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"


def iso_duration(delta: dt.timedelta) -> str:
    """``PT1M``, ``PT30S``, ``PT1H30M``, ``P1DT2H``: how Service Bus writes durations."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    out = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return out if out != "P" else "PT0S"


@dataclass
class QueueSettings:
    name: str
    lock_duration: dt.timedelta = dt.timedelta(minutes=1)
    max_delivery_count: int = 10
    requires_duplicate_detection: bool = False
    duplicate_detection_window: dt.timedelta = dt.timedelta(minutes=10)
    requires_session: bool = False
    default_ttl: dt.timedelta | None = None  # None: Service Bus's maximum (TimeSpan.MaxValue)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lockDuration": iso_duration(self.lock_duration),
            "maxDeliveryCount": self.max_delivery_count,
            "requiresDuplicateDetection": self.requires_duplicate_detection,
            "duplicateDetectionHistoryTimeWindow": iso_duration(self.duplicate_detection_window),
            "requiresSession": self.requires_session,
            "deadLetteringOnMessageExpiration": False,
        }


# The function app's queues (their names are the service's settings' defaults; the emulator
# does not import the service). The replies queue is session-enabled for request-reply.
QUEUES: tuple[QueueSettings, ...] = (
    QueueSettings("app-registration-requests", requires_duplicate_detection=True),
    QueueSettings("app-registration-results", requires_duplicate_detection=True),
    QueueSettings("app-credential-rotation"),
    QueueSettings("app-credential-events", requires_duplicate_detection=True),
    QueueSettings("app-registration-replies-session", requires_session=True),
)


@dataclass(eq=False)
class Stored:
    sequence_number: int
    envelope: codec.Envelope
    enqueued_at: dt.datetime
    state: MessageState = "active"
    scheduled_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: dt.datetime | None = None
    owner: str | None = None
    session_id: str | None = None  # on a session queue's main subqueue: the session it belongs to

    def render(self) -> bytes:
        annotations: dict[Any, Any] = {
            codec.X_OPT_SEQUENCE_NUMBER: self.sequence_number,
            codec.X_OPT_ENQUEUED_TIME: codec.ms(self.enqueued_at),
            codec.X_OPT_MESSAGE_STATE: codec.MESSAGE_STATES[self.state],
        }
        if self.locked_until is not None:
            annotations[codec.X_OPT_LOCKED_UNTIL] = codec.ms(self.locked_until)
        return codec.render(self.envelope, delivery_count=self.delivery_count, broker_annotations=annotations)

    def describe(self, sub_queue: str, now: dt.datetime) -> dict[str, Any]:
        application = self.envelope.application_properties()
        locked = self.lock_token is not None and self.locked_until is not None and self.locked_until > now
        return {
            "subQueue": sub_queue,
            "sequenceNumber": self.sequence_number,
            "state": self.state,
            "enqueuedTime": self.enqueued_at.isoformat().replace("+00:00", "Z"),
            "scheduledEnqueueTime": self.scheduled_at.isoformat().replace("+00:00", "Z")
            if self.scheduled_at
            else None,
            "expiresAt": self.expires_at.isoformat().replace("+00:00", "Z") if self.expires_at else None,
            "deliveryCount": self.delivery_count,
            "locked": locked,
            "lockedUntil": self.locked_until.isoformat().replace("+00:00", "Z")
            if locked and self.locked_until
            else None,
            "deadLetterReason": codec.jsonable(application.get("DeadLetterReason")),
            "deadLetterErrorDescription": codec.jsonable(application.get("DeadLetterErrorDescription")),
            **codec.describe_properties(self.envelope),
            **codec.describe_body(self.envelope),
        }


@dataclass
class SessionLock:
    owner: str
    locked_until: dt.datetime


@dataclass
class Delivered:
    """A message handed to a receiver: its lock token (None in receive-and-delete) and bytes."""

    lock_token: uuid.UUID | None
    payload: bytes
    sequence_number: int


class SubQueue:
    """The queue itself or its dead-letter subqueue."""

    def __init__(self, queue: Queue, dead_letter: bool) -> None:
        self.queue = queue
        self.dead_letter = dead_letter
        self.messages: dict[int, Stored] = {}
        self.locks: dict[uuid.UUID, Stored] = {}
        # sequence numbers ready for delivery, a heap per session (None: not by session)
        self.ready: dict[str | None, list[int]] = {}

    @property
    def by_session(self) -> bool:
        return self.queue.settings.requires_session and not self.dead_letter

    def key(self, message: Stored) -> str | None:
        return message.session_id if self.by_session else None

    def push(self, message: Stored) -> None:
        heapq.heappush(self.ready.setdefault(self.key(message), []), message.sequence_number)

    def available(self, message: Stored | None, now: dt.datetime) -> bool:
        return (
            message is not None
            and message.state == "active"
            and message.lock_token is None
            and (message.expires_at is None or message.expires_at > now)
        )

    def first_ready(self, key: str | None, now: dt.datetime) -> Stored | None:
        """The next message ready for delivery under ``key``, dropping stale heap entries and
        expired messages as it goes."""
        heap = self.ready.get(key)
        while heap:
            message = self.messages.get(heap[0])
            if message is not None and message.expires_at is not None and message.expires_at <= now:
                if message.lock_token is None:
                    del self.messages[message.sequence_number]
                heapq.heappop(heap)
                continue
            if self.available(message, now):
                return message
            heapq.heappop(heap)
        return None

    def take(self, key: str | None, now: dt.datetime) -> Stored | None:
        message = self.first_ready(key, now)
        if message is not None:
            heapq.heappop(self.ready[key])
        return message

    def lock(self, message: Stored, until: dt.datetime, owner: str) -> uuid.UUID:
        token = uuid.uuid4()
        message.lock_token, message.locked_until, message.owner = token, until, owner
        self.locks[token] = message
        return token

    def unlock(self, message: Stored) -> None:
        if message.lock_token is not None:
            self.locks.pop(message.lock_token, None)
        message.lock_token, message.locked_until, message.owner = None, None, None


class Queue:
    def __init__(self, settings: QueueSettings) -> None:
        self.clear(settings)

    def clear(self, settings: QueueSettings) -> None:
        """Empty, with ``settings``."""
        self.settings = settings
        self.main = SubQueue(self, dead_letter=False)
        self.dead = SubQueue(self, dead_letter=True)
        self.next_sequence = 1
        self.seen: dict[str, dt.datetime] = {}  # duplicate detection: message id -> first accepted
        self.scheduled: list[tuple[dt.datetime, int]] = []
        self.session_locks: dict[str, SessionLock] = {}
        self.session_states: dict[str, bytes] = {}

    @property
    def name(self) -> str:
        return self.settings.name

    def tracker(self, dead_letter: bool = False) -> str:
        return f"emulator:Queue:{self.name}" + ("/$DeadLetterQueue" if dead_letter else "")

    # -- send -------------------------------------------------------------------------------

    def check(self, envelope: codec.Envelope) -> None:
        if self.settings.requires_session and not envelope.session_id:
            raise AmqpError(
                conditions.NOT_ALLOWED,
                conditions.tracked(
                    "The SessionId was not set on a message, and it cannot be sent to the entity. "
                    "Entities that have session support enabled can only receive messages that have "
                    "the SessionId set to a valid value.",
                    self.tracker(),
                ),
            )

    def _duplicate(self, envelope: codec.Envelope, now: dt.datetime) -> bool:
        if not self.settings.requires_duplicate_detection:
            return False
        horizon = now - self.settings.duplicate_detection_window
        for key in [k for k, seen in self.seen.items() if seen <= horizon]:
            del self.seen[key]
        message_id = envelope.message_id
        if message_id is None:
            return False
        if message_id in self.seen:
            return True
        self.seen[message_id] = now
        return False

    def enqueue(self, envelopes: list[codec.Envelope], now: dt.datetime) -> list[int]:
        """Store ``envelopes`` (all or none); the sequence numbers they got (a duplicate gets
        one too, and is dropped)."""
        for envelope in envelopes:
            self.check(envelope)
        numbers: list[int] = []
        for envelope in envelopes:
            number = self.next_sequence
            self.next_sequence += 1
            numbers.append(number)
            if self._duplicate(envelope, now):
                continue
            scheduled = envelope.scheduled_enqueue_time
            active_at = scheduled if scheduled is not None and scheduled > now else now
            ttl = dt.timedelta(milliseconds=envelope.ttl_ms) if envelope.ttl_ms else self.settings.default_ttl
            message = Stored(
                sequence_number=number,
                envelope=envelope,
                enqueued_at=active_at,
                state="scheduled" if active_at > now else "active",
                scheduled_at=scheduled,
                expires_at=active_at + ttl if ttl else None,
                session_id=envelope.session_id if self.settings.requires_session else None,
            )
            self.main.messages[number] = message
            if message.state == "scheduled":
                heapq.heappush(self.scheduled, (active_at, number))
            else:
                self.main.push(message)
        return numbers

    def cancel(self, numbers: list[int]) -> None:
        for number in numbers:
            message = self.main.messages.get(number)
            if message is None or message.state != "scheduled":
                raise conditions.message_not_found(number, self.tracker())
        for number in numbers:
            del self.main.messages[number]

    # -- time -------------------------------------------------------------------------------

    def sweep(self, now: dt.datetime) -> None:
        """What time does: scheduled messages become active, locks expire."""
        while self.scheduled and self.scheduled[0][0] <= now:
            _, number = heapq.heappop(self.scheduled)
            message = self.main.messages.get(number)
            if message is not None and message.state == "scheduled":
                message.state = "active"
                self.main.push(message)
        for sub in (self.main, self.dead):
            for message in list(sub.locks.values()):
                if message.session_id is not None and sub.by_session:
                    continue  # held by the session's lock
                if message.locked_until is not None and message.locked_until <= now:
                    self.lost(sub, message, now)
        for session_id, held in list(self.session_locks.items()):
            if held.locked_until <= now:
                self.release_session(session_id, held.owner, now)

    def expire_locks(self, now: dt.datetime) -> int:
        count = 0
        for sub in (self.main, self.dead):
            for message in list(sub.locks.values()):
                message.locked_until = now
                count += 1
        for held in self.session_locks.values():
            held.locked_until = now
        self.sweep(now)
        return count

    # -- delivery ---------------------------------------------------------------------------

    def lost(self, sub: SubQueue, message: Stored, now: dt.datetime) -> None:
        """A failed delivery (abandon, lock expiry): count it, maybe dead-letter it."""
        sub.unlock(message)
        message.delivery_count += 1
        if not sub.dead_letter and message.delivery_count >= self.settings.max_delivery_count:
            self.dead_letter(
                message,
                MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message could not be consumed after {self.settings.max_delivery_count} delivery attempts.",
            )
        elif message.state == "active":
            sub.push(message)

    def dead_letter(self, message: Stored, reason: str | None, description: str | None) -> None:
        self.main.unlock(message)
        self.main.messages.pop(message.sequence_number, None)
        pairs = (("DeadLetterReason", reason), ("DeadLetterErrorDescription", description))
        extra = {k: v for k, v in pairs if v is not None}
        message.envelope = message.envelope.with_application_properties(extra) if extra else message.envelope
        message.state, message.expires_at, message.session_id = "active", None, None
        self.dead.messages[message.sequence_number] = message
        self.dead.push(message)

    def acquire(
        self,
        sub: SubQueue,
        *,
        count: int,
        owner: str,
        session_id: str | None,
        delete: bool,
        now: dt.datetime,
    ) -> list[Delivered]:
        key = session_id if sub.by_session else None
        if sub.by_session:
            held = self.session_locks.get(session_id or "")
            if held is None or held.owner != owner or held.locked_until <= now:
                return []
            until = held.locked_until
        else:
            until = now + self.settings.lock_duration
        out: list[Delivered] = []
        while len(out) < count:
            message = sub.take(key, now)
            if message is None:
                break
            out.append(self._hand_out(sub, message, until, owner, delete))
        return out

    @staticmethod
    def _hand_out(sub: SubQueue, message: Stored, until: dt.datetime, owner: str, delete: bool) -> Delivered:
        """One message to a receiver: gone (receive-and-delete), or locked until ``until``."""
        if delete:
            del sub.messages[message.sequence_number]
            return Delivered(None, message.render(), message.sequence_number)
        return Delivered(sub.lock(message, until, owner), message.render(), message.sequence_number)

    def locked(self, sub: SubQueue, token: uuid.UUID, now: dt.datetime, session_id: str | None) -> Stored:
        """The message ``token`` locks, if the lock (or its session's) is still held."""
        message = sub.locks.get(token)
        if sub.by_session:
            session = session_id or (message.session_id if message else None)
            held = self.session_locks.get(session or "")
            if held is None or held.locked_until <= now:
                raise conditions.session_lock_lost(self.tracker())
            if message is None or (session_id is not None and message.session_id != session_id):
                raise conditions.lock_lost(self.tracker())
            return message
        if message is None or message.locked_until is None or message.locked_until <= now:
            raise conditions.lock_lost(self.tracker(sub.dead_letter))
        return message

    def settle(
        self,
        sub: SubQueue,
        token: uuid.UUID,
        outcome: Outcome,
        now: dt.datetime,
        *,
        session_id: str | None = None,
        reason: str | None = None,
        description: str | None = None,
        modify: dict[str, Any] | None = None,
    ) -> None:
        message = self.locked(sub, token, now, session_id)
        if modify:
            message.envelope = message.envelope.with_application_properties(modify)
        if outcome == "complete":
            sub.unlock(message)
            del sub.messages[message.sequence_number]
        elif outcome == "release":
            sub.unlock(message)
            if message.state == "active":
                sub.push(message)
        elif outcome == "abandon":
            self.lost(sub, message, now)
        elif outcome == "defer":
            sub.unlock(message)
            message.state = "deferred"
        elif outcome == "dead-letter":
            if sub.dead_letter:
                raise AmqpError(
                    conditions.NOT_ALLOWED,
                    conditions.tracked(
                        "A message in the dead-letter queue cannot be dead-lettered.", self.tracker(True)
                    ),
                )
            self.dead_letter(message, reason, description)

    def renew(self, sub: SubQueue, tokens: list[uuid.UUID], now: dt.datetime) -> list[dt.datetime]:
        if sub.by_session:
            raise AmqpError(
                conditions.NOT_ALLOWED,
                conditions.tracked(
                    "Renewing a message lock is not supported on an entity that requires sessions: renew the "
                    "session lock.",
                    self.tracker(),
                ),
            )
        messages = [self.locked(sub, token, now, None) for token in tokens]
        until = now + self.settings.lock_duration
        for message in messages:
            message.locked_until = until
        return [until for _ in messages]

    def peek(
        self, sub: SubQueue, start: int, count: int, session_id: str | None, now: dt.datetime
    ) -> list[bytes]:
        out: list[bytes] = []
        for number in sorted(n for n in sub.messages if n >= start):
            message = sub.messages[number]
            if message.expires_at is not None and message.expires_at <= now and message.lock_token is None:
                continue
            if session_id is not None and message.session_id != session_id:
                continue
            out.append(message.render())
            if len(out) >= count:
                break
        return out

    def receive_deferred(
        self,
        sub: SubQueue,
        numbers: list[int],
        *,
        owner: str,
        session_id: str | None,
        delete: bool,
        now: dt.datetime,
    ) -> list[Delivered]:
        messages = []
        for number in numbers:
            message = sub.messages.get(number)
            if (
                message is None
                or message.state != "deferred"
                or message.lock_token is not None
                or (sub.by_session and message.session_id != session_id)
            ):
                raise conditions.message_not_found(number, self.tracker(sub.dead_letter))
            messages.append(message)
        if sub.by_session:
            held = self.session_locks.get(session_id or "")
            if held is None or held.locked_until <= now:
                raise conditions.session_lock_lost(self.tracker())
            until = held.locked_until
        else:
            until = now + self.settings.lock_duration
        return [self._hand_out(sub, message, until, owner, delete) for message in messages]

    # -- sessions ---------------------------------------------------------------------------

    def accept_session(self, session_id: str | None, owner: str, now: dt.datetime) -> str | None:
        """Lock ``session_id`` (or the next session with messages ready) for ``owner``; None
        when no session is ready."""
        if session_id is None:
            candidates = []
            for key in self.main.ready:
                if key is None:
                    continue
                held = self.session_locks.get(key)
                if held is not None and held.locked_until > now:
                    continue
                first = self.main.first_ready(key, now)
                if first is not None:
                    candidates.append((first.sequence_number, key))
            if not candidates:
                return None
            session_id = min(candidates)[1]
        held = self.session_locks.get(session_id)
        if held is not None and held.locked_until > now and held.owner != owner:
            raise conditions.session_cannot_be_locked(session_id, self.tracker())
        self.session_locks[session_id] = SessionLock(owner, now + self.settings.lock_duration)
        return session_id

    def session_held(self, session_id: str, owner: str, now: dt.datetime) -> bool:
        held = self.session_locks.get(session_id)
        return held is not None and held.owner == owner and held.locked_until > now

    def release_session(self, session_id: str, owner: str, now: dt.datetime) -> None:
        """The session's receiver is gone or its lock expired: its unsettled messages count a
        failed delivery and the session is free for another receiver."""
        held = self.session_locks.get(session_id)
        if held is None or held.owner != owner:
            return
        del self.session_locks[session_id]
        for message in [m for m in self.main.locks.values() if m.session_id == session_id]:
            self.lost(self.main, message, now)

    def renew_session(self, session_id: str, now: dt.datetime) -> dt.datetime:
        held = self.session_locks.get(session_id)
        if held is None or held.locked_until <= now:
            raise conditions.session_lock_lost(self.tracker())
        held.locked_until = now + self.settings.lock_duration
        for message in self.main.locks.values():
            if message.session_id == session_id:
                message.locked_until = held.locked_until
        return held.locked_until

    def list_sessions(self, now: dt.datetime) -> list[str]:
        """Sessions with messages (Service Bus lists sessions with state or messages)."""
        ids = {m.session_id for m in self.main.messages.values() if m.session_id} | set(self.session_states)
        return sorted(i for i in ids if i)

    # -- inspection ---------------------------------------------------------------------------

    def counts(self, now: dt.datetime) -> dict[str, int]:
        self.sweep(now)
        live = [
            m
            for m in self.main.messages.values()
            if m.expires_at is None or m.expires_at > now or m.lock_token
        ]
        return {
            "activeMessageCount": sum(1 for m in live if m.state == "active"),
            "scheduledMessageCount": sum(1 for m in live if m.state == "scheduled"),
            "deferredMessageCount": sum(1 for m in live if m.state == "deferred"),
            "deadLetterMessageCount": len(self.dead.messages),
            "lockedMessageCount": len(self.main.locks) + len(self.dead.locks),
            "transferMessageCount": 0,
            "transferDeadLetterMessageCount": 0,
        }

    def describe(self, now: dt.datetime) -> dict[str, Any]:
        counts = self.counts(now)
        return {
            **self.settings.describe(),
            # the counts in short, for tests
            "active": counts["activeMessageCount"],
            "scheduled": counts["scheduledMessageCount"],
            "deferred": counts["deferredMessageCount"],
            "deadLettered": counts["deadLetterMessageCount"],
            "locked": counts["lockedMessageCount"],
            "messageCount": counts["activeMessageCount"]
            + counts["scheduledMessageCount"]
            + counts["deferredMessageCount"]
            + counts["deadLetterMessageCount"],
            "countDetails": counts,
            "sessions": {
                sid: {"lockedUntil": held.locked_until.isoformat().replace("+00:00", "Z")}
                for sid, held in self.session_locks.items()
                if held.locked_until > now
            },
        }

    def snapshot(self, now: dt.datetime) -> list[dict[str, Any]]:
        self.sweep(now)
        out = [m.describe("main", now) for _, m in sorted(self.main.messages.items())]
        out += [m.describe("deadletter", now) for _, m in sorted(self.dead.messages.items())]
        return out
