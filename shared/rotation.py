"""Credential rotation: the pure planner, the scheduler's sweep, and one application's rotation.

"Fetch, build a plan, execute", three times over the same pure function, ``plan_rotation``:

- the scheduler (``schedule``) lists what the service identity owns, page by page, plus one
  listing of the vault's secrets, and runs the planner over that partial view (every managed
  credential assumed stored) only to decide which applications need a message;
- the worker (``rotate``) re-reads one application and its Key Vault versions, plans again on
  the whole truth, carries the plan out, re-reads and re-plans until nothing is left (at most
  ``MAX_PASSES`` times): every step is safe to repeat, so a redelivery or a crash after any
  call converges on the state of one clean run;
- ``rotate_on_request`` is the worker forced to issue a new credential for the registration
  queue's ``"action": "rotate"``.

Invariants kept at every moment (see docs/rotation.md): a managed application keeps a valid
credential whose value is in Key Vault, the unversioned secret resolves to a valid credential
(the new credential is added and stored before anything is removed or disabled, and the
latest version is never disabled), no credential without the service's marker is removed,
and no application is pushed past ``MAX_CREDENTIALS``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared import credentials as creds
from shared.contracts import (
    FieldError,
    RegistrationReply,
    ReplyApplication,
    ReplyCredential,
    RotateRequest,
)
from shared.durations import parse_duration
from shared.errors import NotFound, PermanentError, PermissionDenied, PolicyViolation, TransientError
from shared.graph import AppRecord, PasswordInfo
from shared.keyvault import StoredVersion, secret_name
from shared.registration import Delivery, Workflow
from shared.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION: Literal[1] = 1
MAX_CREDENTIALS = 3
MAX_PASSES = 3
LIFETIME_TAG = "credential-lifetime:"
# What the planner needs of each owned application, nothing more.
PLAN_SELECT = ("id", "appId", "uniqueName", "tags", "passwordCredentials")

Action = Literal["rotate", "retire", "cleanup", "report"]


# -- the plan (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The settings the planner reads, as plain durations."""

    window: dt.timedelta
    grace: dt.timedelta
    safety_age: dt.timedelta
    max_credentials: int = MAX_CREDENTIALS

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            window=settings.rotation_window.total_lower_bound(),
            grace=settings.rotation_grace_period.total_lower_bound(),
            safety_age=settings.rotation_safety_age.total_lower_bound(),
        )


@dataclass(frozen=True)
class Step:
    """One thing to do (or to report). ``key_id`` names a credential; ``versions`` are the Key
    Vault versions to disable (those of a removed credential, or a dangling one)."""

    action: Action
    reason: str
    key_id: str | None = None
    versions: tuple[StoredVersion, ...] = ()


