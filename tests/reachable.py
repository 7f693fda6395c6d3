"""Everything reachable from an exception: what the leak detector searches (tests/leaks.py).

A traceback prints an exception's message and, unless suppressed, its cause and context; the
objects keep more (an azure-core error keeps the request it failed on, body included).
``exception_text`` walks the whole ``__cause__``/``__context__`` chain, suppressed contexts
included, and every string or bytes value reachable from each exception through attributes,
slots, containers and arguments, to a bounded depth.
"""

from __future__ import annotations

import traceback

MAX_DEPTH = 8
MAX_OBJECTS = 20_000


def exception_text(error: BaseException) -> str:
    """The traceback of ``error`` and every string reachable from it and from each exception of
    its ``__cause__``/``__context__`` chain (suppressed contexts included)."""
    parts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(error, 0)]
    while stack and len(seen) < MAX_OBJECTS:
        value, depth = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, str):
            parts.append(value)
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            parts.append(bytes(value).decode("utf-8", "replace"))
            continue
        if depth >= MAX_DEPTH or isinstance(value, int | float | bool | type(None)):
            continue
        children: list[object] = []
        if isinstance(value, BaseException):
            children += [value.__cause__, value.__context__, *value.args, str(value)]
        if isinstance(value, dict):
            children += [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            children += list(value)
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict) and not isinstance(value, type):
            children += list(attributes.values())
        for slot in getattr(type(value), "__slots__", ()):
            if isinstance(slot, str) and not slot.startswith("__"):
                children.append(getattr(value, slot, None))
        stack.extend((child, depth + 1) for child in children)
    return "\n".join(parts)
