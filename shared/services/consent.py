"""Admin consent of an application's service principal, converged to the request: one
AllPrincipals grant per resource with exactly the requested scopes, and exactly the requested
app role assignments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.errors import PermanentError, ReplicationPending
from shared.domain.records import ResourceAccess, ResourceApi
from shared.messages.replies import ConsentResult
from shared.services.dependencies import Dependencies
from shared.services.tasks import gather_all


@dataclass(frozen=True)
class ResolvedPermission:
    """A request's permissions on one API, with the API's service principal."""

    api: str
    resource: ResourceApi
    delegated: tuple[str, ...]
    application: tuple[str, ...]

    @property
    def scope_ids(self) -> tuple[str, ...]:
        return tuple(self.resource.scopes[name] for name in self.delegated)

    @property
    def role_ids(self) -> tuple[str, ...]:
        return tuple(self.resource.roles[name] for name in self.application)


def required_access(permissions: Sequence[ResolvedPermission]) -> tuple[ResourceAccess, ...]:
    """The application's requiredResourceAccess for ``permissions``."""
    return tuple(
        ResourceAccess(resource_app_id=p.resource.app_id, scope_ids=p.scope_ids, role_ids=p.role_ids)
        for p in permissions
    )


async def converge_consent(
    deps: Dependencies,
    sp_id: str,
    permissions: Sequence[ResolvedPermission],
    grant: bool,
    created: bool,
) -> list[ConsentResult]:
    """Make the service principal's consent follow the request: consent for anything the
    request no longer names is revoked, whatever ``grant`` says; ``grant`` adds consent for
    what it names. Returns the consent it holds afterwards, by API as the request named it."""
    if created and not grant:
        return []  # a new service principal holds no consent
    scopes, roles = await gather_all(
        _converge_delegated(deps, sp_id, permissions, grant=grant, fresh=created),
        _converge_application(deps, sp_id, permissions, grant=grant, fresh=created),
    )
    held = []
    for p in permissions:
        resource_id = p.resource.service_principal_id
        delegated = [name for name in p.delegated if name in scopes.get(resource_id, ())]
        application = [name for name in p.application if (resource_id, p.resource.roles[name]) in roles]
        if delegated or application:
            held.append(ConsentResult(api=p.api, delegated=delegated, application=application))
    return held


async def _converge_delegated(
    deps: Dependencies, sp_id: str, permissions: Sequence[ResolvedPermission], *, grant: bool, fresh: bool
) -> dict[str, frozenset[str]]:
    """One AllPrincipals grant per resource, whose scope is what the request asks (``grant``)
    or what it still asks of the scopes already granted; no grant for anything else. Returns
    the scopes held per resource afterwards."""
    consent = deps.consent
    existing = {} if fresh else {g.resource_id: g for g in await consent.grants_of(sp_id)}
    held: dict[str, frozenset[str]] = {}
    steps = []
    for p in permissions:
        resource_id, requested = p.resource.service_principal_id, frozenset(p.delegated)
        current = existing.get(resource_id)
        have = frozenset(current.scope.split()) if current is not None else frozenset()
        target = requested if grant else requested & have
        if target:
            held[resource_id] = target
        if current is None:
            if target:
                steps.append(_create_grant(deps, sp_id, resource_id, sorted(target)))
        elif not target:
            steps.append(consent.delete_grant(current.id))
        elif target != have:
            steps.append(consent.update_grant(current.id, sorted(target)))
    requested_resources = {p.resource.service_principal_id for p in permissions}
    steps += [consent.delete_grant(g.id) for rid, g in existing.items() if rid not in requested_resources]
    await gather_all(*steps)
    return held


async def _create_grant(deps: Dependencies, sp_id: str, resource_id: str, scopes: Sequence[str]) -> None:
    consent = deps.consent
    try:
        await consent.create_grant(sp_id, resource_id, scopes)
    except PermanentError as error:
        # 409: a concurrent copy of this request created it first; converge that one.
        if error.code != "Request_MultipleObjectsWithSameKeyValue":
            raise
        grant = next((g for g in await consent.grants_of(sp_id) if g.resource_id == resource_id), None)
        if grant is None:
            raise ReplicationPending(error.code, "the existing grant is not readable yet") from None
        if set(grant.scope.split()) != set(scopes):
            await consent.update_grant(grant.id, scopes)


async def _converge_application(
    deps: Dependencies, sp_id: str, permissions: Sequence[ResolvedPermission], *, grant: bool, fresh: bool
) -> frozenset[tuple[str, str]]:
    """App role assignments: what the request asks (``grant``) or what it still asks of those
    already assigned; every other assignment is revoked. Returns (resource, role) held."""
    consent = deps.consent
    existing = [] if fresh else await consent.role_assignments_of(sp_id)
    have = {(a.resource_id, a.app_role_id): a for a in existing}
    requested = {(p.resource.service_principal_id, role_id) for p in permissions for role_id in p.role_ids}
    wanted = requested if grant else requested & have.keys()
    steps = [consent.assign_role(sp_id, rid, role) for rid, role in wanted - have.keys()]
    steps += [consent.delete_role_assignment(sp_id, a.id) for key, a in have.items() if key not in wanted]
    await gather_all(*steps)
    return frozenset(wanted)
