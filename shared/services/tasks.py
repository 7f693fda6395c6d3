"""Running independent platform calls concurrently, without letting any outlive its step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_all(*steps: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather``, except that every step runs to its end before the first error is
    raised: a failed branch never leaves another one still writing to Graph or Key Vault
    after the invocation has answered (or been abandoned for redelivery)."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