@dataclass(frozen=True)
class Plan:
    """In this order: make room (removals), rotate (add + store), then retire, clean up, report."""

    before: tuple[Step, ...] = ()
    rotate: Step | None = None
    after: tuple[Step, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        return (*self.before, *((self.rotate,) if self.rotate else ()), *self.after)

    @property
    def changes(self) -> bool:
        return any(step.action != "report" for step in self.steps)


def rotate_at(info: PasswordInfo, window: dt.timedelta) -> dt.datetime:
    """When a credential is due for rotation: ``window`` before its end, but never in the first
    half of its life (a secret shorter than twice the window would otherwise rotate daily)."""
    return max(info.end - window, info.start + (info.end - info.start) / 2)


def _newer(credential: creds.Credential) -> tuple[dt.datetime, dt.datetime]:
    return credential.info.start, credential.info.end


def _stored_since(credential: creds.Credential) -> dt.datetime:
    """Since when consumers can read this credential: its start, or its version's creation if later."""
    created = credential.stored.created_on if credential.stored is not None else None
    return max(credential.info.start, created) if created is not None else credential.info.start


def plan_rotation(
    passwords: Sequence[PasswordInfo],
    versions: Sequence[StoredVersion],
    latest: StoredVersion | None,
    *,
    now: dt.datetime,
    policy: Policy,
    expects_secret: bool = True,
    force: bool = False,
    may_rotate: bool = True,
    origin: str | None = None,
    redelivered: bool = False,
) -> Plan:
    """What to do about one application's client secrets, given everything known about them.

    ``latest`` is the version the unversioned secret resolves to (None: missing or disabled).
    ``expects_secret``: the app was registered with a secret (a public client has none, and
    gets none). ``force``: issue a new credential unless one from ``origin`` is already stored
    (rotate on request). ``redelivered`` with ``origin``: an unstored credential of this origin
    is an earlier attempt's orphan and goes at once, not after the safety age.
    """
    credentials = creds.join(passwords, versions)
    by_key = {c.key_id: c for c in credentials}
    managed = [c for c in credentials if c.managed]
    stored_valid = [c for c in managed if c.stored is not None and c.valid_at(now)]
    newest = max(stored_valid, key=_newer, default=None)
    latest_credential = by_key.get(latest.key_id or "") if latest is not None and latest.enabled else None
    latest_ok = latest_credential is not None and latest_credential in stored_valid
    # What consumers read now: never removed, and its version never disabled.
    keeper = latest_credential if latest_ok else newest
    latest_version = latest.version if latest is not None else None

    def disable_of(credential: creds.Credential) -> tuple[StoredVersion, ...]:
        return tuple(
            v for v in versions if v.enabled and v.key_id == credential.key_id and v.version != latest_version
        )

    def holds_latest(credential: creds.Credential) -> bool:
        return latest_version is not None and any(
            v.version == latest_version for v in versions if v.key_id == credential.key_id
        )

    reports = [Step("report", "unmanaged-credential", c.key_id) for c in credentials if not c.managed]

    # Clean up and retire: only the service's own credentials, never the keeper, never the one
    # the unversioned secret resolves to.
    removable: list[Step] = []
    for c in managed:
        if c is keeper or holds_latest(c):
            continue
        if c.stored is None:
            own_orphan = redelivered and origin is not None and c.origin == origin
            if own_orphan or now - c.info.start >= policy.safety_age:
                removable.append(Step("cleanup", "not-stored", c.key_id))
            continue
        newer = [n for n in stored_valid if n is not c and _newer(n) > _newer(c)]
        if not newer:
            continue
        if not c.valid_at(now):
            removable.append(Step("retire", "expired", c.key_id, disable_of(c)))
        elif any(now - _stored_since(n) >= policy.grace for n in newer):
            removable.append(Step("retire", "superseded", c.key_id, disable_of(c)))

    # Versions whose credential is gone open nothing; the latest stays until a newer one is
    # stored, and a version younger than the safety age may belong to a credential that Graph
    # does not show yet (or to a concurrent worker between its two calls).
    dangling = [
        Step("cleanup", "dangling-version", v.key_id, (v,))
        for v in versions
        if v.enabled
        and v.key_id
        and v.key_id not in by_key
        and v.version != latest_version
        and (v.created_on is None or now - v.created_on >= policy.safety_age)
    ]

    rotate = None
    if may_rotate:
        rotate = _rotation_reason(
            managed,
            stored_valid,
            newest,
            latest,
            latest_ok,
            by_key,
            now,
            policy,
            expects_secret,
            force,
            origin,
        )

    before: list[Step] = []
    if rotate is not None:
        # Room for the new credential: what goes anyway first, then the oldest of the
        # service's others; never the keeper. Without room, report instead of exceeding.
        excess = len(credentials) + 1 - policy.max_credentials
        order = {"not-stored": 0, "expired": 1, "superseded": 2}
        for step in sorted(removable, key=lambda s: order.get(s.reason, 3)):
            if excess <= 0:
                break
            before.append(step)
            excess -= 1
        chosen = {s.key_id for s in before}
        others = sorted(
            (c for c in managed if c is not keeper and c.key_id not in chosen and not holds_latest(c)),
            key=lambda c: c.info.end,
        )
        for c in others:
            if excess <= 0:
                break
            before.append(Step("retire", "make-room", c.key_id, disable_of(c)))
            excess -= 1
        if excess > 0:
            before = []
            reports.append(Step("report", "credential-limit"))
            rotate = None
    moved = {s.key_id for s in before}
    after = [s for s in removable if s.key_id not in moved] + dangling + reports
    return Plan(before=tuple(before), rotate=rotate, after=tuple(after))


def _rotation_reason(
    managed: Sequence[creds.Credential],
    stored_valid: Sequence[creds.Credential],
    newest: creds.Credential | None,
    latest: StoredVersion | None,
    latest_ok: bool,
    by_key: dict[str, creds.Credential],
    now: dt.datetime,
    policy: Policy,
    expects_secret: bool,
    force: bool,
    origin: str | None,
) -> Step | None:
    if latest is not None and latest.enabled and latest.key_id and latest.key_id not in by_key:
        # Stored moments ago and not visible in Graph yet (or a concurrent worker's): wait.
        if latest.created_on is not None and now - latest.created_on < policy.safety_age:
            return None
    if force:
        done = origin is not None and any(c.origin == origin for c in stored_valid)
        return None if done else Step("rotate", "requested")
    if not expects_secret and not managed:
        return None
    if newest is None:
        expired = any(c.stored is not None for c in managed)
        return Step("rotate", "expired" if expired else "not-stored")
    if not latest_ok:
        return Step("rotate", "latest-not-valid")
    if now >= rotate_at(newest.info, policy.window):
        return Step("rotate", "expiring")
    return None


def triage(
    app: AppRecord, latest: StoredVersion | None, *, now: dt.datetime, policy: Policy, service_tag: str
) -> Plan:
    """The scheduler's view: Graph's credentials and the vault listing's current version, no
    version history. Every managed credential is assumed stored; the worker finds out."""
    assumed = [
        StoredVersion(
            id="",
            version=f"assumed-{p.key_id}",
            key_id=p.key_id,
            enabled=True,
            expires_on=p.end,
            created_on=p.start,
            tags={},
        )
        for p in app.passwords
        if creds.origin_of(p.display_name) is not None
    ]
    if latest is not None:
        assumed = [v for v in assumed if v.key_id != latest.key_id] + [latest]
    return plan_rotation(
        app.passwords,
        assumed,
        latest,
        now=now,
        policy=policy,
        expects_secret=expects_secret(app, service_tag),
    )


def expects_secret(app: AppRecord, service_tag: str) -> bool:
    return service_tag in app.tags and any(t.startswith(LIFETIME_TAG) for t in app.tags)


# -- messages and events ----------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class EventApp(_Message):
    unique_name: str | None
    app_id: str | None
    object_id: str | None


class RotationEvent(_Message):
    """One action taken (or, in a dry run, planned) or one problem, on the events queue."""

    schema_version: Literal[1] = SCHEMA_VERSION
    app: EventApp
    key_id: str | None = None
    action: Action
    reason: str
    dry_run: bool
    at: dt.datetime


class RotationMessage(_Message):
    """The scheduler's message to the rotation queue: one application to look at."""

    schema_version: Literal[1] = SCHEMA_VERSION
    object_id: str
    app_id: str
    unique_name: str
    reasons: list[str]


def _event_app(app: AppRecord | None, unique_name: str | None = None) -> EventApp:
    if app is None:
        return EventApp(unique_name=unique_name, app_id=None, object_id=None)
    return EventApp(unique_name=app.unique_name, app_id=app.app_id, object_id=app.object_id)


def event(
    app: AppRecord | None, step: Step, *, dry_run: bool, at: dt.datetime, unique_name: str | None = None
) -> RotationEvent:
    return RotationEvent(
        app=_event_app(app, unique_name),
        key_id=step.key_id,
        action=step.action,
        reason=step.reason,
        dry_run=dry_run,
        at=at,
    )


# -- the scheduler ----------------------------------------------------------------------------


@dataclass
class Sweep:
    """One scheduler run: the messages to send, the events to emit, and the summary."""

    messages: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    scanned: int = 0
    managed: int = 0
    needing_work: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "managed": self.managed,
            "needingWork": self.needing_work,
            "byReason": dict(self.by_reason),
        }


