"""Which application a request may touch: only one the service registered, and only when the
request names the application's owner reference (Graph's ``serviceManagementReference``).

The ticketing system fills the reference from the CMDB item the requester is authorised for;
the service enforces that a ticket for one item never converges, rotates or decommissions
another item's application (docs/security.md).
"""

from __future__ import annotations

from shared.domain.errors import PermanentError, PermissionDenied
from shared.domain.records import AppRecord
from shared.services.dependencies import Dependencies

NOT_MANAGED = "This application was not registered by this service; it is left untouched."
NOT_OWNER = (
    "This application belongs to another serviceManagementReference; a request may only change "
    "applications of its own."
)


def not_managed() -> PermissionDenied:
    """The refusal for an application the service did not register (or may not read)."""
    return PermissionDenied("not_managed", NOT_MANAGED, field="application.uniqueName")


def ensure_owned(app: AppRecord, service_tag: str, reference: str) -> None:
    """Raise ``PermissionDenied`` unless the service manages ``app`` and ``reference`` owns it.
    An application registered before owner references were recorded has none: it is refused
    too, until an administrator sets its reference."""
    if service_tag not in app.tags:
        raise not_managed()
    if app.service_management_reference != reference:
        raise PermissionDenied("not_owner", NOT_OWNER, field="application.serviceManagementReference")


async def own_service_principal(deps: Dependencies) -> str:
    """The service identity's service principal id, looked up once per ``Dependencies``."""
    if deps.service_principal_id is None:
        client_id = deps.settings.azure_client_id
        if not client_id:
            raise PermanentError("NoClientId", "AZURE_CLIENT_ID must name the service identity")
        deps.service_principal_id = await deps.applications.service_principal_id_of(client_id)
    return deps.service_principal_id


async def ensure_graph_lets_us_delete(deps: Dependencies, app: AppRecord) -> None:
    """Graph lets ``Application.ReadWrite.OwnedBy`` delete only what the service owns: check it
    before anything is disabled or deleted, so that a decommission Graph would refuse halfway
    changes nothing."""
    if await own_service_principal(deps) not in await deps.applications.owner_ids(app.object_id):
        raise PermissionDenied(
            "not_an_owner",
            "The service is no longer an owner of this application, so Graph would refuse to delete "
            "it; nothing was changed. An administrator can add the service back as an owner.",
            field="application.uniqueName",
        )
