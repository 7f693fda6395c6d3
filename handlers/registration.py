"""The registration queue: one request in, one reply out (on the results queue).

The flow, its outcomes and the last-delivery rule are in shared.services.requests. The Python
output binding can set only the body, so the reply carries ``requestId`` in its JSON rather
than as the message's correlation id.
"""

from __future__ import annotations

import azure.functions as func

from shared.services.delivery import Delivery
from shared.services.dependencies import Dependencies
from shared.services.requests import answer

bp = func.Blueprint()


def _dependencies() -> Dependencies:
    # Imported here, not at the top: shared.bootstrap brings in the platform SDKs (about a
    # second of cold start), which a bad request never needs.
    from shared import bootstrap

    return bootstrap.dependencies()


@bp.function_name("register_application")
@bp.service_bus_queue_trigger(
    arg_name="message", queue_name="%REGISTRATION_QUEUE%", connection="ServiceBusConnection"
)
@bp.service_bus_queue_output(
    arg_name="reply", queue_name="%RESULTS_QUEUE%", connection="ServiceBusConnection"
)
async def register_application(message: func.ServiceBusMessage, reply: func.Out[str]) -> None:
    delivery = Delivery(message_id=message.message_id or "", delivery_count=message.delivery_count or 1)
    outcome = await answer(_dependencies, message.get_body(), delivery)
    reply.set(outcome.model_dump_json(by_alias=True))
