"""``/applications``: create, read, list, update, upsert by alternate key, delete; password
and key credentials; owners; federated identity credentials. One resource and its navigation
properties, hence its length."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from emulator.clock import iso
from emulator.graph import authz, credentials
from emulator.graph.common import Call, Json, bad_request, check_properties, no_content, not_found, ok
from emulator.graph.entities import APPLICATION, FEDERATED_DEFAULTS, SERVICE_PRINCIPAL
from emulator.graph.odata import collection, context_fragment, paginate, parse_query, parse_select, view
from emulator.model import APPLICATION_DEFAULTS, USER_DEFAULTS

ENTITY = APPLICATION
READ_ONLY = frozenset(
    {
        "id",
        "appId",
        "createdDateTime",
        "deletedDateTime",
        "publisherDomain",
        "applicationTemplateId",
        "disabledByMicrosoftStatus",
        "certification",
        "verifiedPublisher",
    }
)


# servicePrincipalLockConfiguration's properties (resources/serviceprincipallockconfiguration), all
# Boolean. In the home tenant the lock changes nothing; it guards the service principals of the
# application in other tenants, which this single-tenant emulator does not have.
LOCK_PROPERTIES = (
    "isEnabled",
    "allProperties",
    "credentialsWithUsageVerify",
    "credentialsWithUsageSign",
    "tokenEncryptionKeyId",
)


def check_values(props: Json) -> Json:
    """Values of the typed properties Graph checks (beyond ``check_properties``' names):
    ``serviceManagementReference`` is a string, ``servicePrincipalLockConfiguration`` an
    object of Booleans, stored whole (a complex property is replaced, not merged)."""
    reference = props.get("serviceManagementReference")
    if reference is not None and not isinstance(reference, str):
        raise bad_request(
            "Invalid value specified for property 'serviceManagementReference' of resource 'Application'."
        )
    if props.get("servicePrincipalLockConfiguration") is not None:
        lock = props["servicePrincipalLockConfiguration"]
        if not isinstance(lock, dict):
            raise bad_request(
                "Invalid value specified for property 'servicePrincipalLockConfiguration' of resource 'Application'."
            )
        for key, value in lock.items():
            if key.startswith("@odata."):
                continue
            if key not in LOCK_PROPERTIES:
                raise bad_request(f"Invalid property '{key}'.")
            if value is not None and not isinstance(value, bool):
                raise bad_request(
                    f"Invalid value specified for property '{key}' of resource 'ServicePrincipalLockConfiguration'."
                )
        props["servicePrincipalLockConfiguration"] = {key: lock.get(key) for key in LOCK_PROPERTIES}
    return props


def wants_upsert(call: Call) -> bool:
    return "create-if-missing" in call.request.headers.get("prefer", "").lower()


def _alternate(call: Call) -> tuple[str | None, str]:
    """(the application's object id or None, the key as written in the request)."""
    seg, directory = call.segments, call.directory
    if seg.get("id"):
        return (seg["id"] if seg["id"] in directory.applications else None), seg["id"]
    value = seg["alt_value"].replace("''", "'")
    if seg["alt"] == "appId":
        return directory.app_by_app_id.get(value), value
    return directory.app_by_unique_name.get(value.casefold()), value


def resolve(call: Call, replicated: bool = True) -> Json:
    """The application the path names; 404 if it does not exist or (``replicated``) has not
    replicated yet."""
    object_id, key = _alternate(call)
    if object_id is None or (replicated and not call.directory.is_replicated(object_id)):
        raise not_found(key)
    return call.directory.applications[object_id]


def render(app: Json, select: tuple[str, ...] | None = None, single: bool = False) -> Json:
    out = view(ENTITY, app, select)
    keys = out.get("keyCredentials")
    # the certificate itself only on GET of one object with $select=keyCredentials
    if keys and not (single and select and "keyCredentials" in select):
        out["keyCredentials"] = [{**k, "key": None} for k in keys]
    return out


# -- collection -------------------------------------------------------------------------------


async def list_applications(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    query = parse_query(call.request, ENTITY)
    directory = call.directory
    keys: list[str] | dict[str, Json] = directory.applications
    eq = query.equalities
    if "id" in eq or "appId" in eq or "uniqueName" in eq:
        found = (
            eq["id"]
            if "id" in eq
            else directory.app_by_app_id.get(eq["appId"])
            if "appId" in eq
            else directory.app_by_unique_name.get(eq["uniqueName"].casefold())
        )
        keys = [found] if found else []
    predicate = query.predicate
    page, cursor = paginate(
        keys,
        directory.applications.get,
        lambda app: directory.is_replicated(app["id"]) and (predicate is None or predicate(app)),
        query.top,
        query.cursor,
    )
    body = collection(
        call.request,
        call.platform.base_url,
        call.context(context_fragment("applications", query.select)),
        [render(app, query.select) for app in page],
        cursor,
    )
    return ok(body)


def _create(call: Call, props: Json, unique_name: str | None = None) -> Json:
    directory = call.directory
    if not props.get("displayName"):
        raise bad_request("Required property 'displayName' is missing or empty.")
    if unique_name is not None:
        if props.get("uniqueName") not in (None, unique_name):
            raise bad_request("The uniqueName in the request body does not match the one in the URL.")
        props["uniqueName"] = unique_name
    name = props.get("uniqueName")
    if name is not None and (not isinstance(name, str) or name.casefold() in directory.app_by_unique_name):
        raise bad_request(
            "Another object with the same value for property uniqueName already exists.",
            code="Request_MultipleObjectsWithSameKeyValue",
        )
    app: Json = {
        "id": str(uuid.uuid4()),
        "appId": str(uuid.uuid4()),
        "createdDateTime": iso(call.platform.clock.now()),
        "signInAudience": APPLICATION_DEFAULTS["signInAudience"],
    }
    app.update({k: v for k, v in props.items() if k not in ("passwordCredentials", "keyCredentials")})
    if "keyCredentials" in props:
        app["keyCredentials"] = credentials.replace_keys(call, app, props["keyCredentials"])
    if "passwordCredentials" in props:
        app["passwordCredentials"] = credentials.replace_passwords(call, app, props["passwordCredentials"])
    owner = None if call.principal.has_any(authz.READ_WRITE_ALL) else call.caller
    return directory.add_application(app, owner, call.platform.faults.replication_lag())


def _update(call: Call, app: Json, props: Json) -> None:
    if "uniqueName" in props and props["uniqueName"] != app.get("uniqueName"):
        raise bad_request("Property 'uniqueName' is read-only and cannot be changed once set.")
    if "displayName" in props and not props["displayName"]:
        raise bad_request("Required property 'displayName' is missing or empty.")
    audience = props.get("signInAudience", app.get("signInAudience"))
    if "passwordCredentials" not in props:
        credentials.check_cap({**app, "signInAudience": audience}, 0)
    keys = credentials.replace_keys(call, app, props["keyCredentials"]) if "keyCredentials" in props else None
    passwords = (
        credentials.replace_passwords(call, {**app, "signInAudience": audience}, props["passwordCredentials"])
        if "passwordCredentials" in props
        else None
    )
    app.update({k: v for k, v in props.items() if k not in ("passwordCredentials", "keyCredentials")})
    if keys is not None:
        app["keyCredentials"] = keys
    if passwords is not None:
        app["passwordCredentials"] = passwords
    call.directory.sync_service_principal(app)


async def create_application(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_CREATORS)
    props = check_values(check_properties(await call.body(), APPLICATION_DEFAULTS, READ_ONLY))
    app = _create(call, props)
    return ok({"@odata.context": call.context("applications/$entity"), **render(app)}, 201)


# -- one application ----------------------------------------------------------------------------


async def get_application(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    app = resolve(call)
    select = parse_select(call.request, ENTITY)
    return ok({"@odata.context": call.context("applications/$entity"), **render(app, select, single=True)})


async def update_application(call: Call) -> Response:
    """PATCH by id, or by ``appId``/``uniqueName``: with ``Prefer: create-if-missing`` an
    upsert (201 and the object when it creates, 204 when it updates). The alternate key sees
    an application that is still replicating, so a retried upsert never duplicates."""
    upsert = "alt" in call.segments and call.segments["alt"] is not None and wants_upsert(call)
    object_id, key = _alternate(call)
    props = check_values(check_properties(await call.body(), APPLICATION_DEFAULTS, READ_ONLY))
    if object_id is None:
        if not upsert:
            authz.require(call, *authz.APPLICATION_READERS)
            raise not_found(key)
        authz.require(call, *authz.APPLICATION_CREATORS)
        if call.segments["alt"] == "appId":
            raise bad_request("An application can't be created with a caller-chosen appId.")
        app = _create(call, props, unique_name=key)
        return ok({"@odata.context": call.context("applications/$entity"), **render(app)}, 201)
    if not upsert and not call.directory.is_replicated(object_id):
        raise not_found(key)
    authz.require_write(call, object_id)
    _update(call, call.directory.applications[object_id], props)
    return no_content()


async def delete_application(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_WRITERS)
    app = resolve(call)
    authz.require_write(call, app["id"])
    call.platform.issued_secrets.update(call.directory.delete_application(app["id"]))
    return no_content()


# -- credentials ----------------------------------------------------------------------------------


async def _writable(call: Call) -> Json:
    authz.require(call, *authz.APPLICATION_WRITERS)
    app = resolve(call)
    authz.require_write(call, app["id"])
    return app


async def add_password(call: Call) -> Response:
    app = await _writable(call)
    body = await call.body()
    requested = body.get("passwordCredential") or {}
    if set(body) - {"passwordCredential"} or not isinstance(requested, dict):
        raise bad_request(f"Invalid property '{sorted(set(body) - {'passwordCredential'})[0]}'.")
    credential = credentials.add_password(call, app, requested)
    return ok({"@odata.context": call.context("microsoft.graph.passwordCredential"), **credential})


async def remove_password(call: Call) -> Response:
    app = await _writable(call)
    body = await call.body()
    if "keyId" not in body:
        raise bad_request("Required property 'keyId' is missing.")
    credentials.remove_password(call, app, body["keyId"])
    return no_content()


async def add_key(call: Call) -> Response:
    app = await _writable(call)
    body = await call.body()
    credentials.verify_proof(call, app, body.get("proof"))
    if body.get("passwordCredential"):
        raise bad_request("Adding a password with addKey is supported only for X509CertAndPassword keys.")
    key = credentials.new_key(call, body.get("keyCredential"))
    app.setdefault("keyCredentials", []).append(key)
    return ok({"@odata.context": call.context("microsoft.graph.keyCredential"), **key, "key": None})


async def remove_key(call: Call) -> Response:
    app = await _writable(call)
    body = await call.body()
    credentials.verify_proof(call, app, body.get("proof"))
    keys = app.get("keyCredentials", [])
    match = next((k for k in keys if k["keyId"] == body.get("keyId")), None)
    if match is None:
        raise bad_request(f"No key credential found with keyId '{body.get('keyId')}'.")
    keys.remove(match)
    return no_content()


# -- owners ----------------------------------------------------------------------------------------


def directory_object(call: Call, object_id: str) -> Json | None:
    """An owner or owned object as a ``directoryObject`` (with its ``@odata.type``)."""
    directory = call.directory
    if object_id in directory.applications:
        return view(ENTITY, directory.applications[object_id])
    if object_id in directory.service_principals:
        return view(SERVICE_PRINCIPAL, directory.service_principals[object_id])
    if object_id in directory.users:
        return {**USER_DEFAULTS, **directory.users[object_id]}
    return None


async def list_owners(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    app = resolve(call)
    owners = [o for o in (directory_object(call, i) for i in call.directory.owners.get(app["id"], [])) if o]
    return ok({"@odata.context": call.context("directoryObjects"), "value": owners})


def _reference(call: Call, body: Json) -> str:
    ref = body.get("@odata.id")
    if not isinstance(ref, str) or "/" not in ref:
        raise bad_request("Invalid object identifier '" + str(ref) + "'.")
    object_id = ref.rstrip("/").rsplit("/", 1)[-1]
    directory = call.directory
    if object_id not in directory.service_principals and object_id not in directory.users:
        raise not_found(object_id)
    if not directory.is_replicated(object_id):
        raise bad_request("Not a valid reference update.")
    return object_id


async def add_owner(call: Call) -> Response:
    authz.require(call, *authz.OWNER_WRITERS)
    app = resolve(call)
    owner = _reference(call, await call.body())
    if call.directory.owns(owner, app["id"]):
        raise bad_request(
            "One or more added object references already exist for the following modified properties: 'owners'."
        )
    call.directory.add_owner(app["id"], owner)
    return no_content()


async def remove_owner(call: Call) -> Response:
    authz.require(call, *authz.OWNER_WRITERS)
    app = resolve(call)
    owner = call.segments["owner"]
    if not call.directory.owns(owner, app["id"]):
        raise not_found(owner)
    call.directory.remove_owner(app["id"], owner)
    return no_content()


# -- federated identity credentials ----------------------------------------------------------------


def _federated(call: Call, app: Json) -> Json:
    seg = call.segments
    name = seg.get("fic_name")
    for fic in app.get("_federatedIdentityCredentials", []):
        if (name is not None and fic["name"] == name.replace("''", "'")) or fic["id"] == seg.get("fic"):
            return fic
    raise not_found(name or seg.get("fic") or "")


def _fic_body(call: Call, app: Json, fic: Json) -> Json:
    return {
        "@odata.context": call.context(f"applications('{app['id']}')/federatedIdentityCredentials/$entity"),
        **{**FEDERATED_DEFAULTS, **fic},
    }


async def list_federated(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    app = resolve(call)
    return ok(
        {
            "@odata.context": call.context(f"applications('{app['id']}')/federatedIdentityCredentials"),
            "value": [{**FEDERATED_DEFAULTS, **f} for f in app.get("_federatedIdentityCredentials", [])],
        }
    )


async def create_federated(call: Call) -> Response:
    app = await _writable(call)
    fic = credentials.federated(app, await call.body())
    app.setdefault("_federatedIdentityCredentials", []).append(fic)
    return ok(_fic_body(call, app, fic), 201)


async def get_federated(call: Call) -> Response:
    authz.require(call, *authz.APPLICATION_READERS)
    app = resolve(call)
    return ok(_fic_body(call, app, _federated(call, app)))


async def update_federated(call: Call) -> Response:
    app = await _writable(call)
    existing = _federated(call, app)
    existing.update(credentials.federated(app, await call.body(), existing))
    return no_content()


async def delete_federated(call: Call) -> Response:
    app = await _writable(call)
    app["_federatedIdentityCredentials"].remove(_federated(call, app))
    return no_content()
