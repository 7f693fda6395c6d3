"""Key Vault secrets (placeholder until the Key Vault emulation lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from emulator.clock import Clock

if TYPE_CHECKING:
    from emulator.platform import Platform


class Vault:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def snapshot(self) -> dict[str, Any]:
        return {}

    def issued_values(self) -> list[str]:
        return []


def routes(platform: Platform) -> list[BaseRoute]:
    return []
