"""Where one attempt stands in Service Bus's at-least-once delivery, and the last-delivery rule.

A transient failure raises, so that Service Bus redelivers the message; on the queue's last
delivery (``MAX_DELIVERY_COUNT``) there will be no other attempt, so the workflow answers
``failed`` instead and the ticket always hears back. ``retry_unless_last`` is that rule, once;
``problem_of`` turns a permanent error into the problem a rejection names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from shared.domain.errors import PermanentError, TransientError
from shared.messages.base import FieldError


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message. ``delivery_count`` is the Functions host's, 1-based."""

    message_id: str
    delivery_count: int = 1

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1


def retry_unless_last(
    error: TransientError,
    delivery: Delivery,
    max_delivery_count: int,
    log: logging.Logger,
    event: str,
    context: Mapping[str, object],
) -> None:
    """Re-raise ``error`` (Service Bus redelivers) unless this is the last delivery; then log
    the failure and return, for the caller to answer ``failed``."""
    details = {**context, "code": error.code, "reason": error.message}
    if delivery.delivery_count < max_delivery_count:
        log.warning(f"{event}.retry", extra=details)
        raise error
    log.error(f"{event}.failed", extra=details)


def problem_of(error: PermanentError) -> FieldError:
    """A permanent error as the problem a rejection names: its field, or the request as a whole."""
    return FieldError(field=error.field or "request", code=error.code, message=error.message)
