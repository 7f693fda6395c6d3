"""A local Functions host: runs ``function_app.py`` as the Azure Functions host runs a Python
v2 app, against a Service Bus namespace (the emulator's, or a real one), for ``make demo``,
the end-to-end tests and local runs (``python -m emulator.functions_host``).

What it does as the host does (learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus,
functions-bindings-timer, functions-host-json):

- indexes the app (``FunctionApp.get_functions()``: the worker's indexing) and resolves
  ``%SETTING%`` binding expressions from the settings, failing on one that is not set;
- receives each queue trigger's messages with peek-lock, at most
  ``extensions.serviceBus.maxConcurrentCalls`` at once, renewing each lock for up to
  ``maxAutoLockRenewalDuration`` (azure-servicebus's ``AutoLockRenewer``);
- hands the function an ``azure.functions.ServiceBusMessage`` with the host's 1-based
  ``delivery_count`` and the message's properties;
- completes the message when the function returns (``autoCompleteMessages``) and abandons it
  when it raises, leaving dead-lettering to the queue's ``maxDeliveryCount``; a lock lost while
  the function ran makes the completion fail, and the message comes back, as in Azure;
- runs timer triggers on their NCRONTAB schedule (six fields, UTC), with ``past_due`` when a
  run is later than its schedule;
- delivers Service Bus output bindings (``func.Out``) after the function returns.

Not imitated: other trigger and binding types, sessions on triggers, batches
(``maxMessageBatchSize`` > 1), scale-out, the host's retry policies, and Application Insights.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("emulator.functions_host")

_SETTING = re.compile(r"%([^%]+)%")


def resolve(value: str, settings: Mapping[str, str]) -> str:
    """A binding expression with its ``%NAME%`` settings substituted, as the host does."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings or not settings[name]:
            raise ValueError(f"the binding expression %{name}% names an app setting that is not set")
        return settings[name]

    return _SETTING.sub(setting, value)


# -- NCRONTAB ---------------------------------------------------------------------------------

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {
    4: {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    5: {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())},
}


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _RANGES[index]
    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(base, index)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"NCRONTAB field {index + 1} out of range: {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    return names[text] if text in names else int(text)


