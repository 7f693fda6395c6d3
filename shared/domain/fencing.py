"""Writes fenced by exclusivity: a workflow that holds an application's lease
(shared.services.exclusive) sets its fence for everything it calls, and every write the
adapters send asks the fence first (``check_writes``), before each attempt.

A fence that says no raises ``ExclusivityLost``: the lease may have passed to another delivery
of the same application, so this one must not change anything more. The fence lives in a
context variable, so it follows the workflow into the tasks it gathers and nowhere else.

``unfenced`` marks the one kind of write that is safe without exclusivity: removing a
credential whose value never left this process (it was issued moments ago, and not stored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from shared.domain.errors import TransientError


class ExclusivityLost(TransientError):
    """This delivery no longer holds the application's lease: it stops writing, and is redelivered."""


class Fence(Protocol):
    def check(self) -> None:
        """Raise ``ExclusivityLost`` if a write sent now might not be this delivery's alone."""


_fence: ContextVar[Fence | None] = ContextVar("fence", default=None)


def check_writes() -> None:
    """Before sending any write: raise ``ExclusivityLost`` if the current fence forbids it."""
    fence = _fence.get()
    if fence is not None:
        fence.check()


@contextmanager
def fenced(fence: Fence | None) -> Iterator[None]:
    token = _fence.set(fence)
    try:
        yield
    finally:
        _fence.reset(token)


@contextmanager
def unfenced() -> Iterator[None]:
    """Within: writes are sent whatever the fence says (see the module docstring for the one use)."""
    with fenced(None):
        yield
