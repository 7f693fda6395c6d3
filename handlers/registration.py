"""The registration queue: one request in, one reply out, correlated to it.

The flow, its outcomes and the last-delivery rule are in shared.services.requests. The reply is
sent through azure-servicebus, not an output binding: the Python output binding can set only
the body (azure-functions-python-library#281), and the request-reply pattern needs the reply's
``CorrelationId``, ``SessionId`` and destination (shared.messages.envelope).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.services.dependencies import Dependencies

bp = func.Blueprint()

# The service's modules are imported in the function bodies, not at the top: the host indexes
# the functions from this module alone, so an instance starts without building the message
# models or the SDKs (docs/benchmarks.md, cold start). The first delivery imports them.


def _dependencies() -> Dependencies:
    # shared.bootstrap brings in the platform SDKs (about a second of cold start), which a bad
    # request never needs.
    from shared import bootstrap

    return bootstrap.dependencies()


@bp.function_name("register_application")
@bp.service_bus_queue_trigger(
    arg_name="message", queue_name="%REGISTRATION_QUEUE%", connection="ServiceBusConnection"
)
async def register_application(message: func.ServiceBusMessage) -> None:
    from shared.messages.envelope import Inbound
    from shared.services.delivery import Delivery
    from shared.services.requests import answer_and_reply

    delivery = Delivery(message_id=message.message_id or "", delivery_count=message.delivery_count or 1)
    request = Inbound(
        message_id=delivery.message_id,
        reply_to=message.reply_to,
        reply_to_session_id=message.reply_to_session_id,
    )
    await answer_and_reply(_dependencies, message.get_body(), delivery, request)
