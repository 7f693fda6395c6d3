"""``/oauth2PermissionGrants``: delegated permission grants (admin consent to scopes). One
grant per (client, resource, consentType[, principal]): a second one answers 409, and
scopes are added by PATCHing ``scope``."""

from __future__ import annotations

import base64
import uuid

from starlette.responses import Response

from emulator.errors import PlatformError
from emulator.graph import authz
from emulator.graph.common import Call, Json, bad_request, invalid_reference, no_content, not_found, ok
from emulator.graph.entities import GRANT
from emulator.graph.odata import collection, context_fragment, paginate, parse_query, parse_select, view

WRITABLE = frozenset({"clientId", "consentType", "principalId", "resourceId", "scope"})


def _new_id() -> str:
    # Graph's grant ids are base64url strings, not GUIDs
    return base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:16]).decode().rstrip("=")


def _check(body: Json) -> None:
    for key in body:
        if key not in GRANT.defaults and not key.startswith("@odata."):
            raise bad_request(f"Invalid property '{key}'.")


def _grant(call: Call) -> Json:
    grant = call.directory.oauth2_permission_grants.get(call.segments["grant"])
    if grant is None or not call.directory.is_replicated(grant["id"]):
        raise not_found(call.segments["grant"])
    return grant


async def list_grants(call: Call) -> Response:
    authz.require(call, *authz.GRANT_READERS)
    query = parse_query(call.request, GRANT)
    directory = call.directory
    predicate = query.predicate
    client = call.segments.get("id")  # /servicePrincipals/{id}/oauth2PermissionGrants
    page, cursor = paginate(
        directory.oauth2_permission_grants,
        directory.oauth2_permission_grants.get,
        lambda g: (
            directory.is_replicated(g["id"])
            and (client is None or g["clientId"] == client)
            and (predicate is None or predicate(g))
        ),
        query.top,
        query.cursor,
    )
    return ok(
        collection(
            call.request,
            call.platform.base_url,
            call.context(context_fragment("oauth2PermissionGrants", query.select)),
            [view(GRANT, g, query.select) for g in page],
            cursor,
        )
    )


async def create_grant(call: Call) -> Response:
    authz.require(call, *authz.GRANT_WRITERS)
    body = await call.body()
    _check(body)
    directory = call.directory
    consent = body.get("consentType")
    if consent not in ("AllPrincipals", "Principal"):
        raise bad_request(
            "Invalid value specified for property 'consentType' of resource 'OAuth2PermissionGrant'."
        )
    principal = body.get("principalId")
    if (consent == "Principal") != bool(principal):
        raise bad_request(
            "Invalid value specified for property 'principalId' of resource 'OAuth2PermissionGrant'."
        )
    for field in ("clientId", "resourceId"):
        sp_id = body.get(field)
        if not isinstance(sp_id, str) or sp_id not in directory.service_principals:
            raise bad_request(
                f"Invalid value specified for property '{field}' of resource 'OAuth2PermissionGrant'."
            )
        if not directory.is_replicated(sp_id):
            raise invalid_reference()
    if principal is not None and (principal not in directory.users or not directory.is_replicated(principal)):
        raise invalid_reference()
    key = (body["clientId"], consent, body["resourceId"], principal)
    if any(
        (g["clientId"], g["consentType"], g["resourceId"], g.get("principalId")) == key
        for g in directory.oauth2_permission_grants.values()
    ):
        raise PlatformError(
            409, "Request_MultipleObjectsWithSameKeyValue", "Permission entry already exists."
        )
    grant = {
        "id": _new_id(),
        "clientId": body["clientId"],
        "consentType": consent,
        "principalId": principal,
        "resourceId": body["resourceId"],
        "scope": body.get("scope") or "",
    }
    directory.oauth2_permission_grants[grant["id"]] = grant
    directory.lag(grant["id"], call.platform.faults.replication_lag())
    return ok({"@odata.context": call.context("oauth2PermissionGrants/$entity"), **grant}, 201)


async def get_grant(call: Call) -> Response:
    authz.require(call, *authz.GRANT_READERS)
    grant = _grant(call)
    select = parse_select(call.request, GRANT)
    return ok(
        {"@odata.context": call.context("oauth2PermissionGrants/$entity"), **view(GRANT, grant, select)}
    )


async def update_grant(call: Call) -> Response:
    authz.require(call, *authz.GRANT_WRITERS)
    grant = _grant(call)
    body = await call.body()
    _check(body)
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key != "scope" and value != grant.get(key):
            raise bad_request(f"Property '{key}' is read-only and cannot be changed.")
    if "scope" in body:
        grant["scope"] = body["scope"] or ""
    return no_content()


async def delete_grant(call: Call) -> Response:
    authz.require(call, *authz.GRANT_WRITERS)
    grant = _grant(call)
    del call.directory.oauth2_permission_grants[grant["id"]]
    return no_content()
