"""Decommission: remove the application's data roles, delete the application and its service
principal, and disable its stored secret.

A redelivered decommission answers like the first delivery: before deleting anything it
records itself on the stored versions (shared.domain.stored), so a delivery that finds the
application gone can still say what this request removed.
"""

from __future__ import annotations

from shared.domain import stored
from shared.domain.errors import PermissionDenied
from shared.domain.records import StoredVersion
from shared.messages.replies import RegistrationReply, RemovedResources, ReplyApplication
from shared.messages.requests import DecommissionRequest
from shared.services.certificates import disable_versions
from shared.services.data_access import data_roles_of, remove_data_access
from shared.services.dependencies import Dependencies
from shared.services.ownership import NOT_OWNER, ensure_graph_lets_us_delete, ensure_owned
from shared.services.tasks import gather_all


async def decommission(deps: Dependencies, request: DecommissionRequest) -> RegistrationReply:
    """The reply to a decommission request. Raises ``PermissionDenied`` (``not_managed``,
    ``not_owner``) for an application the service did not register or the request's
    reference does not own, before anything changes; a ``TransientError`` for redelivery."""
    graph, vault, settings = deps.applications, deps.vault, deps.settings
    unique_name, request_id = request.application.unique_name, request.request_id
    reference = request.application.service_management_reference
    name = stored.secret_name(unique_name)
    app, versions = await gather_all(graph.get_application_by_unique_name(unique_name), vault.versions(name))
    mine = [v for v in versions if v.tags.get(stored.DECOMMISSIONED_BY) == request_id]
    if mine and (app is None or app.object_id != mine[0].tags.get(stored.OBJECT_ID)):
        # An earlier delivery of this request removed its application; one found now is a
        # later registration of the same name, which this ticket never targeted.
        record = mine[0].tags
        if record.get(stored.OWNER) != reference:
            raise PermissionDenied("not_owner", NOT_OWNER, field="application.serviceManagementReference")
        certificates = await disable_versions(deps, unique_name, record.get(stored.APP_ID, ""))
        if app is None:
            await gather_all(*(vault.disable(name, v.version) for v in mine if v.enabled))
        application = ReplyApplication(
            unique_name=unique_name,
            display_name=record.get(stored.DISPLAY_NAME),
            client_id=record.get(stored.APP_ID, ""),
            object_id=record.get(stored.OBJECT_ID, ""),
            tenant_id=settings.azure_tenant_id,
        )
        return _decommissioned(
            request,
            application,
            True,
            True,
            _values(mine),
            stored.removed_role_assignments(record),
            certificates,
        )
    if app is None:
        # Nothing of this name to remove (never registered, or removed by someone else).
        await gather_all(*(vault.disable(name, v.version) for v in versions if v.enabled))
        return _decommissioned(request, None, False, False, _values(versions), 0)
    ensure_owned(app, settings.service_tag, reference)
    _, assignments = await gather_all(ensure_graph_lets_us_delete(deps, app), data_roles_of(deps, app))
    # The certificates' keys can no longer sign once their versions are disabled; disabling
    # them first also answers a redelivery with the same count.
    certificates = await disable_versions(deps, unique_name, app.app_id)
    # A redelivery after some were removed answers with the first delivery's count.
    removed_roles = max(
        len(assignments), max((stored.removed_role_assignments(v.tags) for v in mine), default=0)
    )
    # Disable the stored values first, recording this request on them, so that a redelivery
    # after the deletion still knows what this request removed; an application without a
    # stored value gets a record version of its own.
    record = stored.decommission_record(
        {}, request_id, app.object_id, app.app_id, app.display_name, reference, removed_roles
    )
    if not versions:
        await vault.write_record(name, {**record, stored.KIND: stored.RECORD})
    await gather_all(
        *(
            vault.disable(name, v.version, {**v.tags, **record})
            for v in versions
            if v.enabled or v.tags.get(stored.DECOMMISSIONED_BY) != request_id
        )
    )
    # The data roles go before the service principal: a deleted principal's assignments
    # would stay behind as "Identity not found".
    await remove_data_access(deps, assignments)
    sp_removed = await graph.delete_service_principal_of(app.app_id)
    app_removed = await graph.delete_application(app.object_id)
    application = ReplyApplication(
        unique_name=unique_name,
        display_name=app.display_name,
        client_id=app.app_id,
        object_id=app.object_id,
        tenant_id=settings.azure_tenant_id,
    )
    return _decommissioned(
        request, application, app_removed, sp_removed, _values(versions), removed_roles, certificates
    )


def _values(versions: list[StoredVersion]) -> int:
    """How many versions held a credential's value (record versions never did)."""
    return sum(1 for v in versions if not stored.is_record(v.tags))


def _decommissioned(
    request: DecommissionRequest,
    application: ReplyApplication | None,
    app_removed: bool,
    sp_removed: bool,
    versions: int,
    role_assignments: int,
    certificate_versions: int = 0,
) -> RegistrationReply:
    return RegistrationReply(
        request_id=request.request_id,
        requested_by=request.requested_by,
        status="succeeded",
        application=application,
        removed=RemovedResources(
            application=app_removed,
            service_principal=sp_removed,
            key_vault_secret_versions_disabled=versions,
            role_assignments=role_assignments,
            key_vault_certificate_versions_disabled=certificate_versions,
        ),
    )
