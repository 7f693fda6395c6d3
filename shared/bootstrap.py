"""The composition root of the service package: the platform clients, the gateways over them
and the ``Dependencies`` the workflows run with, built once per process and event loop (the
SDKs bind to one loop) and shared by every invocation, with one Graph write pacer.

Lazy by design: this module imports the adapters, which import msgraph-sdk and the Azure SDKs
only inside their builders, and the handlers import this module only inside a function. A cold
start that only validates a bad request never pays for them (~1 s of imports; see
docs/benchmarks.md and the test that ``import function_app`` leaves them out).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable

from shared.adapters.arm import RoleAssignmentsGateway
from shared.adapters.clients import PlatformClients, build_platform_clients, warm_up
from shared.adapters.graph.applications import ApplicationsGateway
from shared.adapters.graph.calls import (
    GRAPH_WRITE_BURST,
    GRAPH_WRITES_PER_SECOND,
    GraphCalls,
    ThrottleSignals,
    WritePacer,
)
from shared.adapters.graph.consent import ConsentGateway
from shared.adapters.graph.keys import KeyCredentialsGateway
from shared.adapters.keyvault import KeyVaultGateway
from shared.adapters.keyvault_certificates import CertificatesGateway
from shared.adapters.leases import BlobLeases
from shared.adapters.servicebus import ServiceBusOutbox
from shared.services.dependencies import Dependencies, utc_now
from shared.settings import get_settings


class ServiceClock:
    """The time the service decides by: the real time, unless a source is set (the emulator's
    clock, which tests and the demo move; see shared.testing.use_clock)."""

    source: Callable[[], dt.datetime] | None = None

    def __call__(self) -> dt.datetime:
        return (self.source or utc_now)()


CLOCK = ServiceClock()


class _Process:
    """What this process has built: the clients (per event loop), the Service Bus senders and the
    dependencies over them, and the warm-up of the clients (``WARM_UP``)."""

    clients: PlatformClients | None = None
    outbox: ServiceBusOutbox | None = None
    dependencies: Dependencies | None = None
    warmed: PlatformClients | None = None
    warming: asyncio.Task[None] | None = None


_process = _Process()


def platform_clients() -> PlatformClients:
    """The process's SDK clients, rebuilt if the event loop changed (the SDKs bind to one)."""
    loop = asyncio.get_running_loop()
    if _process.clients is None or _process.clients.loop is not loop:
        _process.clients = build_platform_clients(get_settings(), loop)
        _process.dependencies = None
    return _process.clients


def dependencies() -> Dependencies:
    """The process's ``Dependencies`` over its clients, with one Graph write pacer."""
    clients = platform_clients()
    if _process.dependencies is None:
        # Graph's write quota is the app's in the tenant, shared with every other instance: the
        # pacer slows down from what Graph reports of it (docs/reliability.md).
        pacer = WritePacer(GRAPH_WRITES_PER_SECOND, GRAPH_WRITE_BURST)
        ThrottleSignals.install(clients.graph_http, pacer)
        calls = GraphCalls(clients.graph, pacer, http=clients.graph_http, credential=clients.credential)
        _process.dependencies = Dependencies(
            settings=get_settings(),
            applications=ApplicationsGateway(calls),
            consent=ConsentGateway(calls),
            vault=KeyVaultGateway(clients.vault),
            leases=BlobLeases(clients.leases),
            role_assignments=RoleAssignmentsGateway(clients.authorization),
            outbox=_outbox(clients),
            keys=KeyCredentialsGateway(calls),
            certificates=CertificatesGateway(clients.certificates, clients.cryptography),
            clock=CLOCK,
        )
        _warm_up(clients, _process.dependencies)
    return _process.dependencies


def _outbox(clients: PlatformClients) -> ServiceBusOutbox:
    """One per set of clients, like the senders it keeps open: dependencies built again over the
    same clients (new settings) send on the links already attached rather than attach more."""
    if _process.outbox is None or _process.outbox.client is not clients.servicebus:
        _process.outbox = ServiceBusOutbox(clients.servicebus)
    return _process.outbox


def _warm_up(clients: PlatformClients, deps: Dependencies) -> None:
    """Once per set of clients (a new instance), unless ``WARM_UP`` is off: the platform's first
    calls that the first request would otherwise make one after another (tokens, Key Vault's
    challenge, the reply link), in the background beside that request."""
    if _process.warmed is clients or not deps.settings.warm_up:
        return
    _process.warmed = clients

    async def warm() -> None:
        await asyncio.gather(
            warm_up(clients, deps.settings),
            deps.outbox.prepare(deps.settings.results_queue),
            return_exceptions=True,
        )

    _process.warming = asyncio.get_running_loop().create_task(warm())


async def warmed() -> None:
    """Wait for the warm-up under way, if any (tests and benchmarks)."""
    if _process.warming is not None:
        with contextlib.suppress(Exception):
            await asyncio.shield(_process.warming)


def forget_dependencies() -> None:
    """Build the dependencies again on next use, from the settings as they are then."""
    _process.dependencies = None


async def close() -> None:
    """Close the process's clients and forget everything built over them."""
    clients, _process.clients, _process.dependencies = _process.clients, None, None
    _process.outbox = None  # its senders close with their client
    warming, _process.warming, _process.warmed = _process.warming, None, None
    if warming is not None:
        warming.cancel()
        with contextlib.suppress(BaseException):
            await warming
    if clients is not None:
        await clients.close()
