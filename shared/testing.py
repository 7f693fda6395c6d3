"""Hooks for tests, benchmarks and the demo, kept out of the production modules.

- ``use_clock``: make the service decide at another clock's time (the emulator's);
- ``forget``: build the dependencies again on next use (after a settings change);
- ``reset_clients``: close and forget the SDK clients too (fresh tokens, new endpoints);
- ``warmed``: wait for a new instance's warm-up (``WARM_UP``) to finish.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from shared import bootstrap


def use_clock(clock: Callable[[], dt.datetime] | None) -> None:
    """Make decisions at ``clock``'s time; None: the real time."""
    bootstrap.CLOCK.source = clock


def forget() -> None:
    """Build the dependencies again on next use, from the settings as they are then."""
    bootstrap.forget_dependencies()


async def reset_clients() -> None:
    """Close the platform clients and forget everything built over them."""
    await bootstrap.close()


async def warmed() -> None:
    """Wait for the warm-up under way, if any."""
    await bootstrap.warmed()
