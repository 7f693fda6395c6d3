"""Any message body to a typed request, or ``RequestRejected`` with one ``FieldError`` per problem.

Bodies are refused before validation when they are too large, not UTF-8, not JSON, or nested
far deeper than a request can be; pydantic's own messages (which may quote the input) are
replaced with ours.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shared.messages.base import FieldError, RequestRejected
from shared.messages.fields import REQUEST_ID_PATTERN
from shared.messages.requests import ACTIONS, CREDENTIAL_TYPES, REQUEST_ADAPTER, RegistrationRequest

# The Service Bus standard tier's largest message.
MAX_BODY_BYTES = 256 * 1024
# A valid request nests five levels deep; anything far deeper is refused before validation.
MAX_NESTING = 32
# A reply is itself a Service Bus message: a body with thousands of mistakes gets the first few.
MAX_REPORTED_ERRORS = 20


def parse_request(body: bytes) -> RegistrationRequest:
    """The typed request in a message body; raises `RequestRejected` (and nothing else) for any bad body."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected([_body_error("too_large", f"The body must be at most {MAX_BODY_BYTES} bytes.")])
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestRejected([_body_error("not_utf8", "The body must be UTF-8 encoded JSON.")]) from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_Object.of)
    except RecursionError:
        raise RequestRejected([_body_error("too_deep", "The body is nested too deeply.")]) from None
    except ValueError:
        raise RequestRejected([_body_error("invalid_json", "The body is not valid JSON.")]) from None
    if not isinstance(document, dict):
        raise RequestRejected([_body_error("not_object", "The body must be a JSON object.")])
    request_id = _readable_request_id(document)
    if _nesting(document) > MAX_NESTING:
        raise RequestRejected([_body_error("too_deep", "The body is nested too deeply.")], request_id)
    duplicates = _duplicate_keys(document)
    if duplicates:
        raise RequestRejected(duplicates[:MAX_REPORTED_ERRORS], request_id)
    try:
        return REQUEST_ADAPTER.validate_json(text)
    except ValidationError as error:
        raise RequestRejected(_field_errors(error.errors()), request_id) from None


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once. JSON parsers
    disagree on which of two equal keys wins (here and in pydantic, the last), so a body that
    could mean two things to two readers (a second `action`, a second `uniqueName`) is refused."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _Object:
        made = cls(pairs)
        if len(made) != len(pairs):
            counts = Counter(key for key, _ in pairs)
            made.duplicates = tuple(key for key, n in counts.items() if n > 1)
        return made


def _duplicate_keys(document: object) -> list[FieldError]:
    errors: list[FieldError] = []
    stack: list[tuple[object, list[str | int]]] = [(document, [])]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, _Object):
            errors.extend(
                FieldError(
                    field=_path([*loc, key]),
                    code="duplicate_key",
                    message="This key appears more than once in its object; give it once.",
                )
                for key in value.duplicates
            )
            stack.extend((child, [*loc, key]) for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, [*loc, i]) for i, child in enumerate(value))
    return sorted(errors, key=lambda e: e.field)


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are Python's extension, not JSON.
    raise ValueError(name)


def _body_error(code: str, message: str) -> FieldError:
    return FieldError(field="body", code=code, message=message)


def _readable_request_id(document: dict[str, Any]) -> str | None:
    if "requestId" in getattr(document, "duplicates", ()):
        return None  # two request ids: answering to either would mislead the other
    value = document.get("requestId")
    if isinstance(value, str) and len(value) <= 100 and re.fullmatch(REQUEST_ID_PATTERN, value):
        return value
    return None


def _nesting(document: object) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend(
                    (child, depth + 1) for child in (value.values() if isinstance(value, dict) else value)
                )
    return deepest


# pydantic's own messages sometimes quote the input, so each error type gets ours.
# Placeholders name only constraint values from the models, never input.
_PYDANTIC_ERRORS: dict[str, tuple[str, str]] = {
    "missing": ("missing", "This field is required."),
    "union_tag_not_found": ("missing", "This field is required."),
    "extra_forbidden": ("unexpected_field", "This field is not part of the contract."),
    "string_type": ("invalid_type", "Must be a string."),
    "bool_type": ("invalid_type", "Must be true or false."),
    "int_type": ("invalid_type", "Must be an integer."),
    "list_type": ("invalid_type", "Must be an array."),
    "dict_type": ("invalid_type", "Must be an object."),
    "model_type": ("invalid_type", "Must be an object."),
    "model_attributes_type": ("invalid_type", "Must be an object."),
    "string_too_short": ("too_short", "Must be at least {min_length} characters long."),
    "string_too_long": ("too_long", "Must be at most {max_length} characters long."),
    "too_short": ("too_short", "Must have at least {min_length} entries."),
    "too_long": ("too_long", "Must have at most {max_length} entries."),
    "string_pattern_mismatch": ("invalid_format", "Must match the pattern {pattern}."),
    "literal_error": ("invalid_value", "Must be {expected}."),
    "union_tag_invalid": ("invalid_value", "Must be one of {expected_tags}."),
    "datetime_type": ("invalid_datetime", "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z."),
    "datetime_parsing": ("invalid_datetime", "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z."),
    "datetime_from_date_parsing": (
        "invalid_datetime",
        "Must be an ISO-8601 date and time, e.g. 2026-01-31T00:00:00Z.",
    ),
    "timezone_aware": ("invalid_datetime", "Must include a time zone, e.g. 2026-01-31T00:00:00Z."),
    "json_invalid": ("invalid_json", "The body is not valid JSON."),
}
_SAFE_CONTEXT = ("min_length", "max_length", "pattern", "expected", "expected_tags")
_SAFE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _field_errors(details: Iterable[ErrorDetails]) -> list[FieldError]:
    errors: list[FieldError] = []
    for detail in details:
        if len(errors) == MAX_REPORTED_ERRORS:
            errors.append(
                _body_error("too_many_errors", f"Only the first {MAX_REPORTED_ERRORS} problems are reported.")
            )
            break
        errors.append(_field_error(detail))
    return errors


def _field_error(detail: ErrorDetails) -> FieldError:
    context = detail.get("ctx") or {}
    loc: list[str | int] = list(detail["loc"])
    # Discriminated unions put the tag in the path: ("register", "credential", "secret", ...).
    if loc and loc[0] in ACTIONS:
        loc.pop(0)
    if len(loc) >= 2 and loc[0] == "credential" and loc[1] in CREDENTIAL_TYPES:
        del loc[1]
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(str(context.get("discriminator", "")).strip("'"))
    if "at" in context:
        loc.extend(context["at"])
        code, message = detail["type"], detail["msg"]
    else:
        code, template = _PYDANTIC_ERRORS.get(detail["type"], ("invalid_value", "The value is not valid."))
        try:
            message = template.format(**{key: context[key] for key in _SAFE_CONTEXT if key in context})
        except KeyError:
            message = "The value is not valid."
    return FieldError(field=_path(loc), code=code, message=message)


def _path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            # Unknown keys come from the input: name them only when they look like names.
            name = part if _SAFE_KEY.fullmatch(part) else "<?>"
            path += f".{name}" if path else name
    return path or "body"
