"""Shared fixtures: one emulator process per test session, reset before each test that uses it.

``emulator`` starts ``python -m emulator serve`` on a free port and puts its settings.env into
the environment (as the Functions host would put app settings), so the service under test
reads them through ``shared.settings`` exactly as in Azure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from emulator.launcher import RunningEmulator, start


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start(tmp_path_factory.mktemp("emulator"))
    saved = {k: os.environ.get(k) for k in running.settings}
    os.environ.update(running.settings)
    try:
        yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        running.stop()


@pytest.fixture
def emulator(emulator_process: RunningEmulator) -> RunningEmulator:
    """The emulator, reset to the seeded tenant with no faults, an empty vault and the real time."""
    emulator_process.admin.reset()
    return emulator_process


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _close_platform_clients() -> AsyncIterator[None]:
    """The service builds its SDK clients once per process; close them when the session ends."""
    yield
    from shared.clients import reset_platform_clients

    await reset_platform_clients()
