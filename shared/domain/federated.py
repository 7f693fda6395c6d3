"""Federated identity credentials: the issuer policy, which credentials the service may change,
and the writes that bring an application's credentials to a request, in an order Graph
accepts. Pure: the workflow (shared.services.federated) reads, calls ``plan_federated``, and
executes the plan.

Graph's rules (learn.microsoft.com/graph/api/resources/federatedidentitycredential;
entra/workload-id/workload-identity-federation-considerations): ``name`` is the credential's
alternate key (case-insensitive) and immutable; ``issuer`` + ``subject`` are unique on the
application; at most 20 per application; the one audience is ``api://AzureADTokenExchange``.

**Whose.** Federated credentials carry no tags: the service marks its own in the description
(shared.domain.stored). Converge by name updates and removes only marked ones; an unmarked
credential with a requested name or issuer+subject is a conflict, and the limit of 20 counts
the unmarked ones, all decided before the request's first write.

**Order.** Removals first (they free names, issuer+subject pairs and room), then updates
(``name`` stays; issuer, subject, description change), each only once no other credential
holds its new pair (a swap of pairs moves one credential to a temporary subject first), then
creations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from shared.domain import stored
from shared.messages.base import FieldError
from shared.messages.requests import MAX_FEDERATED_CREDENTIALS, RegisterRequest

AUDIENCE = "api://AzureADTokenExchange"
# A subject no token carries: where a credential waits while another takes its pair.
_PARKING = "urn:entra-app-registration-service:moving:"


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential as Graph holds it, or as a request wants it (no id yet)."""

    name: str
    issuer: str
    subject: str
    description: str | None
    audiences: tuple[str, ...] = (AUDIENCE,)
    id: str | None = None

    @property
    def pair(self) -> tuple[str, str]:
        return (self.issuer, self.subject)


@dataclass(frozen=True)
class Remove:
    credential: FederatedCredential


@dataclass(frozen=True)
class Update:
    """Bring the credential with ``credential.id`` to ``credential``'s issuer, subject,
    description and audience (its name never changes)."""

    credential: FederatedCredential


@dataclass(frozen=True)
class Create:
    credential: FederatedCredential


Write = Remove | Update | Create


@dataclass(frozen=True)
class FederatedPlan:
    """The writes, in the order to send them; ``wanted`` is what the application holds of the
    request's credentials afterwards, in the request's order; ``problems`` refuse the request
    (then there are no writes)."""

    writes: tuple[Write, ...] = ()
    wanted: tuple[FederatedCredential, ...] = ()
    problems: tuple[FieldError, ...] = ()


def federated_problems(request: RegisterRequest, allowed_issuers: Sequence[str]) -> list[FieldError]:
    """What the issuer policy (``FEDERATED_ISSUERS``) refuses in ``request.federatedCredentials``,
    from the request alone. Issuers compare exactly, as Entra compares a token's ``iss``."""
    allowed = ", ".join(allowed_issuers) or "none configured"
    return [
        FieldError(
            field=f"federatedCredentials[{i}].issuer",
            code="issuer_not_allowed",
            message=f"The service's policy (FEDERATED_ISSUERS) does not trust this issuer; it trusts: {allowed}.",
        )
        for i, entry in enumerate(request.federated_credentials)
        if entry.issuer not in allowed_issuers
    ]


def desired_federated(request: RegisterRequest) -> tuple[FederatedCredential, ...]:
    """The credentials ``request`` asks for, as the service stores them (marked)."""
    return tuple(
        FederatedCredential(
            name=entry.name,
            issuer=entry.issuer,
            subject=entry.subject,
            description=stored.federated_description(entry.description),
        )
        for entry in request.federated_credentials
    )


def plan_federated(
    requested: Sequence[FederatedCredential], existing: Sequence[FederatedCredential]
) -> FederatedPlan:
    """The writes that make ``existing`` (all of the application's credentials) hold
    ``requested`` by name, or the problems that forbid it (see the module docstring)."""
    mine = [c for c in existing if stored.is_service_federated(c.description)]
    others = [c for c in existing if not stored.is_service_federated(c.description)]
    problems = _conflicts(requested, others)
    if problems:
        return FederatedPlan(problems=tuple(problems))

    by_name = {c.name.casefold(): c for c in mine}
    requested_names = {c.name.casefold() for c in requested}
    removals = [Remove(c) for c in mine if c.name.casefold() not in requested_names]
    updates: list[Update] = []
    creations: list[Create] = []
    wanted: list[FederatedCredential] = []
    for want in requested:
        have = by_name.get(want.name.casefold())
        if have is None:
            creations.append(Create(want))
            wanted.append(want)
            continue
        target = replace(want, name=have.name, id=have.id)  # Graph's spelling of the name stays
        if (have.issuer, have.subject, have.description, have.audiences) != (
            target.issuer,
            target.subject,
            target.description,
            target.audiences,
        ):
            updates.append(Update(target))
        wanted.append(target)
    kept = [c for c in mine if c.name.casefold() in requested_names]
    return FederatedPlan(writes=(*removals, *_ordered(updates, kept), *creations), wanted=tuple(wanted))


def _conflicts(
    requested: Sequence[FederatedCredential], others: Sequence[FederatedCredential]
) -> list[FieldError]:
    names = {c.name.casefold() for c in others}
    pairs = {c.pair for c in others}
    problems: list[FieldError] = []
    for i, want in enumerate(requested):
        if want.name.casefold() in names:
            problems.append(
                FieldError(
                    field=f"federatedCredentials[{i}].name",
                    code="conflict",
                    message="The application has a federated credential of this name that the service did not "
                    "make; it is left untouched. Choose another name, or have it removed by hand.",
                )
            )
        elif want.pair in pairs:
            problems.append(
                FieldError(
                    field=f"federatedCredentials[{i}].subject",
                    code="conflict",
                    message="A federated credential the service did not make already trusts this issuer and "
                    "subject, and Graph allows each pair once per application.",
                )
            )
    if len(others) + len(requested) > MAX_FEDERATED_CREDENTIALS:
        problems.append(
            FieldError(
                field="federatedCredentials",
                code="too_many",
                message=f"An application holds at most {MAX_FEDERATED_CREDENTIALS} federated credentials, and "
                f"{len(others)} of this application's were not made by the service; request at most "
                f"{max(MAX_FEDERATED_CREDENTIALS - len(others), 0)}.",
            )
        )
    return problems


def _ordered(updates: Sequence[Update], kept: Sequence[FederatedCredential]) -> list[Update]:
    """``updates`` in an order where none takes a pair another credential still holds: each
    goes once its new pair is free; when none can (pairs swapped in a cycle), the first waits
    on a parking subject. Otherwise in the request's order."""
    holder = {c.pair: c.id for c in kept}
    current = {c.id: c for c in kept}
    pending = list(updates)
    ordered: list[Update] = []
    while pending:
        ready = next(
            (u for u in pending if holder.get(u.credential.pair, u.credential.id) == u.credential.id), None
        )
        if ready is None:
            first = pending[0].credential
            step = Update(replace(current[first.id], subject=f"{_PARKING}{first.id}"))
        else:
            pending.remove(ready)
            step = ready
        moving = step.credential
        del holder[current[moving.id].pair]
        holder[moving.pair] = moving.id
        current[moving.id] = moving
        ordered.append(step)
    return ordered
