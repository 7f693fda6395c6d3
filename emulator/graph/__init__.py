"""Microsoft Graph v1.0 (placeholder until the Graph emulation lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from emulator.platform import Platform


def routes(platform: Platform) -> list[BaseRoute]:
    return []