async def own_service_principal(workflow: Workflow) -> str:
    """The service identity's service principal id, looked up once per workflow."""
    if workflow.service_principal_id is None:
        client_id = workflow.settings.azure_client_id
        if not client_id:
            raise PermanentError("NoClientId", "AZURE_CLIENT_ID must name the service identity")
        workflow.service_principal_id = await workflow.graph.service_principal_id_of(client_id)
    return workflow.service_principal_id


async def schedule(workflow: Workflow) -> Sweep:
    """Decide which managed applications need a rotation message. Changes nothing."""
    settings = workflow.settings
    policy = Policy.from_settings(settings)
    sp_id = await own_service_principal(workflow)

    async def vault_listing() -> dict[str, StoredVersion]:
        """One listing of the vault for its current versions (name -> properties, small records)."""
        return {name: v async for name, v in workflow.vault.latest_versions(prefix="app-")}

    # The vault's listing and Graph's paging run side by side: the sweep takes the longer of the two.
    latest_listing = asyncio.ensure_future(vault_listing())
    now = workflow.now()
    sweep = Sweep()
    try:
        async for app in workflow.graph.owned_applications(sp_id, select=PLAN_SELECT):
            sweep.scanned += 1
            if settings.service_tag not in app.tags:
                continue
            sweep.managed += 1
            if not app.unique_name:  # not registered by this service's requests: no secret to find
                continue
            latest = (await latest_listing).get(secret_name(app.unique_name))
            _plan_one(sweep, app, latest, now=now, policy=policy, settings=settings)
    finally:
        if not latest_listing.done():
            latest_listing.cancel()
    log.info("rotation.scheduled", extra={**sweep.summary(), "dryRun": settings.rotation_dry_run})
    return sweep


