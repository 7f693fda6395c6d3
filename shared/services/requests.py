"""One delivery of a registration-queue message, start to finish: parse it, run its workflow,
and turn every outcome into the one reply the ticket gets.

Outcomes: ``rejected`` (bad input, policy, a permanent platform error: nothing retried),
``succeeded``, or a raised ``TransientError`` so that Service Bus redelivers; on the last
delivery a transient failure replies ``failed`` instead (shared.services.delivery).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shared.domain.errors import PermanentError, TransientError
from shared.messages.base import FieldError, RequestRejected
from shared.messages.envelope import Inbound, reply_envelope
from shared.messages.parsing import parse_request
from shared.messages.replies import RegistrationReply, rejected
from shared.messages.requests import DecommissionRequest, RegisterRequest
from shared.services.decommission import decommission
from shared.services.delivery import Delivery, problem_of, retry_unless_last
from shared.services.dependencies import Dependencies
from shared.services.exclusive import Afterwards, exclusively
from shared.services.registration import check, create_early, prepare, register
from shared.services.rotate_request import rotate_on_request
from shared.settings import get_settings

log = logging.getLogger(__name__)


async def answer_and_reply(
    dependencies: Callable[[], Dependencies], body: bytes, delivery: Delivery, request: Inbound
) -> RegistrationReply:
    """Answer one delivery, and send the reply correlated to the request
    (shared.messages.envelope). A failed send raises ``TransientError``: the message is
    redelivered, and the same reply sent again carries the same ``MessageId``, which Service
    Bus's duplicate detection drops."""
    # The application's lease is given back once the reply is on its way, so that the ticket
    # hears back without waiting for the release (shared.services.exclusive).
    afterwards = Afterwards()
    try:
        reply = await answer(dependencies, body, delivery, afterwards)
        deps = dependencies()
        settings = deps.settings
        envelope = reply_envelope(
            request,
            reply,
            results_queue=settings.results_queue,
            namespace=settings.service_bus_host,
            own_queues=settings.own_queues,
        )
        await deps.outbox.send([envelope])
        log.info("registration.reply_sent", extra={"messageId": delivery.message_id, "queue": envelope.queue})
    finally:
        await afterwards.run()
    return reply


async def answer(
    dependencies: Callable[[], Dependencies],
    body: bytes,
    delivery: Delivery,
    afterwards: Afterwards | None = None,
) -> RegistrationReply:
    """The reply for one delivery of a request; raises only to ask for redelivery.

    ``dependencies`` is called only for a valid request: a bad one is answered without
    building (or importing) any platform client."""
    try:
        request = parse_request(body)
    except RequestRejected as rejection:
        _log_rejection(delivery, rejection.request_id, rejection.errors)
        return rejected(rejection.request_id, rejection.errors)
    context = {
        "messageId": delivery.message_id,
        "requestId": request.request_id,
        "requestedBy": request.requested_by,
        "action": request.action,
        "deliveryCount": delivery.delivery_count,
    }
    unique_name = (
        request.unique_name if isinstance(request, RegisterRequest) else request.application.unique_name
    )
    try:
        deps = dependencies()
        # One delivery at a time acts on an application (shared.services.exclusive).
        if isinstance(request, RegisterRequest):
            reply = await _register(deps, request, afterwards, first=delivery.delivery_count <= 1)
        else:
            async with exclusively(deps, unique_name, afterwards):
                if isinstance(request, DecommissionRequest):
                    reply = await decommission(deps, request)
                else:
                    reply = await rotate_on_request(deps, request)
    except RequestRejected as rejection:
        _log_rejection(delivery, request.request_id, rejection.errors)
        return rejected(request.request_id, rejection.errors, request.requested_by)
    except PermanentError as error:
        problem = problem_of(error)
        _log_rejection(delivery, request.request_id, [problem])
        return rejected(request.request_id, [problem], request.requested_by)
    except TransientError as error:
        retry_unless_last(error, delivery, get_settings().max_delivery_count, log, "registration", context)
        return RegistrationReply(
            request_id=request.request_id,
            requested_by=request.requested_by,
            status="failed",
            errors=[FieldError(field="request", code=error.code, message=error.message)],
        )
    log.info("registration.replied", extra={**context, "status": reply.status})
    return reply


async def _register(
    deps: Dependencies, request: RegisterRequest, afterwards: Afterwards | None, *, first: bool
) -> RegistrationReply:
    """A registration: the policy checked before any I/O; while the application's lease is
    taken, the reads it decides by (they need none: ``register`` reads again under the lease
    what another delivery could have changed), or, when this process already knows all they
    would tell, the new application's create-only ``POST`` (``create_early``; on a first
    delivery only: a redelivery, whose earlier attempt failed somewhere, reads first); then the
    writes under the lease."""
    check(deps, request)
    early = create_early(deps, request) if first else None
    reads = asyncio.ensure_future(early if early is not None else prepare(deps, request))
    try:
        async with exclusively(deps, request.unique_name, afterwards) as hold:
            return await register(deps, request, await reads, waited=hold.waited)
    finally:
        # Never left running, and its error (if the lease was not had) never unretrieved.
        if not reads.done():
            reads.cancel()
            await asyncio.wait([reads])
        if not reads.cancelled():
            reads.exception()


def _log_rejection(delivery: Delivery, request_id: str | None, errors: list[FieldError]) -> None:
    log.warning(
        "registration.rejected",
        extra={
            "messageId": delivery.message_id,
            "requestId": request_id,
            "fields": [e.field for e in errors],
            "codes": [e.code for e in errors],
        },
    )
