"""Errors as Service Bus reports them over AMQP: a condition symbol and a description that ends
with a tracking id, the way the service words them (``… TrackingId:…, SystemTracker:…,
Timestamp:…``). Where the description is not quoted from the service it is a close paraphrase
(see docs/emulator.md)."""

from __future__ import annotations

import datetime as dt
import uuid

NOT_FOUND = "amqp:not-found"
UNAUTHORIZED = "amqp:unauthorized-access"
NOT_ALLOWED = "amqp:not-allowed"
NOT_IMPLEMENTED = "amqp:not-implemented"
INTERNAL_ERROR = "amqp:internal-error"
MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
MESSAGE_LOCK_LOST = "com.microsoft:message-lock-lost"
SESSION_LOCK_LOST = "com.microsoft:session-lock-lost"
SESSION_CANNOT_BE_LOCKED = "com.microsoft:session-cannot-be-locked"
MESSAGE_NOT_FOUND = "com.microsoft:message-not-found"
ARGUMENT_ERROR = "com.microsoft:argument-error"
ARGUMENT_OUT_OF_RANGE = "com.microsoft:argument-out-of-range"
TIMEOUT = "com.microsoft:timeout"
DEAD_LETTER = "com.microsoft:dead-letter"

# The status codes the $management node answers each condition with.
MANAGEMENT_STATUS = {
    NOT_FOUND: 404,
    MESSAGE_NOT_FOUND: 404,
    UNAUTHORIZED: 401,
    MESSAGE_LOCK_LOST: 410,
    SESSION_LOCK_LOST: 410,
    SESSION_CANNOT_BE_LOCKED: 410,
    ARGUMENT_ERROR: 400,
    ARGUMENT_OUT_OF_RANGE: 400,
    NOT_ALLOWED: 400,
    NOT_IMPLEMENTED: 501,
    TIMEOUT: 408,
    INTERNAL_ERROR: 500,
}


def tracked(description: str, tracker: str = "") -> str:
    """``description`` with the service's tracking suffix."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return (
        f"{description} TrackingId:{uuid.uuid4()}_G0, SystemTracker:{tracker or 'emulator'}, Timestamp:{now}"
    )


def tracking_id(description: str) -> str:
    """The tracking id in a ``tracked`` description (a new one if there is none)."""
    marker = "TrackingId:"
    if marker in description:
        return description.split(marker, 1)[1].split(",", 1)[0]
    return f"{uuid.uuid4()}_G0"


class AmqpError(Exception):
    """An operation refused with an AMQP error condition."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description

    @property
    def tracking_id(self) -> str:
        return tracking_id(self.description)

    @property
    def status(self) -> int:
        return MANAGEMENT_STATUS.get(self.condition, 500)


def entity_not_found(uri: str, tracker: str) -> AmqpError:
    return AmqpError(
        NOT_FOUND,
        tracked(
            f"The messaging entity '{uri}' could not be found. To know more visit "
            "https://aka.ms/sbResourceMgrExceptions. ",
            tracker,
        ),
    )


def lock_lost(tracker: str) -> AmqpError:
    return AmqpError(
        MESSAGE_LOCK_LOST,
        tracked(
            "The lock supplied is invalid. Either the lock expired, or the message has already been "
            "removed from the queue. For more information please see https://aka.ms/ServiceBusExceptions . "
            "Reference:" + str(uuid.uuid4()),
            tracker,
        ),
    )


def session_lock_lost(tracker: str) -> AmqpError:
    return AmqpError(
        SESSION_LOCK_LOST,
        tracked(
            "The session lock has expired on the MessageSession. Accept a new MessageSession.",
            tracker,
        ),
    )


def session_cannot_be_locked(session_id: str, tracker: str) -> AmqpError:
    return AmqpError(
        SESSION_CANNOT_BE_LOCKED,
        tracked(
            f"The requested session '{session_id}' cannot be accepted. It may be locked by another receiver.",
            tracker,
        ),
    )


def message_not_found(sequence_number: int, tracker: str) -> AmqpError:
    return AmqpError(
        MESSAGE_NOT_FOUND,
        tracked(
            f"Failed to lock one or more specified messages. Either the message is not deferred or the "
            f"sequence number {sequence_number} is invalid.",
            tracker,
        ),
    )