def _plan_one(
    sweep: Sweep,
    app: AppRecord,
    latest: StoredVersion | None,
    *,
    now: dt.datetime,
    policy: Policy,
    settings: Settings,
) -> None:
    """The scheduler's decision for one application: a message, or (dry run) events."""
    if latest is not None and not latest.enabled:
        latest = None
    plan = triage(app, latest, now=now, policy=policy, service_tag=settings.service_tag)
    if not plan.changes:
        return
    sweep.needing_work += 1
    reasons = sorted({f"{s.action}:{s.reason}" for s in plan.steps if s.action != "report"})
    sweep.by_reason.update(reasons)
    if settings.rotation_dry_run:
        sweep.events.extend(
            event(app, s, dry_run=True, at=now).model_dump_json(by_alias=True) for s in plan.steps
        )
        return
    assert app.unique_name is not None
    message = RotationMessage(
        object_id=app.object_id, app_id=app.app_id, unique_name=app.unique_name, reasons=reasons
    )
    sweep.messages.append(message.model_dump_json(by_alias=True))


# -- one application --------------------------------------------------------------------------


@dataclass
class Outcome:
    app: AppRecord | None
    events: list[RotationEvent] = field(default_factory=list)
    issued: ReplyCredential | None = None


def rotation_origin(now: dt.datetime) -> str:
    """Scheduled rotations of one day share an origin, so two concurrent workers' duplicates
    are settled (credentials.settle_duplicates) and a redelivery recognises its own orphan."""
    return f"{creds.ROTATION_ORIGIN}:{now.date().isoformat()}"


def _lifetime(app: AppRecord, versions: Iterable[StoredVersion], settings: Settings) -> str:
    for tag in app.tags:
        if tag.startswith(LIFETIME_TAG):
            return tag[len(LIFETIME_TAG) :]
    newest = max(
        (v for v in versions if v.tags.get("lifetime")),
        key=lambda v: v.created_on or dt.datetime.min.replace(tzinfo=dt.UTC),
        default=None,
    )
    return newest.tags["lifetime"] if newest is not None else str(settings.default_secret_lifetime)


def _description(app: AppRecord) -> str:
    managed = [p for p in app.passwords if creds.origin_of(p.display_name) is not None]
    newest = max(managed, key=lambda p: p.start, default=None)
    if newest is None:
        return "client secret"
    return newest.display_name.rsplit("[managed:", 1)[0].strip() or "client secret"


