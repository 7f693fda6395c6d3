"""Data access: the Azure RBAC data roles an application's service principal holds on the
catalog's FHIR and DICOM services, converged to the request (shared.domain.data_access).

Converge makes the roles the request names and removes the ones the service assigned earlier
that it no longer names, leaving anyone else's assignments alone; decommission and the undo of
a refused registration remove the service's assignments before the service principal goes.
"""

from __future__ import annotations

import itertools

from shared.domain.data_access import (
    Assignment,
    DataAccessPolicy,
    Existing,
    desired_assignments,
    plan_assignments,
    services_own,
)
from shared.domain.errors import NotFound
from shared.domain.records import AppRecord
from shared.messages.replies import DataAccessResult
from shared.messages.requests import RegisterRequest
from shared.services.dependencies import Dependencies
from shared.services.tasks import gather_all


async def converge_data_access(
    deps: Dependencies, request: RegisterRequest, sp_id: str, created: bool
) -> list[DataAccessResult]:
    """Make the service principal's data roles follow ``request.dataAccess``; returns, for
    each entry, where the service is, what to ask a token for and the roles held. A service
    principal this delivery created holds none yet, so nothing is listed for it."""
    policy = deps.settings.data_access_policy
    wanted = desired_assignments(request, policy, sp_id)
    existing = [] if created else await assignments_of(deps, policy, sp_id)
    to_make, to_remove = plan_assignments(wanted, existing, policy.services.values())
    await gather_all(
        *(deps.role_assignments.assign(a) for a in to_make),
        *(deps.role_assignments.remove(a) for a in to_remove),
    )
    results = []
    for entry in request.data_access:
        service = policy.services[entry.service]
        results.append(
            DataAccessResult(
                service=entry.service,
                url=service.url,
                scope=service.token_scope,
                roles=[a.role.name for a in wanted if a.service is service],
            )
        )
    return results


async def assignments_of(deps: Dependencies, policy: DataAccessPolicy, sp_id: str) -> list[Existing]:
    """The principal's assignments at each catalog service, listed side by side."""
    found = await gather_all(
        *(deps.role_assignments.assigned(s.resource_id, sp_id) for s in policy.services.values())
    )
    return list(itertools.chain.from_iterable(found))


async def data_roles_of(deps: Dependencies, app: AppRecord) -> list[Assignment]:
    """The data-role assignments the service made for ``app``'s service principal (none if it
    has no service principal, or the catalog is empty). Reads only."""
    policy = deps.settings.data_access_policy
    if not policy.services:
        return []
    try:
        sp_id = await deps.applications.service_principal_id_of(app.app_id)
    except NotFound:
        return []
    return services_own(await assignments_of(deps, policy, sp_id), policy.services.values())


async def remove_data_access(deps: Dependencies, assignments: list[Assignment]) -> None:
    """Remove the service's ``assignments`` (from ``made_by_service``)."""
    await gather_all(*(deps.role_assignments.remove(a) for a in assignments))
