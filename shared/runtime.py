"""Wires the workflows to the platform: the gateways over the process's SDK clients, built
once per process (per event loop) and shared by every invocation, with one write pacer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from shared.clients import platform_clients
from shared.graph import GraphGateway, WritePacer
from shared.keyvault import KeyVaultGateway
from shared.registration import Workflow
from shared.settings import get_settings

# Graph's identity write limit per app and tenant: 3,000 per 150 s (platform-facts.md).
GRAPH_WRITES_PER_SECOND = 20.0
GRAPH_WRITE_BURST = 20

_workflow: tuple[asyncio.AbstractEventLoop, Workflow] | None = None
_clock: Callable[[], dt.datetime] | None = None


def workflow() -> Workflow:
    global _workflow
    clients = platform_clients()
    if _workflow is None or _workflow[0] is not clients.loop:
        pacer = WritePacer(GRAPH_WRITES_PER_SECOND, GRAPH_WRITE_BURST)
        built = Workflow(get_settings(), GraphGateway(clients.graph, pacer), KeyVaultGateway(clients.vault))
        if _clock is not None:
            built.clock = _clock
        _workflow = (clients.loop, built)
    return _workflow[1]


def use_clock(clock: Callable[[], dt.datetime] | None) -> None:
    """Make decisions at ``clock``'s time (the emulator's, whose clock tests and the demo move);
    None: the real time."""
    global _clock
    _clock = clock
    if _workflow is not None:
        _workflow[1].clock = clock or (lambda: dt.datetime.now(dt.UTC))


def forget() -> None:
    """Drop the cached workflow (tests that change settings)."""
    global _workflow
    _workflow = None
