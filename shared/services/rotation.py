"""Rotating one application's client secrets: plan (shared.domain.planner), execute, re-read,
and plan again until nothing is left (at most ``MAX_PASSES`` times). Every step is safe to
repeat, so a redelivery or a crash after any call converges on the state of one clean run.

``rotate_message`` is the rotation queue's delivery; ``rotate`` is shared with rotate on
request (shared.services.rotate_request).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from shared.domain import certificates as certs
from shared.domain import stored
from shared.domain.durations import parse_duration
from shared.domain.errors import NotFound, PermanentError, PermissionDenied, PolicyViolation, TransientError
from shared.domain.planner import Plan, Step, expects_secret, plan_rotation
from shared.domain.policy import RequestedCertificate
from shared.domain.records import AppRecord, CertificateVersion, KeyInfo, StoredVersion
from shared.messages.envelope import body_envelopes
from shared.messages.replies import ReplyCertificate, ReplyCredential
from shared.messages.rotation import EventApp, RotationEvent, RotationMessage
from shared.services.certificates import attach, create_version, remove_keys, reply_certificate, versions_of
from shared.services.delivery import Delivery, retry_unless_last
from shared.services.dependencies import Dependencies
from shared.services.exclusive import exclusively
from shared.services.secrets import issue_secret

log = logging.getLogger(__name__)

MAX_PASSES = 3


def event(
    app: AppRecord | None, step: Step, *, dry_run: bool, at: dt.datetime, unique_name: str | None = None
) -> RotationEvent:
    """The event for one step taken (or, in a dry run, planned) on ``app``."""
    if app is None:
        subject = EventApp(unique_name=unique_name, app_id=None, object_id=None)
    else:
        subject = EventApp(unique_name=app.unique_name, app_id=app.app_id, object_id=app.object_id)
    return RotationEvent(
        app=subject, key_id=step.key_id, action=step.action, reason=step.reason, dry_run=dry_run, at=at
    )


@dataclass
class Outcome:
    app: AppRecord | None
    events: list[RotationEvent] = field(default_factory=list)
    issued: ReplyCredential | ReplyCertificate | None = None


def _lifetime(app: AppRecord, versions: Iterable[StoredVersion], default: str) -> str:
    """The lifetime to issue again: the application's tag, else the newest version's, else ``default``."""
    recorded = stored.lifetime_tag(app.tags)
    if recorded is not None:
        return recorded
    newest = max(
        (v for v in versions if v.tags.get(stored.LIFETIME)),
        key=lambda v: v.created_on or dt.datetime.min.replace(tzinfo=dt.UTC),
        default=None,
    )
    return newest.tags[stored.LIFETIME] if newest is not None else default


def _description(app: AppRecord) -> str:
    """The newest managed credential's description, which the new one keeps."""
    managed = [p for p in app.passwords if stored.origin_of(p.display_name) is not None]
    newest = max(managed, key=lambda p: p.start, default=None)
    return stored.DEFAULT_DESCRIPTION if newest is None else stored.description_of(newest.display_name)


def _announce(
    outcome: Outcome,
    app: AppRecord,
    plan: Plan,
    reported: set[tuple[str, str | None]],
    *,
    dry_run: bool,
    at: dt.datetime,
) -> None:
    """The events of one pass's plan: each problem once per rotation, and a rotation only in a
    dry run (otherwise it is announced once the new credential exists, with its keyId)."""
    for step in plan.steps:
        if step.action == "report" and (step.reason, step.key_id) in reported:
            continue
        if step.action == "rotate" and not dry_run:
            continue
        reported.add((step.reason, step.key_id))
        outcome.events.append(event(app, step, dry_run=dry_run, at=at))


