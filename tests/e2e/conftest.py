"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing


@pytest.fixture
def clock(emulator: RunningEmulator) -> Iterator[EmulatorClock]:
    """The service decides at the emulator's time, which the test moves."""
    emulated = EmulatorClock(emulator.admin)
    testing.use_clock(emulated.now)
    yield emulated
    testing.use_clock(None)