async def rotate(
    workflow: Workflow,
    app: AppRecord,
    delivery: Delivery,
    *,
    force: bool = False,
    origin: str | None = None,
) -> Outcome:
    """Converge one application: plan, execute, re-read, until the plan is empty. A tenant
    policy refusing the new secret is reported and ends the rotation, not the run."""
    settings, graph, vault = workflow.settings, workflow.graph, workflow.vault
    policy = Policy.from_settings(settings)
    dry_run = settings.rotation_dry_run
    outcome = Outcome(app)
    assert app.unique_name is not None
    name = secret_name(app.unique_name)
    origin = origin or rotation_origin(workflow.now())
    reported: set[tuple[str, str | None]] = set()
    for _ in range(MAX_PASSES):
        now = workflow.now()
        versions, latest = await asyncio.gather(vault.versions(name), vault.latest(name))
        plan = plan_rotation(
            app.passwords,
            versions,
            latest,
            now=now,
            policy=policy,
            expects_secret=expects_secret(app, settings.service_tag),
            force=force and outcome.issued is None,
            may_rotate=outcome.issued is None,
            origin=origin,
            redelivered=delivery.redelivered,
        )
        for step in plan.steps:
            if step.action == "report" and (step.reason, step.key_id) in reported:
                continue
            if step.action == "rotate" and not dry_run:
                continue  # announced once the new credential exists, with its keyId
            reported.add((step.reason, step.key_id))
            outcome.events.append(event(app, step, dry_run=dry_run, at=now))
        if dry_run or not plan.changes:
            break
        await _remove(workflow, app, name, plan.before)
        if plan.rotate is not None:
            lifetime = _lifetime(app, versions, settings)
            try:
                outcome.issued = await workflow.issue_secret(
                    app,
                    unique_name=app.unique_name,
                    origin=origin,
                    description=_description(app),
                    start=now,
                    end=parse_duration(lifetime).add_to(now),
                    lifetime=lifetime,
                )
            except PolicyViolation as error:
                # Nothing else changes either: the current credentials are all the app has.
                outcome.events.append(
                    event(app, Step("report", f"tenant-policy:{error.code}"), dry_run=False, at=now)
                )
                break
            rotated = Step("rotate", plan.rotate.reason, key_id=outcome.issued.key_id)
            outcome.events.append(event(app, rotated, dry_run=False, at=now))
        await _remove(workflow, app, name, plan.after)
        app = outcome.app = await graph.get_application(app.object_id, dependent=False)
    return outcome


def app_keys(app: AppRecord) -> set[str]:
    return {p.key_id for p in app.passwords}


async def _remove(workflow: Workflow, app: AppRecord, name: str, steps: Sequence[Step]) -> None:
    """Remove credentials first, then disable their versions (a crash between the two leaves a
    dangling version, which the next pass disables)."""
    removed = [s.key_id for s in steps if s.action in ("retire", "cleanup") and s.key_id in app_keys(app)]
    await asyncio.gather(*(workflow.graph.remove_password(app.object_id, k) for k in removed))
    await asyncio.gather(*(workflow.vault.disable(name, v.version) for s in steps for v in s.versions))


async def rotate_message(workflow: Workflow, body: bytes, delivery: Delivery) -> list[RotationEvent]:
    """One delivery of a rotation message: the events to emit. Raises a TransientError for
    redelivery; permanent problems (and the last delivery's transient one) become events."""
    settings = workflow.settings
    now = workflow.now()
    try:
        target = RotationMessage.model_validate_json(body)
    except ValueError:
        log.warning("rotation.bad_message", extra={"messageId": delivery.message_id})
        return [event(None, Step("report", "invalid-message"), dry_run=settings.rotation_dry_run, at=now)]
    context = {"messageId": delivery.message_id, "uniqueName": target.unique_name}
    app: AppRecord | None = None
    try:
        try:
            app = await workflow.graph.get_application(target.object_id, dependent=False)
        except NotFound:
            return [_problem(None, "application-not-found", now, target.unique_name, settings)]
        if settings.service_tag not in app.tags or app.unique_name != target.unique_name:
            return [_problem(app, "not-managed", now, target.unique_name, settings)]
        outcome = await rotate(workflow, app, delivery)
    except TransientError as error:
        if delivery.delivery_count < settings.max_delivery_count:
            log.warning("rotation.retry", extra={**context, "code": error.code, "reason": error.message})
            raise
        log.error("rotation.failed", extra={**context, "code": error.code, "reason": error.message})
        return [_problem(app, f"failed:{error.code}", now, target.unique_name, settings)]
    except PermanentError as error:
        log.warning("rotation.refused", extra={**context, "code": error.code, "reason": error.message})
        return [_problem(app, _permanent_reason(error), now, target.unique_name, settings)]
    for e in outcome.events:
        log.info(
            "rotation.event", extra={**context, "action": e.action, "reason": e.reason, "keyId": e.key_id}
        )
    return outcome.events