async def rotate(
    deps: Dependencies,
    app: AppRecord,
    *,
    force: bool = False,
    origin: str | None = None,
    requested_by: str = stored.SCHEDULER,
    dry_run: bool | None = None,
) -> Outcome:
    """Converge one application: plan, execute, re-read, until the plan is empty. A tenant
    policy refusing the new secret is reported and ends the rotation, not the run.
    ``dry_run`` None: the setting decides."""
    settings, graph, vault = deps.settings, deps.applications, deps.vault
    policy = settings.rotation_policy
    dry_run = settings.rotation_dry_run if dry_run is None else dry_run
    if stored.credential_type_tag(app.tags) == stored.CERTIFICATE:
        return await rotate_certificates(
            deps, app, force=force, origin=origin, requested_by=requested_by, dry_run=dry_run
        )
    outcome = Outcome(app)
    assert app.unique_name is not None
    name = stored.secret_name(app.unique_name)
    origin = origin or stored.rotation_origin(deps.now())
    reported: set[tuple[str, str | None]] = set()
    for _ in range(MAX_PASSES):
        now = deps.now()
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
        )
        _announce(outcome, app, plan, reported, dry_run=dry_run, at=now)
        if dry_run or not plan.changes:
            break
        await _remove(deps, app, name, plan.before)
        if plan.rotate is not None:
            lifetime = _lifetime(app, versions, str(settings.default_secret_lifetime))
            try:
                outcome.issued = await issue_secret(
                    deps,
                    app,
                    unique_name=app.unique_name,
                    origin=origin,
                    requested_by=requested_by,
                    owner=app.service_management_reference,
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
        await _remove(deps, app, name, plan.after)
        app = outcome.app = await graph.get_application(app.object_id, dependent=False)
    return outcome


async def rotate_certificates(
    deps: Dependencies,
    app: AppRecord,
    *,
    force: bool,
    origin: str | None,
    requested_by: str,
    dry_run: bool,
) -> Outcome:
    """Converge one application's certificates as ``rotate`` does its secrets: plan
    (shared.domain.certificates), execute, re-read, until the plan is empty. The new
    certificate is made in the vault and attached (with a proof signed by the current one)
    before any old one is retired; a tenant policy refusing it is reported."""
    settings = deps.settings
    outcome = Outcome(app)
    assert app.unique_name is not None
    name = stored.certificate_name(app.unique_name)
    origin = origin or stored.rotation_origin(deps.now())
    reported: set[tuple[str, str | None]] = set()
    for _ in range(MAX_PASSES):
        now = deps.now()
        mine, latest = await versions_of(deps, name, app.app_id)
        plan = certs.plan_certificate_rotation(
            app.keys,
            mine,
            latest,
            now=now,
            policy=settings.rotation_policy,
            force=force and outcome.issued is None,
            may_rotate=outcome.issued is None,
            origin=origin,
        )
        _announce(outcome, app, plan, reported, dry_run=dry_run, at=now)
        if dry_run or not plan.changes:
            break
        if plan.rotate is not None:
            try:
                key, version = await _rotate_certificate(
                    deps, app, name, plan.rotate, mine, latest, origin, requested_by
                )
            except PolicyViolation as error:
                outcome.events.append(
                    event(app, Step("report", f"tenant-policy:{error.code}"), dry_run=False, at=now)
                )
                break
            outcome.issued = reply_certificate(key, version)
            rotated = Step("rotate", plan.rotate.reason, key_id=key.key_id)
            outcome.events.append(event(app, rotated, dry_run=False, at=now))
            # The new key signs the removals' proof: the app as it is now, without reading it again.
            app = replace(app, keys=(*app.keys, key))
        await remove_keys(deps, app, name, plan.after)
        app = outcome.app = await deps.applications.get_application(app.object_id, dependent=False)
    return outcome


async def _rotate_certificate(
    deps: Dependencies,
    app: AppRecord,
    name: str,
    step: Step,
    versions: Sequence[CertificateVersion],
    newest: CertificateVersion | None,
    origin: str,
    requested_by: str,
) -> tuple[KeyInfo, CertificateVersion]:
    """Attach the version ``step`` names (made by an attempt that stopped before attaching it),
    or a new version made like the app's newest one (``newest``): same subject, lifetime and
    exportability. Returns the key credential and its version."""
    attachable = [v for v in step.versions if isinstance(v, CertificateVersion)]
    if attachable:
        version = attachable[0]
    else:
        lifetime = stored.lifetime_tag(app.tags) or "P12M"
        tags = newest.tags if newest is not None else {}
        exportable = tags.get(stored.EXPORTABLE) == "true"
        subject = tags.get(stored.SUBJECT) or f"CN={app.unique_name}"
        version = await create_version(
            deps,
            app,
            name,
            certs_request=RequestedCertificate(subject, lifetime, exportable),
            origin=origin,
            requested_by=requested_by,
            owner=app.service_management_reference,
        )
    return await attach(deps, app, name, version, versions, origin=origin), version


async def _remove(deps: Dependencies, app: AppRecord, name: str, steps: Sequence[Step]) -> None:
    """Remove credentials first, then disable their versions (a crash between the two leaves a
    dangling version, which the next pass disables)."""
    present = {p.key_id for p in app.passwords}
    removed = [s.key_id for s in steps if s.action in ("retire", "cleanup") and s.key_id in present]
    await asyncio.gather(*(deps.applications.remove_password(app.object_id, k) for k in removed))
    await asyncio.gather(*(deps.vault.disable(name, v.version) for s in steps for v in s.versions))


async def rotate_message(deps: Dependencies, body: bytes, delivery: Delivery) -> list[RotationEvent]:
    """One delivery of a rotation message: the events to emit. Raises a TransientError for
    redelivery; permanent problems (and the last delivery's transient one) become events."""
    settings = deps.settings
    now = deps.now()
    try:
        target = RotationMessage.model_validate_json(body)
    except ValueError:
        log.warning("rotation.bad_message", extra={"messageId": delivery.message_id})
        return [event(None, Step("report", "invalid-message"), dry_run=settings.rotation_dry_run, at=now)]
    context = {"messageId": delivery.message_id, "uniqueName": target.unique_name}

    def problem(app: AppRecord | None, reason: str) -> list[RotationEvent]:
        step = Step("report", reason)
        return [event(app, step, dry_run=settings.rotation_dry_run, at=now, unique_name=target.unique_name)]

    app: AppRecord | None = None
    try:
        async with exclusively(deps, target.unique_name):
            try:
                app = await deps.applications.get_application(target.object_id, dependent=False)
            except NotFound:
                return problem(None, "application-not-found")
            if settings.service_tag not in app.tags or app.unique_name != target.unique_name:
                return problem(app, "not-managed")
            outcome = await rotate(deps, app)
    except TransientError as error:
        retry_unless_last(error, delivery, settings.max_delivery_count, log, "rotation", context)
        return problem(app, f"failed:{error.code}")
    except PermanentError as error:
        log.warning("rotation.refused", extra={**context, "code": error.code, "reason": error.message})
        return problem(app, _permanent_reason(error))
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


async def rotate_message_and_send(deps: Dependencies, body: bytes, delivery: Delivery) -> list[RotationEvent]:
    """One delivery of a rotation message, its events sent to the events queue (each with a
    ``MessageId`` derived from its body, so a redelivery's identical events are dropped by
    duplicate detection)."""
    events = await rotate_message(deps, body, delivery)
    bodies = [e.model_dump_json(by_alias=True) for e in events]
    await deps.outbox.send(body_envelopes(deps.settings.events_queue, "credential-event", bodies))
    return events
