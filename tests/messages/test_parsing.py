"""Bytes to a request: whole-body problems, how problems are reported, and that nothing but
a request or a ``RequestRejected`` ever comes out."""

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from shared.domain.policy import check_policy
from shared.messages.base import FieldError, RequestRejected
from shared.messages.parsing import MAX_BODY_BYTES, parse_request
from shared.messages.replies import rejected as rejected_reply
from tests.messages.requests_fixtures import (
    NOW,
    SAMPLES,
    VALID,
    body,
    fields,
    register,
    rejection,
    settings,
    with_changes,
)

# ---------------------------------------------------------------- how problems are reported


def test_utf8_byte_order_mark_is_accepted() -> None:
    assert parse_request(b"\xef\xbb\xbf" + body(VALID)).request_id == "SNOW-CHG0012345"


def test_codes_are_specific() -> None:
    def codes(document: dict[str, Any]) -> list[str]:
        return [error.code for error in rejection(document).errors]

    assert codes(with_changes("requestId", ...)) == ["missing"]
    assert codes(with_changes("requestId", "R" * 101)) == ["too_long"]
    assert codes(with_changes("application.displayName", "")) == ["too_short"]
    assert codes(with_changes("requestId", "bad id")) == ["invalid_format"]
    assert codes(with_changes("action", "delete")) == ["invalid_value"]
    assert codes(with_changes("grantAdminConsent", "yes")) == ["invalid_type"]
    assert codes(with_changes("surplus", 1)) == ["unexpected_field"]
    assert codes(with_changes("apiPermissions", [VALID["apiPermissions"][0]] * 21)) == ["too_long"]


def test_several_problems_are_reported_together() -> None:
    document = with_changes("requestedBy", "", with_changes("application.clientType", "x"))
    assert fields(with_changes("grantAdminConsent", None, document)) == [
        "requestedBy",
        "application.clientType",
        "grantAdminConsent",
    ]


def test_too_many_problems_are_capped() -> None:
    document = with_changes(
        "application", {"displayName": "x", "clientType": "service"} | {f"f{i}": i for i in range(500)}
    )
    errors = rejection(document).errors
    assert len(errors) == 21
    assert errors[-1] == FieldError(field="body", code="too_many_errors", message=errors[-1].message)


def test_unexpected_field_names_that_are_not_names_are_not_echoed() -> None:
    hostile = "x' or 1 eq 1 or '" + "A" * 1000
    errors = rejection(with_changes(hostile, 1)).errors
    assert [e.field for e in errors] == ["<?>"]
    assert "A" * 100 not in errors[0].model_dump_json()


# ---------------------------------------------------------------- whole-body problems


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"{'single': 'quotes'}", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": 1} trailing', "invalid_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"requestId": "\xc3\x28"}', "not_utf8"),
        (b"[]", "not_object"),
        (b'"register"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a":' * 40_000 + b"1" + b"}" * 40_000, "too_deep"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"requestId": "R1", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        (b"1" * 5000, "invalid_json"),  # beyond Python's int-from-string limit
        (b" " * (MAX_BODY_BYTES + 1), "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v[:20]),
)
def test_body_problems(raw: bytes, code: str) -> None:
    errors = rejection(raw).errors
    assert [(e.field, e.code) for e in errors] == [("body", code)]


def test_body_at_the_size_limit_is_read() -> None:
    raw = body(VALID)
    raw = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert len(raw) == MAX_BODY_BYTES
    assert parse_request(raw).request_id == "SNOW-CHG0012345"


def test_request_id_recovered_from_deep_bodies() -> None:
    assert rejection(b'{"requestId": "R1", "x": ' + b"[" * 40 + b"]" * 40 + b"}").request_id == "R1"
    assert rejection(b'{"requestId": "R 1"}').request_id is None
    assert rejection(b'{"requestId": 5}').request_id is None
    assert rejection(b"[]").request_id is None


def test_lone_surrogates_are_refused() -> None:
    assert rejection(body(with_changes("application.displayName", "\ud800"))).errors


# ---------------------------------------------------------------- never crash


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
FAST = hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_rejects(raw: bytes) -> None:
    try:
        parse_request(raw)
    except RequestRejected as rejected:
        assert rejected.errors
        assert all(isinstance(error, FieldError) for error in rejected.errors)
        assert len(rejected.errors) <= 21
        rejected_reply(rejected.request_id, rejected.errors).model_dump_json()


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    parses_or_rejects(raw)


@FAST
@given(json_values)
def test_arbitrary_json_never_raises_anything_else(document: object) -> None:
    parses_or_rejects(body(document))


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


VALID_PATHS = _paths(VALID) + [p for s in SAMPLES for p in _paths(json.loads(s.read_bytes()))]


@FAST
@given(st.sampled_from([VALID] + [json.loads(s.read_bytes()) for s in SAMPLES]), st.data())
def test_mutated_requests_never_raise_anything_else(base: dict[str, Any], data: st.DataObject) -> None:
    document = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(document)
        path = data.draw(st.sampled_from(paths))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(
            json_values | st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
        )
    raw = body(document)
    parses_or_rejects(raw)
    try:
        request = parse_request(raw)
    except RequestRejected as rejected:
        for error in rejected.errors:
            assert error.message and error.code and error.field
    else:
        for field_error in check_policy(request, settings(), NOW):
            assert field_error.field


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200))
def test_unique_name_and_api_values_never_break_a_filter_literal(text: str) -> None:
    """Whatever a request gives, an accepted uniqueName and api hold no quote, space or control character."""
    for document in (
        with_changes("application.uniqueName", text),
        with_changes("apiPermissions.0.api", text),
    ):
        try:
            request = register(document)
        except RequestRejected:
            continue
        for accepted in (request.unique_name, request.api_permissions[0].api):
            assert not any(c in accepted for c in "'\"#?") and accepted.isprintable() and " " not in accepted
