"""Model bases and the shape of a problem: ``FieldError``, and ``RequestRejected`` that carries them.

Inbound models are strict (JSON's types as written) and never quote their input in an error;
outbound models are built in Python (snake_case) and sent as camelCase JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


def _title(name: str, info: object) -> str:
    # Schema titles in the JSON spelling (`uniqueName`), not pydantic's "Uniquename".
    return to_camel(name)


class Inbound(BaseModel):
    # Strict: JSON's types as written (no "true" for true); inputs never appear in error text.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        serialize_by_alias=True,
        hide_input_in_errors=True,
        field_title_generator=_title,
    )


class Outbound(BaseModel):
    # Built by the service in Python (snake_case names), sent as camelCase JSON.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        field_title_generator=_title,
    )


class FieldError(Outbound):
    """One problem with a request: where, which rule, and the rule in words."""

    field: str = Field(
        description="Where: a dotted path with [i] indexes, e.g. `apiPermissions[1].delegated[0]`; "
        "`body` for problems with the message as a whole."
    )
    code: str = Field(description="A stable, machine-readable code such as `missing` or `too_long`.")
    message: str = Field(description="The rule that was broken, in words. Never repeats the value.")


class RequestRejected(Exception):
    """A request that can never succeed as sent: reply `rejected` and complete the message."""

    def __init__(self, errors: Sequence[FieldError], request_id: str | None = None) -> None:
        self.errors = list(errors)
        self.request_id = request_id
        super().__init__(f"request rejected with {len(self.errors)} problem(s)")


def rule(code: str, message: str, *at: str | int) -> PydanticCustomError:
    """A validation error of our own; `at` continues the path below the validated value.

    The `at` context key also marks the error as ours, so its message is used as is.
    """
    return PydanticCustomError(code, message, {"at": at})
