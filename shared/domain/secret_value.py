"""`SecretValue`, the only type that holds a secret's plaintext, and refuses to show it.

A client secret passes from Graph's `addPassword` response to Key Vault and nowhere
else: not into a log line, an exception message, a reply or a dead-letter queue. Any
accidental `str()`, `repr()`, f-string, `%s`, JSON dump, pickle or copy-into-a-message
shows `SecretValue(***)` or fails; `reveal()` is the one deliberate way out, so a
reviewer can find every use of the plaintext with one search.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["SecretValue"]

_MASK = "SecretValue(***)"


class SecretValue:
    """A secret string that never prints itself; read it with `reveal()`."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretValue holds a str")
        self.__value = value

    def reveal(self) -> str:
        """The plaintext. Pass it straight to the call that needs it; never log it."""
        return self.__value

    def __repr__(self) -> str:
        return _MASK

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    # Equality is identity (object's default): comparing by value would let code
    # probe a secret, and compare in non-constant time.
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    # The value is immutable, so a copy can be the same object; pickling would write
    # the plaintext somewhere, so it is refused.
    def __copy__(self) -> SecretValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue:
        return self

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or serialised")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or serialised")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or serialised")