def _permanent_reason(error: PermanentError) -> str:
    if isinstance(error, PermissionDenied):
        return f"permission-denied:{error.code}"
    if isinstance(error, NotFound):
        return f"not-found:{error.code}"
    return f"refused:{error.code}"


def _problem(
    app: AppRecord | None, reason: str, now: dt.datetime, unique_name: str, settings: Settings
) -> RotationEvent:
    return event(
        app, Step("report", reason), dry_run=settings.rotation_dry_run, at=now, unique_name=unique_name
    )


# -- rotate on request ------------------------------------------------------------------------


async def rotate_on_request(
    workflow: Workflow, request: RotateRequest, delivery: Delivery
) -> RegistrationReply:
    """The registration queue's ``rotate``: a new credential now, however far its expiry, through
    the same planner (so it never pushes past three credentials and retires what is due)."""
    unique_name = request.application.unique_name
    app = await workflow.graph.get_application_by_unique_name(unique_name)
    if app is None or workflow.settings.service_tag not in app.tags:
        return RegistrationReply(
            request_id=request.request_id,
            status="rejected",
            errors=[
                FieldError(
                    field="application.uniqueName",
                    code="not_found" if app is None else "not_managed",
                    message="No application with this uniqueName exists."
                    if app is None
                    else "This application was not registered by this service; it is left untouched.",
                )
            ],
        )
    settings = workflow.settings
    if settings.rotation_dry_run:
        settings = settings.model_copy(update={"rotation_dry_run": False})
    outcome = await rotate(
        replace(workflow, settings=settings), app, delivery, force=True, origin=request.request_id
    )
    for e in outcome.events:
        log.info(
            "rotation.event",
            extra={
                "requestId": request.request_id,
                "action": e.action,
                "reason": e.reason,
                "keyId": e.key_id,
            },
        )
    credential = outcome.issued or await _issued_earlier(workflow, outcome.app or app, request.request_id)
    if credential is None:
        reasons = sorted({e.reason for e in outcome.events if e.action == "report"})
        policy = next((r for r in reasons if r.startswith("tenant-policy:")), None)
        if policy is not None:
            raise PolicyViolation(
                policy.split(":", 1)[1], "a tenant policy refused the new secret", "credential"
            )
        return RegistrationReply(
            request_id=request.request_id,
            status="rejected",
            errors=[
                FieldError(
                    field="application.uniqueName",
                    code="credential_limit",
                    message=f"The application already holds {MAX_CREDENTIALS} credentials this "
                    "service may not remove.",
                )
            ],
        )
    current = outcome.app or app
    return RegistrationReply(
        request_id=request.request_id,
        status="succeeded",
        application=ReplyApplication(
            unique_name=unique_name,
            display_name=current.display_name or None,
            client_id=current.app_id,
            object_id=current.object_id,
            tenant_id=workflow.settings.azure_tenant_id,
        ),
        credential=credential,
    )


async def _issued_earlier(workflow: Workflow, app: AppRecord, request_id: str) -> ReplyCredential | None:
    """A redelivered request whose rotation already happened: the credential it stored."""
    assert app.unique_name is not None
    versions = await workflow.vault.versions(secret_name(app.unique_name))
    now = workflow.now()
    for credential in creds.join(app.passwords, versions):
        if credential.origin == request_id and credential.stored is not None and credential.valid_at(now):
            return ReplyCredential(
                key_id=credential.key_id,
                hint=credential.info.hint,
                start_date_time=credential.info.start,
                end_date_time=credential.info.end,
                key_vault_secret_id=credential.stored.id,
            )
    return None


__all__ = [
    "MAX_CREDENTIALS",
    "Plan",
    "Policy",
    "RotationEvent",
    "RotationMessage",
    "Step",
    "plan_rotation",
    "rotate",
    "rotate_message",
    "rotate_on_request",
    "schedule",
    "triage",
]
