"""Decommission: delete the application and its service principal, and disable its stored secret.

A redelivered decommission answers like the first delivery: before deleting anything it
records itself on the stored versions (shared.domain.stored), so a delivery that finds the
application gone can still say what this request removed.
"""

from __future__ import annotations

from shared.domain import stored
from shared.domain.errors import PermissionDenied
from shared.messages.replies import RegistrationReply, RemovedResources, ReplyApplication
from shared.messages.requests import DecommissionRequest
from shared.services.dependencies import Dependencies
from shared.services.tasks import gather_all

NOT_MANAGED = "This application was not registered by this service; it is left untouched."


def not_managed() -> PermissionDenied:
    """The refusal for an application the service did not register."""
    return PermissionDenied("not_managed", NOT_MANAGED, field="application.uniqueName")


async def decommission(deps: Dependencies, request: DecommissionRequest) -> RegistrationReply:
    """The reply to a decommission request. Raises ``PermissionDenied`` (``not_managed``) for an
    application the service did not register, a ``TransientError`` for redelivery."""
    graph, vault, settings = deps.applications, deps.vault, deps.settings
    unique_name = request.application.unique_name
    app = await graph.get_application_by_unique_name(unique_name)
    if app is not None and settings.service_tag not in app.tags:
        raise not_managed()
    name = stored.secret_name(unique_name)
    versions = await vault.versions(name)
    request_id = request.request_id
    if app is None:
        # Gone: deleted by an earlier delivery of this request if that one left its record
        # on the stored versions (below), else there was nothing to remove.
        record = next((v.tags for v in versions if v.tags.get(stored.DECOMMISSIONED_BY) == request_id), None)
        removed = record is not None
        application = None
        if record is not None:
            application = ReplyApplication(
                unique_name=unique_name,
                display_name=record.get(stored.DISPLAY_NAME),
                client_id=record.get(stored.APP_ID, ""),
                object_id=record.get(stored.OBJECT_ID, ""),
                tenant_id=settings.azure_tenant_id,
            )
        await gather_all(*(vault.disable(name, v.version) for v in versions if v.enabled))
        return _decommissioned(request_id, application, removed, removed, len(versions))
    # Disable the stored values first, recording this request on them, so that a redelivery
    # after the deletion still knows what this request removed.
    await gather_all(
        *(
            vault.disable(
                name,
                v.version,
                stored.decommission_record(v.tags, request_id, app.object_id, app.display_name),
            )
            for v in versions
            if v.enabled or v.tags.get(stored.DECOMMISSIONED_BY) != request_id
        )
    )
    sp_removed = await graph.delete_service_principal_of(app.app_id)
    app_removed = await graph.delete_application(app.object_id)
    application = ReplyApplication(
        unique_name=unique_name,
        display_name=app.display_name,
        client_id=app.app_id,
        object_id=app.object_id,
        tenant_id=settings.azure_tenant_id,
    )
    return _decommissioned(request_id, application, app_removed, sp_removed, len(versions))


def _decommissioned(
    request_id: str, application: ReplyApplication | None, app_removed: bool, sp_removed: bool, versions: int
) -> RegistrationReply:
    return RegistrationReply(
        request_id=request_id,
        status="succeeded",
        application=application,
        removed=RemovedResources(
            application=app_removed, service_principal=sp_removed, key_vault_secret_versions_disabled=versions
        ),
    )
