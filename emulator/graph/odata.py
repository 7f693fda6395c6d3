"""OData query options as Graph's directory collections support them: ``$select``, ``$top``,
``$skiptoken`` paging with an absolute ``@odata.nextLink``, and the ``$filter`` forms the
service uses. Anything else in ``$filter`` is refused with ``Request_UnsupportedQuery``.

Paging walks the (insertion-ordered) collection lazily from a cursor: a page costs the
objects it returns plus those it skips, never the whole collection.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request

from emulator.errors import PlatformError
from emulator.graph.common import Json, bad_request

DEFAULT_PAGE = 100
MAX_PAGE = 999

Predicate = Callable[[Json], bool]


@dataclass(frozen=True)
class EntityType:
    """A Graph type as OData sees it: its name, its properties with their defaults, and what
    ``$filter`` may say about which property (``eq``, ``in``, ``startswith``, ``any``)."""

    name: str
    defaults: Json
    filterable: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return self.name[0].upper() + self.name[1:]


def view(entity: EntityType, stored: Json, select: tuple[str, ...] | None = None) -> Json:
    """The object as Graph returns it: defaults overlaid with what is stored, or only the
    selected properties. Nothing is copied, so the result must be serialised, not mutated."""
    defaults = entity.defaults
    names: Iterable[str] = (
        (*(("@odata.type",) if "@odata.type" in defaults else ()), "id", *select) if select else defaults
    )
    out: Json = {}
    for name in names:
        default = defaults.get(name)
        value = stored.get(name, default)
        if isinstance(default, dict) and isinstance(value, dict) and value is not default:
            value = {**default, **value}
        out[name] = value
    return out


# -- $select / $top / $skiptoken --------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    index: int  # position of the last object returned
    key: str  # and its key, to notice that the collection shifted under the cursor

    def token(self) -> str:
        return base64.urlsafe_b64encode(f"{self.index}:{self.key}".encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            index, key = raw.split(":", 1)
            return cls(int(index), key)
        except (ValueError, UnicodeDecodeError):
            raise bad_request(
                "The specified page token value has expired and can no longer be included in your request."
            ) from None


@dataclass(frozen=True)
class Query:
    select: tuple[str, ...] | None
    top: int
    cursor: Cursor | None
    predicate: Predicate | None
    equalities: dict[str, str]  # top-level ``prop eq 'x'`` clauses, for index look-ups


def parse_select(request: Request, entity: EntityType) -> tuple[str, ...] | None:
    raw = request.query_params.get("$select")
    if raw is None:
        return None
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        if name not in entity.defaults or name.startswith("@"):
            raise bad_request(
                f"Could not find a property named '{name}' on type 'microsoft.graph.{entity.name}'.",
                code="BadRequest",
            )
    return tuple(n for n in names if n != "id") or None


def parse_paging(request: Request) -> tuple[int, Cursor | None]:
    params = request.query_params
    top = DEFAULT_PAGE
    if "$top" in params:
        try:
            top = int(params["$top"])
        except ValueError:
            top = 0
        if not 1 <= top <= MAX_PAGE:
            raise bad_request(
                f"Invalid page size specified: '{params['$top']}'. Must be between 1 and 999 inclusive."
            )
    token = params.get("$skiptoken")
    return top, Cursor.parse(token) if token else None


def parse_query(request: Request, entity: EntityType) -> Query:
    top, cursor = parse_paging(request)
    predicate: Predicate | None = None
    equalities: dict[str, str] = {}
    if request.query_params.get("$filter"):
        predicate, equalities = parse_filter(request.query_params["$filter"], entity)
    return Query(parse_select(request, entity), top, cursor, predicate, equalities)


def _resume(keys: Iterable[str], cursor: Cursor | None) -> int:
    if cursor is None:
        return 0
    if next(islice(iter(keys), cursor.index, None), None) == cursor.key:
        return cursor.index + 1
    # Something before the cursor was deleted: find where the last object went.
    for index, key in enumerate(keys):
        if key == cursor.key:
            return index + 1
    return cursor.index  # it was deleted itself: its successor moved into its place


def paginate(
    keys: Iterable[str],
    lookup: Callable[[str], Json | None],
    accept: Predicate,
    top: int,
    cursor: Cursor | None,
) -> tuple[list[Json], Cursor | None]:
    """Up to ``top`` accepted objects after ``cursor``, and the cursor of the next page if an
    accepted object remains."""
    start = _resume(keys, cursor)
    page: list[Json] = []
    last: Cursor | None = None
    for index, key in enumerate(islice(iter(keys), start, None), start):
        obj = lookup(key)
        if obj is None or not accept(obj):
            continue
        if len(page) == top:
            return page, last
        page.append(obj)
        last = Cursor(index, key)
    return page, None


def collection(
    request: Request,
    base_url: str,
    context: str,
    items: list[Json],
    cursor: Cursor | None,
) -> Json:
    body: Json = {"@odata.context": context}
    if cursor is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "$skiptoken"]
        params.append(("$skiptoken", cursor.token()))
        query = urlencode(params, quote_via=quote, safe="$'(),:/")
        body["@odata.nextLink"] = f"{base_url}{request.url.path}?{query}"
    body["value"] = items
    return body


def context_fragment(collection_name: str, select: tuple[str, ...] | None) -> str:
    return f"{collection_name}({','.join(('id', *select))})" if select else collection_name


# -- $filter ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<punct>[(),:/]))")


def _unsupported(entity: EntityType, prop: str | None = None) -> PlatformError:
    if prop is None:
        return PlatformError(400, "Request_UnsupportedQuery", "Unsupported Query.")
    return PlatformError(
        400,
        "Request_UnsupportedQuery",
        f"Unsupported or invalid query filter clause specified for property '{prop}' of resource "
        f"'{entity.resource}'.",
    )


class _Parser:
    def __init__(self, text: str, entity: EntityType) -> None:
        self.entity = entity
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise _unsupported(entity)
            kind = match.lastgroup or ""
            value = match.group(kind)
            self.tokens.append((kind, value))
            pos = match.end()
        self.pos = 0
        self.equalities: dict[str, str] = {}

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1].lower() != value):
            raise _unsupported(self.entity)
        self.pos += 1
        return token[1]

    def literal(self) -> str:
        return self.take("str")[1:-1].replace("''", "'")

    def allows(self, prop: str, op: str) -> None:
        if op not in self.entity.filterable.get(prop, frozenset()):
            raise _unsupported(self.entity, prop)

    def parse(self) -> Predicate:
        predicate = self.expression(top=True)
        if self.peek() is not None:
            raise _unsupported(self.entity)
        return predicate

    def expression(self, top: bool = False) -> Predicate:
        clauses = [self.clause(top)]
        while (
            (token := self.peek()) is not None and token == ("name", token[1]) and token[1].lower() == "and"
        ):
            self.pos += 1
            clauses.append(self.clause(top))
        if len(clauses) == 1:
            return clauses[0]
        return lambda obj: all(clause(obj) for clause in clauses)

    def clause(self, top: bool) -> Predicate:
        token = self.peek()
        if token == ("punct", "("):
            self.pos += 1
            inner = self.expression()
            self.take("punct", ")")
            return inner
        name = self.take("name")
        if name.lower() == "startswith":
            self.take("punct", "(")
            prop = self.take("name")
            self.allows(prop, "startswith")
            self.take("punct", ",")
            prefix = self.literal().casefold()
            self.take("punct", ")")
            return lambda obj: str(obj.get(prop) or "").casefold().startswith(prefix)
        prop = name
        token = self.peek()
        if token == ("punct", "/"):
            return self.lambda_any(prop)
        op = self.take("name").lower()
        if op == "eq":
            self.allows(prop, "eq")
            value = self.literal()
            if top:
                self.equalities[prop] = value
            folded = value.casefold()
            return lambda obj: str(obj.get(prop) or "").casefold() == folded
        if op == "in":
            self.allows(prop, "in")
            self.take("punct", "(")
            values = {self.literal().casefold()}
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.add(self.literal().casefold())
            self.take("punct", ")")
            return lambda obj: str(obj.get(prop) or "").casefold() in values
        raise _unsupported(self.entity, prop)

    def lambda_any(self, prop: str) -> Predicate:
        self.take("punct", "/")
        self.take("name", "any")
        self.take("punct", "(")
        var = self.take("name")
        self.take("punct", ":")
        if self.peek() is not None and (self.peek() or ("", ""))[1].lower() == "startswith":
            self.pos += 1
            self.allows(prop, "any-startswith")
            self.take("punct", "(")
            if self.take("name") != var:
                raise _unsupported(self.entity, prop)
            self.take("punct", ",")
            prefix = self.literal().casefold()
            self.take("punct", ")")
            self.take("punct", ")")
            return lambda obj: any(str(v).casefold().startswith(prefix) for v in obj.get(prop) or ())
        if self.take("name") != var or self.take("name").lower() != "eq":
            raise _unsupported(self.entity, prop)
        self.allows(prop, "any-eq")
        folded = self.literal().casefold()
        self.take("punct", ")")
        return lambda obj: any(str(v).casefold() == folded for v in obj.get(prop) or ())


def parse_filter(text: str, entity: EntityType) -> tuple[Predicate, dict[str, str]]:
    parser = _Parser(text, entity)
    return parser.parse(), parser.equalities


def ops(*names: str) -> frozenset[str]:
    return frozenset(names)


EQ = ops("eq", "in")
STRING = ops("eq", "in", "startswith")
COLLECTION = ops("any-eq", "any-startswith")


def any_value(_: Any) -> bool:
    return True