@dataclass(frozen=True)
class Schedule:
    """An NCRONTAB expression: ``{second} {minute} {hour} {day} {month} {day-of-week}``."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"NCRONTAB needs six fields (with seconds): {expression!r}")
        return cls(*(_field(text, i) for i, text in enumerate(fields)))

    def matches(self, moment: dt.datetime) -> bool:
        return (
            moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.day in self.days
            and moment.month in self.months
            and (moment.isoweekday() % 7) in self.weekdays
        )

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first matching second after ``moment`` (within about five years)."""
        candidate = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = moment + dt.timedelta(days=366 * 5)
        while candidate < limit:
            if (
                candidate.month not in self.months
                or candidate.day not in self.days
                or (candidate.isoweekday() % 7) not in self.weekdays
            ):
                candidate = (candidate + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + dt.timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + dt.timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second in self.seconds:
                return candidate
            candidate += dt.timedelta(seconds=1)
        raise ValueError("the schedule never fires")


# -- the host ---------------------------------------------------------------------------------


@dataclass
class Function:
    name: str
    call: Callable[..., Any]
    trigger: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HostOptions:
    """``host.json``'s ``extensions.serviceBus`` as the host reads it."""

    max_concurrent_calls: int = 16
    max_auto_lock_renewal: dt.timedelta = dt.timedelta(minutes=5)
    auto_complete: bool = True

    @classmethod
    def read(cls, host_json: Path) -> HostOptions:
        document = json.loads(host_json.read_text())
        bus = document.get("extensions", {}).get("serviceBus", {})
        renewal = bus.get("maxAutoLockRenewalDuration", "00:05:00")
        hours, minutes, seconds = (float(x) for x in renewal.split(":"))
        return cls(
            max_concurrent_calls=int(bus.get("maxConcurrentCalls", 16)),
            max_auto_lock_renewal=dt.timedelta(hours=hours, minutes=minutes, seconds=seconds),
            auto_complete=bool(bus.get("autoCompleteMessages", True)),
        )


def index(module: str = "function_app") -> list[Function]:
    """The app's functions with their bindings, as the Python worker indexes them (once per
    process: the app refuses to build its functions twice)."""
    return _index(module)


@functools.cache
def _index(module: str) -> list[Function]:
    app = importlib.import_module(module).app
    functions = []
    for fn in app.get_functions():
        bindings = [b.get_dict_repr() for b in fn.get_bindings()]
        triggers = [b for b in bindings if b["type"].endswith("Trigger")]
        outputs = [b for b in bindings if b["type"] == "serviceBus" and str(b["direction"]).endswith("OUT")]
        functions.append(Function(fn.get_function_name(), fn.get_user_function(), triggers[0], outputs))
    return functions


class _Out:
    """A ``func.Out`` the host reads after the function returns."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class FunctionsHost:
    def __init__(
        self,
        settings: Mapping[str, str],
        *,
        host_json: Path,
        module: str = "function_app",
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = dict(settings)
        self.options = HostOptions.read(host_json)
        self.functions = index(module)
        for fn in self.functions:  # as the host does at startup: a missing setting stops it
            for binding in (fn.trigger, *fn.outputs):
                for key in ("queueName", "schedule"):
                    if key in binding:
                        resolve(binding[key], self.settings)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._stopping = asyncio.Event()
        # How deliveries ended: completed, abandoned, or not settled because the lock was lost.
        self.completed = 0
        self.abandoned = 0
        self.locks_lost = 0

    def _client(self) -> Any:
        from azure.identity.aio import DefaultAzureCredential
        from azure.servicebus.aio import ServiceBusClient

        connection = self.settings.get("ServiceBusConnection")
        if connection:
            return ServiceBusClient.from_connection_string(connection)
        namespace = self.settings.get("ServiceBusConnection__fullyQualifiedNamespace")
        if not namespace:
            raise ValueError("set ServiceBusConnection or ServiceBusConnection__fullyQualifiedNamespace")
        return ServiceBusClient(namespace, DefaultAzureCredential())

    def stop(self) -> None:
        self._stopping.set()

    async def run_now(self, name: str) -> None:
        """Run a timer-triggered function once, now: what the real host's admin endpoint
        (``POST /admin/functions/{name}``) does for a non-HTTP function."""
        from azure.functions.timer import TimerRequest

        [fn] = [f for f in self.functions if f.name == name]
        outputs = {b["name"]: _Out() for b in fn.outputs}
        await self._invoke(fn, {fn.trigger["name"]: TimerRequest(past_due=False), **outputs})
        async with self._client() as client:
            await self._send_outputs(client, fn, outputs)

    async def run(self) -> None:
        """Serve every function until ``stop``."""
        async with self._client() as client:
            tasks = []
            for fn in self.functions:
                kind = fn.trigger["type"]
                if kind == "serviceBusTrigger":
                    tasks.append(asyncio.create_task(self._queue(client, fn)))
                elif kind == "timerTrigger":
                    tasks.append(asyncio.create_task(self._timer(client, fn)))
                else:
                    log.warning("host.unsupported_trigger", extra={"function": fn.name, "type": kind})
            stopping = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in (stopping, *tasks):
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failed = [r for r in results if isinstance(r, Exception)]
            if stopping not in done and failed:
                raise failed[0]  # a listener died: the host stops, as Azure's would restart

    async def _queue(self, client: Any, fn: Function) -> None:
        from azure.servicebus import ServiceBusReceiveMode
        from azure.servicebus.aio import AutoLockRenewer

        queue = resolve(fn.trigger["queueName"], self.settings)
        slots = asyncio.Semaphore(self.options.max_concurrent_calls)
        running: set[asyncio.Task[None]] = set()
        renewer = AutoLockRenewer(
            max_lock_renewal_duration=self.options.max_auto_lock_renewal.total_seconds()
        )
        async with client.get_queue_receiver(
            queue, receive_mode=ServiceBusReceiveMode.PEEK_LOCK, prefetch_count=0
        ) as receiver:
            try:
                while not self._stopping.is_set():
                    await slots.acquire()
                    try:
                        batch = await receiver.receive_messages(max_message_count=1, max_wait_time=1)
                    except BaseException:
                        slots.release()
                        raise
                    if not batch:
                        slots.release()
                        continue
                    [message] = batch
                    renewer.register(receiver, message)
                    task = asyncio.create_task(self._deliver(client, receiver, fn, message, slots))
                    running.add(task)
                    task.add_done_callback(running.discard)
            finally:
                await asyncio.gather(*running, return_exceptions=True)
                await renewer.close()

    async def _deliver(
        self, client: Any, receiver: Any, fn: Function, message: Any, slots: asyncio.Semaphore
    ) -> None:
        try:
            outputs = {b["name"]: _Out() for b in fn.outputs}
            try:
                await self._invoke(fn, {fn.trigger["name"]: _function_message(message), **outputs})
                await self._send_outputs(client, fn, outputs)
            except Exception as error:  # the host abandons on any exception
                log.warning(
                    "host.abandon",
                    extra={
                        "function": fn.name,
                        "messageId": message.message_id,
                        "error": type(error).__name__,
                    },
                )
                if await _settle(receiver.abandon_message, message):
                    self.abandoned += 1
                else:
                    self.locks_lost += 1
                return
            if self.options.auto_complete:
                if await _settle(receiver.complete_message, message):
                    self.completed += 1
                else:
                    self.locks_lost += 1
        finally:
            slots.release()

    async def _timer(self, client: Any, fn: Function) -> None:
        from azure.functions.timer import TimerRequest

        schedule = Schedule.parse(resolve(fn.trigger["schedule"], self.settings))
        due = schedule.next_after(self.clock())
        while not self._stopping.is_set():
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            past_due = (self.clock() - due) > dt.timedelta(seconds=5)
            outputs = {b["name"]: _Out() for b in fn.outputs}
            try:
                await self._invoke(fn, {fn.trigger["name"]: TimerRequest(past_due=past_due), **outputs})
                await self._send_outputs(client, fn, outputs)
            except Exception as error:
                log.error("host.timer_failed", extra={"function": fn.name, "error": type(error).__name__})
            due = schedule.next_after(max(due, self.clock()))

    async def _invoke(self, fn: Function, arguments: dict[str, Any]) -> None:
        result = fn.call(**arguments)
        if inspect.isawaitable(result):
            await result

    async def _send_outputs(self, client: Any, fn: Function, outputs: Mapping[str, _Out]) -> None:
        from azure.servicebus import ServiceBusMessage

        for binding in fn.outputs:
            value = outputs[binding["name"]].value
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            queue = resolve(binding["queueName"], self.settings)
            async with client.get_queue_sender(queue) as sender:
                await sender.send_messages([ServiceBusMessage(v) for v in values])


async def _settle(settle: Callable[[Any], Awaitable[None]], message: Any) -> bool:
    """Complete or abandon; False when the lock was lost meanwhile (Service Bus redelivers)."""
    from azure.servicebus.exceptions import MessageLockLostError, ServiceBusError

    try:
        await settle(message)
    except MessageLockLostError:
        log.warning("host.lock_lost", extra={"messageId": message.message_id})
        return False
    except ServiceBusError as error:
        log.warning(
            "host.settle_failed", extra={"messageId": message.message_id, "error": type(error).__name__}
        )
        return False
    return True


def _function_message(message: Any) -> Any:
    """The ``azure.functions.ServiceBusMessage`` the worker builds from a received message; the
    host's delivery count is 1-based (the SDK's counts earlier deliveries)."""
    from azure.functions.servicebus import ServiceBusMessage

    properties = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (message.application_properties or {}).items()
    }
    return ServiceBusMessage(
        body=b"".join(message.body) if not isinstance(message.body, bytes) else message.body,
        message_id=message.message_id,
        delivery_count=message.delivery_count + 1,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        reply_to=message.reply_to,
        reply_to_session_id=message.reply_to_session_id,
        session_id=message.session_id,
        subject=message.subject,
        sequence_number=message.sequence_number,
        enqueued_time_utc=message.enqueued_time_utc,
        locked_until=message.locked_until_utc,
        lock_token=str(message.lock_token),
        application_properties=properties,
        user_properties=properties,
    )


def _read_settings(path: Path | None) -> dict[str, str]:
    """The app settings: the environment, then ``local.settings.json``'s ``Values`` (as Core
    Tools reads them), or a KEY=VALUE file such as the emulator's settings.env."""
    settings = dict(os.environ)
    if path is not None:
        if path.suffix == ".json":
            settings.update(json.loads(path.read_text()).get("Values", {}))
        else:
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.startswith("#"):
                    settings[key.strip()] = value
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emulator.functions_host", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--settings", type=Path, help="local.settings.json, or a KEY=VALUE file (settings.env)"
    )
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="the folder with function_app.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _read_settings(args.settings)
    os.environ.update(settings)  # the app reads its settings from the environment, as in Azure
    sys.path.insert(0, str(args.app_dir.resolve()))
    host = FunctionsHost(settings, host_json=args.app_dir / "host.json")
    try:
        asyncio.run(host.run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
