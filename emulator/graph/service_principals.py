"""``/servicePrincipals``: create (only for a replicated application), read, list, update,
upsert by ``appId``, delete; app role assignments (``appRoleAssignedTo`` on the resource,
``appRoleAssignments`` on the principal); what a service principal owns."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from emulator.clock import iso
from emulator.errors import PlatformError
from emulator.graph import authz
from emulator.graph.applications import directory_object, wants_upsert
from emulator.graph.common import (
    Call,
    Json,
    bad_request,
    check_properties,
    denied,
    invalid_reference,
    no_content,
    not_found,
    ok,
)
from emulator.graph.entities import APPLICATION, ASSIGNMENT, SERVICE_PRINCIPAL
from emulator.graph.odata import (
    EntityType,
    collection,
    context_fragment,
    paginate,
    parse_paging,
    parse_query,
    parse_select,
    view,
)
from emulator.model import SERVICE_PRINCIPAL_DEFAULTS

ENTITY = SERVICE_PRINCIPAL
READ_ONLY = frozenset(
    {
        "id",
        "createdDateTime",
        "deletedDateTime",
        "appDisplayName",
        "appDescription",
        "appOwnerOrganizationId",
        "applicationTemplateId",
        "disabledByMicrosoftStatus",
        "servicePrincipalType",
        "signInAudience",
        "verifiedPublisher",
        "appRoles",
        "oauth2PermissionScopes",
        "resourceSpecificApplicationPermissions",
    }
)
DEFAULT_ACCESS_ROLE = "00000000-0000-0000-0000-000000000000"


def _lookup(call: Call) -> tuple[str | None, str]:
    seg, directory = call.segments, call.directory
    if seg.get("id"):
        return (seg["id"] if seg["id"] in directory.service_principals else None), seg["id"]
    value = seg["alt_value"].replace("''", "'")
    return directory.sp_by_app_id.get(value), value


def resolve(call: Call, replicated: bool = True) -> Json:
    sp_id, key = _lookup(call)
    if sp_id is None or (replicated and not call.directory.is_replicated(sp_id)):
        raise not_found(key)
    return call.directory.service_principals[sp_id]


# -- collection -------------------------------------------------------------------------------


async def list_service_principals(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    query = parse_query(call.request, ENTITY)
    directory = call.directory
    keys: list[str] | dict[str, Json] = directory.service_principals
    eq = query.equalities
    if "id" in eq or "appId" in eq:
        found = eq["id"] if "id" in eq else directory.sp_by_app_id.get(eq["appId"])
        keys = [found] if found else []
    predicate = query.predicate
    page, cursor = paginate(
        keys,
        directory.service_principals.get,
        lambda sp: directory.is_replicated(sp["id"]) and (predicate is None or predicate(sp)),
        query.top,
        query.cursor,
    )
    return ok(
        collection(
            call.request,
            call.platform.base_url,
            call.context(context_fragment("servicePrincipals", query.select)),
            [view(ENTITY, sp, query.select) for sp in page],
            cursor,
        )
    )


def _create(call: Call, props: Json, app_id: str) -> Json:
    """A service principal for the application ``app_id``, which must exist in this tenant and
    have replicated (else Graph's NoBackingApplicationObject answer)."""
    directory = call.directory
    if not isinstance(app_id, str) or not app_id:
        raise bad_request("Required property 'appId' is missing.")
    object_id = directory.app_by_app_id.get(app_id)
    if object_id is None or not directory.is_replicated(object_id):
        raise bad_request(
            f"The appId '{app_id}' of the service principal does not reference a valid application object.",
            code="NoBackingApplicationObject",
        )
    if not call.principal.has_any(authz.READ_WRITE_ALL) and not directory.owns(call.caller, object_id):
        raise denied()
    if app_id in directory.sp_by_app_id:
        raise bad_request(
            "The service principal cannot be created, updated, or restored because the service principal "
            "name " + app_id + " is already in use.",
            code="Request_MultipleObjectsWithSameKeyValue",
        )
    app = directory.applications[object_id]
    sp: Json = {
        "id": str(uuid.uuid4()),
        "appId": app_id,
        "displayName": app.get("displayName"),
        "appOwnerOrganizationId": directory.tenant_id,
        "createdDateTime": iso(call.platform.clock.now()),
    }
    sp.update({k: v for k, v in props.items() if k != "appId"})
    owner = None if call.principal.has_any(authz.READ_WRITE_ALL) else call.caller
    directory.add_service_principal(sp, owner, call.platform.faults.replication_lag())
    directory.sync_service_principal(app)
    return sp


async def create_service_principal(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_CREATORS)
    body = await call.body()
    props = check_properties(body, SERVICE_PRINCIPAL_DEFAULTS, READ_ONLY)
    sp = _create(call, props, body.get("appId", ""))
    return ok({"@odata.context": call.context("servicePrincipals/$entity"), **view(ENTITY, sp)}, 201)


# -- one service principal ----------------------------------------------------------------------


async def get_service_principal(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    sp = resolve(call)
    select = parse_select(call.request, ENTITY)
    return ok({"@odata.context": call.context("servicePrincipals/$entity"), **view(ENTITY, sp, select)})


async def update_service_principal(call: Call) -> Response:
    upsert = call.segments.get("alt") is not None and wants_upsert(call)
    sp_id, key = _lookup(call)
    props = check_properties(await call.body(), SERVICE_PRINCIPAL_DEFAULTS, READ_ONLY)
    if sp_id is None:
        if not upsert:
            authz.require(call, *authz.APPLICATION_READERS)
            raise not_found(key)
        authz.require(call, *authz.APPLICATION_CREATORS)
        if props.get("appId") not in (None, key):
            raise bad_request("The appId in the request body does not match the one in the URL.")
        sp = _create(call, props, key)
        return ok({"@odata.context": call.context("servicePrincipals/$entity"), **view(ENTITY, sp)}, 201)
    if not upsert and not call.directory.is_replicated(sp_id):
        raise not_found(key)
    authz.require_write(call, sp_id)
    sp = call.directory.service_principals[sp_id]
    if props.get("appId") not in (None, sp["appId"]):
        raise bad_request("Property 'appId' is read-only and cannot be changed.")
    sp.update(props)
    return no_content()


async def delete_service_principal(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_WRITERS)
    sp = resolve(call)
    authz.require_write(call, sp["id"])
    call.directory.delete_service_principal(sp["id"])
    return no_content()


async def list_owners(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    sp = resolve(call)
    owners = [o for o in (directory_object(call, i) for i in call.directory.owners.get(sp["id"], [])) if o]
    return ok({"@odata.context": call.context("directoryObjects"), "value": owners})


# -- what a service principal owns --------------------------------------------------------------

OWNED_TYPES: dict[str, EntityType] = {
    "microsoft.graph.application": APPLICATION,
    "microsoft.graph.servicePrincipal": SERVICE_PRINCIPAL,
}
# $select on an uncast directoryObject collection may name properties of either type
OWNED_ANY = EntityType("directoryObject", {**SERVICE_PRINCIPAL.defaults, **APPLICATION.defaults})


async def owned_objects(call: Call) -> Response:
    """``/servicePrincipals/{id}/ownedObjects[/microsoft.graph.application]``: the applications
    and service principals it owns, each with its ``@odata.type``, paged like any list."""
    authz.require(call, *authz.APPLICATION_READERS)
    sp = resolve(call)
    cast = call.segments.get("cast")
    if cast:
        cast = "microsoft." + cast  # msgraph writes the cast as graph.application
    directory = call.directory
    if cast:
        query = parse_query(call.request, OWNED_TYPES[cast])
        top, cursor, predicate, select = query.top, query.cursor, query.predicate, query.select
    else:
        if call.request.query_params.get("$filter"):
            raise PlatformError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        top, cursor = parse_paging(call.request)
        predicate, select = None, parse_select(call.request, OWNED_ANY)

    def lookup(object_id: str) -> Json | None:
        if cast != "microsoft.graph.servicePrincipal" and object_id in directory.applications:
            return directory.applications[object_id]
        if cast != "microsoft.graph.application" and object_id in directory.service_principals:
            return directory.service_principals[object_id]
        return None

    page, next_cursor = paginate(
        directory.owned.get(sp["id"], []),
        lookup,
        lambda obj: directory.is_replicated(obj["id"]) and (predicate is None or predicate(obj)),
        top,
        cursor,
    )
    items = []
    for obj in page:
        typed = APPLICATION if obj["id"] in directory.applications else SERVICE_PRINCIPAL
        names = tuple(n for n in select if n in typed.defaults) if select else None
        items.append(view(typed, obj, names))
    fragment = f"directoryObjects/{cast}" if cast else "directoryObjects"
    return ok(collection(call.request, call.platform.base_url, call.context(fragment), items, next_cursor))


# -- app role assignments ----------------------------------------------------------------------


def _assignments(call: Call, side: str, sp_id: str) -> list[Json]:
    return [a for a in call.directory.app_role_assignments.values() if a[side] == sp_id]


async def list_assignments(call: Call) -> Response:
    """``appRoleAssignedTo`` (granted on this resource) or ``appRoleAssignments`` (granted to
    this principal)."""
    authz.require(call, *authz.ASSIGNMENT_READERS)
    sp = resolve(call)
    side = "resourceId" if call.segments["rel"] == "appRoleAssignedTo" else "principalId"
    query = parse_query(call.request, ASSIGNMENT)
    predicate = query.predicate
    directory = call.directory
    matching = {a["id"]: a for a in _assignments(call, side, sp["id"])}
    page, cursor = paginate(
        matching,
        matching.get,
        lambda a: directory.is_replicated(a["id"]) and (predicate is None or predicate(a)),
        query.top,
        query.cursor,
    )
    fragment = f"servicePrincipals('{sp['id']}')/{call.segments['rel']}"
    return ok(
        collection(
            call.request,
            call.platform.base_url,
            call.context(fragment),
            [view(ASSIGNMENT, a, query.select) for a in page],
            cursor,
        )
    )


async def create_assignment(call: Call) -> Response:
    authz.require(call, *authz.ASSIGNMENT_WRITERS)
    sp = resolve(call)
    body = await call.body()
    for key in body:
        if key not in ASSIGNMENT.defaults and not key.startswith("@odata."):
            raise bad_request(f"Invalid property '{key}'.")
    directory = call.directory
    principal_id, resource_id, role_id = (
        body.get("principalId"),
        body.get("resourceId"),
        body.get("appRoleId"),
    )
    if not principal_id or not resource_id or not role_id:
        raise bad_request("One or more properties are invalid.")
    side = "resourceId" if call.segments["rel"] == "appRoleAssignedTo" else "principalId"
    if (resource_id if side == "resourceId" else principal_id) != sp["id"]:
        raise bad_request("One or more properties are invalid.")
    resource = directory.service_principals.get(resource_id)
    principal = directory.service_principals.get(principal_id) or directory.users.get(principal_id)
    if resource is None or principal is None:
        raise not_found(resource_id if resource is None else principal_id)
    if not directory.is_replicated(resource_id) or not directory.is_replicated(principal_id):
        raise invalid_reference()
    roles = {r["id"] for r in resource.get("appRoles", []) if r.get("isEnabled", True)}
    if role_id not in roles and not (role_id == DEFAULT_ACCESS_ROLE and not roles):
        raise bad_request(f"Permission being assigned was not found on application '{resource['appId']}'.")
    if any(
        a["principalId"] == principal_id and a["resourceId"] == resource_id and a["appRoleId"] == role_id
        for a in directory.app_role_assignments.values()
    ):
        raise bad_request("Permission being assigned already exists on the object")
    assignment = {
        "id": str(uuid.uuid4()),
        "appRoleId": role_id,
        "createdDateTime": iso(call.platform.clock.now()),
        "deletedDateTime": None,
        "principalDisplayName": principal.get("displayName"),
        "principalId": principal_id,
        "principalType": "User" if principal_id in directory.users else "ServicePrincipal",
        "resourceDisplayName": resource.get("displayName"),
        "resourceId": resource_id,
    }
    directory.app_role_assignments[assignment["id"]] = assignment
    directory.lag(assignment["id"], call.platform.faults.replication_lag())
    fragment = f"servicePrincipals('{sp['id']}')/{call.segments['rel']}/$entity"
    return ok({"@odata.context": call.context(fragment), **assignment}, 201)


def _assignment(call: Call, sp: Json) -> Json:
    side = "resourceId" if call.segments["rel"] == "appRoleAssignedTo" else "principalId"
    assignment = call.directory.app_role_assignments.get(call.segments["assignment"])
    if (
        assignment is None
        or assignment[side] != sp["id"]
        or not call.directory.is_replicated(assignment["id"])
    ):
        raise not_found(call.segments["assignment"])
    return assignment


async def get_assignment(call: Call) -> Response:
    authz.require(call, *authz.ASSIGNMENT_READERS)
    sp = resolve(call)
    assignment = _assignment(call, sp)
    fragment = f"servicePrincipals('{sp['id']}')/{call.segments['rel']}/$entity"
    return ok({"@odata.context": call.context(fragment), **view(ASSIGNMENT, assignment)})


async def delete_assignment(call: Call) -> Response:
    authz.require(call, *authz.ASSIGNMENT_WRITERS)
    sp = resolve(call)
    assignment = _assignment(call, sp)
    del call.directory.app_role_assignments[assignment["id"]]
    return no_content()
