"""Federated identity credentials, converged to the request by name (shared.domain.federated).

Two halves, on either side of the request's first write: ``plan_federated_credentials`` reads
the existing application's credentials and plans (a conflict with a credential someone made by
hand, or more than 20 in all, rejects the request before anything is written);
``converge_federated`` sends the plan's writes one at a time, in its order, after the
application's upsert. Every write is idempotent under redelivery: a removal of a credential
already gone succeeds, an update sets the same values again, and a create whose name Graph
already holds reads that credential back instead of making a second.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from shared.domain import stored
from shared.domain.errors import PermanentError
from shared.domain.federated import (
    Create,
    FederatedCredential,
    FederatedPlan,
    Remove,
    Update,
    desired_federated,
    plan_federated,
)
from shared.domain.records import AppRecord
from shared.messages.base import RequestRejected
from shared.messages.replies import FederatedCredentialResult
from shared.messages.requests import RegisterRequest
from shared.services.dependencies import Dependencies

log = logging.getLogger(__name__)


async def plan_federated_credentials(
    deps: Dependencies,
    request: RegisterRequest,
    existing: AppRecord | None,
    current: list[FederatedCredential] | None = None,
) -> FederatedPlan:
    """Before the first write: the plan for ``existing``'s federated credentials (None: a new
    application, whose credentials the request alone decides), ``current`` if they were read
    already. Reads only; raises ``RequestRejected`` naming each problem."""
    if current is None:
        # dependent: the application was just read, so a 404 can only be replication lag.
        current = (
            []
            if existing is None
            else await deps.applications.federated_credentials(existing.object_id, dependent=True)
        )
    plan = plan_federated(desired_federated(request), current)
    if plan.problems:
        raise RequestRejected(list(plan.problems), request.request_id)
    return plan


async def converge_federated(
    deps: Dependencies,
    request: RegisterRequest,
    app: AppRecord,
    created: bool,
    plan: FederatedPlan,
    planned_for: AppRecord | None,
) -> list[FederatedCredentialResult]:
    """Execute ``plan`` (made before the first write for ``planned_for``) on ``app``; returns
    the request's credentials as the application now holds them. When the application is not
    the one the plan was made for (the upsert found one although none existed when it was read,
    or made one although one was read), it is planned again.

    Raises ``PermanentError`` for a conflict that appeared after the plan was made,
    ``TransientError``."""
    applications = deps.applications
    if created and planned_for is not None:  # deleted and made again since it was read: it holds none
        plan = plan_federated(desired_federated(request), [])
    elif not created and (planned_for is None or planned_for.object_id != app.object_id):
        current = await applications.federated_credentials(app.object_id, dependent=True)
        plan = plan_federated(desired_federated(request), current)
        if plan.problems:
            problem = plan.problems[0]
            raise PermanentError(problem.code, problem.message, field=problem.field)
    for write in plan.writes:
        if isinstance(write, Remove):
            assert write.credential.id is not None  # read from Graph
            await applications.delete_federated_credential(app.object_id, write.credential.id)
        elif isinstance(write, Update):
            await applications.update_federated_credential(app.object_id, write.credential)
        elif isinstance(write, Create):
            await _create(deps, app, write.credential)
    if plan.writes:
        log.info(
            "federated.converged",
            extra={
                "requestId": request.request_id,
                "uniqueName": request.unique_name,
                "writes": [f"{type(w).__name__.lower()} {w.credential.name}" for w in plan.writes],
            },
        )
    return [
        FederatedCredentialResult(
            name=c.name, issuer=c.issuer, subject=c.subject, audiences=list(c.audiences)
        )
        for c in plan.wanted
    ]


async def _create(deps: Dependencies, app: AppRecord, wanted: FederatedCredential) -> None:
    """Create ``wanted``; if Graph already holds its name (an earlier attempt's create whose
    answer was lost), bring that one to ``wanted`` when it is the service's."""
    held = await deps.applications.create_federated_credential(app.object_id, wanted)
    if not stored.is_service_federated(held.description):
        raise PermanentError(
            "conflict",
            "A federated credential of this name that the service did not make appeared on the application "
            "while the request ran; it is left untouched.",
            field="federatedCredentials",
        )
    if (held.issuer, held.subject, held.description, held.audiences) != (
        wanted.issuer,
        wanted.subject,
        wanted.description,
        wanted.audiences,
    ):
        await deps.applications.update_federated_credential(
            app.object_id, replace(wanted, id=held.id, name=held.name)
        )
