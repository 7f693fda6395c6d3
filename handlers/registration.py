"""The registration queue: one request in, one reply out (on the results queue).

Outcomes: ``rejected`` (bad input, policy, a permanent platform error: completed, nothing
retried), ``succeeded``, or an exception for a transient failure so that Service Bus redelivers;
on the last delivery attempt (``MAX_DELIVERY_COUNT``) a transient failure replies ``failed``
instead, so the ticket always hears back. The Python output binding can set only the body, so
the reply carries ``requestId`` in its JSON rather than as the message's correlation id.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.contracts import (
    DecommissionRequest,
    FieldError,
    RegisterRequest,
    RegistrationReply,
    RequestRejected,
    parse_request,
)
from shared.errors import PermanentError, TransientError
from shared.registration import Delivery, rejection_for
from shared.settings import get_settings

log = logging.getLogger(__name__)
bp = func.Blueprint()


async def handle(body: bytes, delivery: Delivery) -> RegistrationReply:
    """The reply for one delivery of a request; raises only to ask for redelivery."""
    try:
        request = parse_request(body)
    except RequestRejected as rejection:
        log.warning(
            "registration.rejected",
            extra={
                "messageId": delivery.message_id,
                "requestId": rejection.request_id,
                "fields": [e.field for e in rejection.errors],
            },
        )
        return RegistrationReply.rejected(rejection)
    context = {
        "messageId": delivery.message_id,
        "requestId": request.request_id,
        "action": request.action,
        "deliveryCount": delivery.delivery_count,
    }
    try:
        from shared import runtime

        workflow = runtime.workflow()
        if isinstance(request, RegisterRequest):
            reply = await workflow.register(request, delivery)
        elif isinstance(request, DecommissionRequest):
            reply = await workflow.decommission(request, delivery)
        else:
            from shared.rotation import rotate_on_request

            reply = await rotate_on_request(workflow, request, delivery)
    except PermanentError as error:
        log.warning("registration.rejected", extra={**context, "code": error.code, "field": error.field})
        return rejection_for(request.request_id, error)
    except TransientError as error:
        if delivery.delivery_count < get_settings().max_delivery_count:
            log.warning("registration.retry", extra={**context, "code": error.code, "reason": error.message})
            raise
        log.error("registration.failed", extra={**context, "code": error.code, "reason": error.message})
        return RegistrationReply(
            request_id=request.request_id,
            status="failed",
            errors=[FieldError(field="request", code=error.code, message=error.message)],
        )
    log.info("registration.replied", extra={**context, "status": reply.status})
    return reply


@bp.function_name("register_application")
@bp.service_bus_queue_trigger(
    arg_name="message", queue_name="%REGISTRATION_QUEUE%", connection="ServiceBusConnection"
)
@bp.service_bus_queue_output(
    arg_name="reply", queue_name="%RESULTS_QUEUE%", connection="ServiceBusConnection"
)
async def register_application(message: func.ServiceBusMessage, reply: func.Out[str]) -> None:
    delivery = Delivery(message_id=message.message_id or "", delivery_count=message.delivery_count or 1)
    outcome = await handle(message.get_body(), delivery)
    reply.set(outcome.model_dump_json(by_alias=True))
