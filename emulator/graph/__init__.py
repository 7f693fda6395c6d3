"""Microsoft Graph v1.0, as much of it as registering Entra applications needs.

One route catches ``/v1.0/...``; it authenticates the caller (401 as Graph answers it) and
dispatches on the path's segments, which include OData alternate keys such as
``applications(uniqueName='x')``. Unknown segments answer Graph's 400 "Resource not found for
the segment", a known path with another method 405.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.errors import PlatformError
from emulator.graph import applications, grants, service_principals, users
from emulator.graph.common import Call, Handler
from emulator.identity import GRAPH_AUDIENCES

if TYPE_CHECKING:
    from emulator.platform import Platform

_ID = r"(?P<id>[^/()']+)"
_ALT_VALUE = r"'(?P<alt_value>(?:[^']|'')*)'"
APP = rf"/applications(?:/{_ID}|\((?P<alt>appId|uniqueName)={_ALT_VALUE}\))"
SP = rf"/servicePrincipals(?:/{_ID}|\((?P<alt>appId)={_ALT_VALUE}\))"
_FIC = r"/federatedIdentityCredentials(?:/(?P<fic>[^/()']+)|\(name='(?P<fic_name>(?:[^']|'')*)'\))"
_ROLE = r"/(?P<rel>appRoleAssignedTo|appRoleAssignments)"

_TABLE: list[tuple[str, dict[str, Handler]]] = [
    ("/applications", {"GET": applications.list_applications, "POST": applications.create_application}),
    (
        APP,
        {
            "GET": applications.get_application,
            "PATCH": applications.update_application,
            "DELETE": applications.delete_application,
        },
    ),
    (APP + "/addPassword", {"POST": applications.add_password}),
    (APP + "/removePassword", {"POST": applications.remove_password}),
    (APP + "/addKey", {"POST": applications.add_key}),
    (APP + "/removeKey", {"POST": applications.remove_key}),
    (APP + "/owners", {"GET": applications.list_owners}),
    (APP + r"/owners/\$ref", {"POST": applications.add_owner}),
    (APP + r"/owners/(?P<owner>[^/]+)/\$ref", {"DELETE": applications.remove_owner}),
    (
        APP + "/federatedIdentityCredentials",
        {"GET": applications.list_federated, "POST": applications.create_federated},
    ),
    (
        APP + _FIC,
        {
            "GET": applications.get_federated,
            "PATCH": applications.update_federated,
            "DELETE": applications.delete_federated,
        },
    ),
    (
        "/servicePrincipals",
        {
            "GET": service_principals.list_service_principals,
            "POST": service_principals.create_service_principal,
        },
    ),
    (
        SP,
        {
            "GET": service_principals.get_service_principal,
            "PATCH": service_principals.update_service_principal,
            "DELETE": service_principals.delete_service_principal,
        },
    ),
    (SP + "/owners", {"GET": service_principals.list_owners}),
    (
        SP + r"/ownedObjects(?:/(?:microsoft\.)?(?P<cast>graph\.application|graph\.servicePrincipal))?",
        {"GET": service_principals.owned_objects},
    ),
    (SP + _ROLE, {"GET": service_principals.list_assignments, "POST": service_principals.create_assignment}),
    (
        SP + _ROLE + r"/(?P<assignment>[^/]+)",
        {"GET": service_principals.get_assignment, "DELETE": service_principals.delete_assignment},
    ),
    (SP + "/oauth2PermissionGrants", {"GET": grants.list_grants}),
    ("/oauth2PermissionGrants", {"GET": grants.list_grants, "POST": grants.create_grant}),
    (
        r"/oauth2PermissionGrants/(?P<grant>[^/]+)",
        {"GET": grants.get_grant, "PATCH": grants.update_grant, "DELETE": grants.delete_grant},
    ),
    ("/users", {"GET": users.list_users}),
    (r"/users/(?P<user>[^/]+)", {"GET": users.get_user}),
]
ROUTES = [(re.compile(pattern + "/?"), handlers) for pattern, handlers in _TABLE]
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def routes(platform: Platform) -> list[BaseRoute]:
    async def endpoint(request: Request) -> Response:
        principal = platform.identity.authenticate(request, GRAPH_AUDIENCES)
        path = request.url.path.removeprefix("/v1.0")
        for pattern, handlers in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = handlers.get(request.method)
            if handler is None:
                raise PlatformError(
                    405, "Request_BadRequest", f"The HTTP method '{request.method}' is not allowed."
                )
            segments = {k: v for k, v in match.groupdict().items() if v is not None}
            return await handler(Call(platform, request, principal, segments))
        segment = path.strip("/").split("/")[-1] or path
        raise PlatformError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    return [Route("/v1.0/{path:path}", endpoint, methods=METHODS)]
