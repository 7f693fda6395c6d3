"""The gateways as the service builds them (shared.bootstrap), against the emulator."""

from __future__ import annotations

import pytest

from emulator.launcher import RunningEmulator
from shared import bootstrap
from shared.adapters.arm import RoleAssignmentsGateway
from shared.adapters.graph.applications import ApplicationsGateway
from shared.adapters.graph.calls import GraphCalls, RetryPolicy, WritePacer
from shared.adapters.graph.consent import ConsentGateway
from shared.adapters.keyvault import KeyVaultGateway
from shared.services.dependencies import Dependencies


@pytest.fixture
async def deps(emulator: RunningEmulator) -> Dependencies:
    """The process's dependencies over its SDK clients, on the session's event loop, with the
    emulator reset to its seeded tenant and an empty vault (the clients are closed at the end
    of the session, see tests/conftest.py)."""
    return bootstrap.dependencies()


@pytest.fixture
def applications(deps: Dependencies) -> ApplicationsGateway:
    assert isinstance(deps.applications, ApplicationsGateway)
    return deps.applications


@pytest.fixture
def consent(deps: Dependencies) -> ConsentGateway:
    assert isinstance(deps.consent, ConsentGateway)
    return deps.consent


@pytest.fixture
def vault(deps: Dependencies) -> KeyVaultGateway:
    assert isinstance(deps.vault, KeyVaultGateway)
    return deps.vault


@pytest.fixture
def role_assignments(deps: Dependencies) -> RoleAssignmentsGateway:
    assert isinstance(deps.role_assignments, RoleAssignmentsGateway)
    return deps.role_assignments


@pytest.fixture
async def quick_retries(deps: Dependencies) -> ApplicationsGateway:
    """An applications gateway over the same Graph client whose retries wait milliseconds, for
    the tests that exhaust them (the real policy backs off for tens of seconds)."""
    fast = RetryPolicy(base_delay=0.001, max_delay=0.01)
    clients = bootstrap.platform_clients()
    calls = GraphCalls(
        clients.graph, WritePacer(100.0, 100), fast, http=clients.graph_http, credential=clients.credential
    )
    return ApplicationsGateway(calls)
