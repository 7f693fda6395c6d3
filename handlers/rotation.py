"""Credential rotation: a daily sweep that fans out, and one message per application.

``rotation_scheduler`` (timer) decides which managed applications need work and sends one
message each to the rotation queue; it does no per-application work, so a tenant of any size
fits in one invocation and one application's trouble cannot stop the others.
``rotate_application`` (rotation queue) converges one application. Both emit their actions and
problems as events on the events queue; every message goes out through azure-servicebus
(shared.adapters.servicebus). The decisions are in shared.domain.planner, the
workflows in shared.services.scheduler and shared.services.rotation.
"""

from __future__ import annotations

import logging

import azure.functions as func

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("rotation_scheduler")
@bp.timer_trigger(schedule="%ROTATION_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def rotation_scheduler(timer: func.TimerRequest) -> None:
    # Imported here, not at the top (handlers/registration.py says why).
    from shared import bootstrap
    from shared.services.scheduler import schedule_and_send

    if timer.past_due:
        log.info("rotation.past_due")
    await schedule_and_send(bootstrap.dependencies())


@bp.function_name("rotate_application")
@bp.service_bus_queue_trigger(
    arg_name="message", queue_name="%ROTATION_QUEUE%", connection="ServiceBusConnection"
)
async def rotate_application(message: func.ServiceBusMessage) -> None:
    from shared import bootstrap
    from shared.services.delivery import Delivery
    from shared.services.rotation import rotate_message_and_send

    delivery = Delivery(message_id=message.message_id or "", delivery_count=message.delivery_count or 1)
    await rotate_message_and_send(bootstrap.dependencies(), message.get_body(), delivery)
