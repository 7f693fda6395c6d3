"""``/users``: the seeded users, read only."""

from __future__ import annotations

from starlette.responses import Response

from emulator.graph import authz
from emulator.graph.common import Call, Json, not_found, ok
from emulator.graph.entities import USER
from emulator.graph.odata import collection, context_fragment, paginate, parse_query, parse_select, view


async def list_users(call: Call) -> Response:
    authz.require(call, *authz.USER_READERS)
    query = parse_query(call.request, USER)
    users = call.directory.users
    predicate = query.predicate
    page, cursor = paginate(
        users, users.get, lambda u: predicate is None or predicate(u), query.top, query.cursor
    )
    return ok(
        collection(
            call.request,
            call.platform.base_url,
            call.context(context_fragment("users", query.select)),
            [view(USER, u, query.select) for u in page],
            cursor,
        )
    )


def _user(call: Call) -> Json:
    key = call.segments["user"]
    users = call.directory.users
    user = users.get(key) or next(
        (u for u in users.values() if str(u.get("userPrincipalName", "")).casefold() == key.casefold()), None
    )
    if user is None:
        raise not_found(key)
    return user


async def get_user(call: Call) -> Response:
    authz.require(call, *authz.USER_READERS)
    user = _user(call)
    select = parse_select(call.request, USER)
    return ok({"@odata.context": call.context("users/$entity"), **view(USER, user, select)})
