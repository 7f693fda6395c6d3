"""The rotation sweep: which managed applications need a rotation message. Changes nothing.

It lists what the service identity owns, page by page, plus one listing of the vault's
secrets, and runs the planner over that partial view (``triage``: every managed credential
assumed stored) only to decide which applications need a message; the worker
(shared.services.rotation) finds out the whole truth.

The vault listing stays: Graph cannot tell which credential the unversioned secret resolves
to, nor whether it resolves at all, and the sweep checks that of every application daily
(``latest-not-valid``, suspected orphans; docs/reliability.md). It starts with the sweep and
runs beside Graph's paging; of each secret only what triage reads of its current version is
kept (``Current``), never its tags or the SDK's objects. Graph's pages are processed as they
come and dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from shared.domain import stored
from shared.domain.certificates import triage_certificates
from shared.domain.planner import Policy, triage
from shared.domain.records import AppRecord, StoredVersion
from shared.messages.envelope import body_envelopes
from shared.messages.rotation import RotationMessage
from shared.services.dependencies import Dependencies
from shared.services.ownership import own_service_principal
from shared.services.ports import Vault
from shared.services.rotation import event
from shared.settings import Settings

log = logging.getLogger(__name__)

# What the planner needs of each owned application, nothing more.
PLAN_SELECT = ("id", "appId", "uniqueName", "tags", "passwordCredentials", "keyCredentials")


class Current(NamedTuple):
    """What triage reads of a secret's current (enabled) version: which credential's value it
    holds, its id, and since when (POSIX seconds)."""

    key_id: str | None
    version: str
    created: float | None

    def stored_version(self) -> StoredVersion:
        created_on = None if self.created is None else dt.datetime.fromtimestamp(self.created, dt.UTC)
        return StoredVersion(
            id="",
            version=self.version,
            key_id=self.key_id,
            enabled=True,
            expires_on=None,
            created_on=created_on,
            tags={},
        )


# The usual current version (a UUID keyId, Key Vault's 32-hex version id, a creation time)
# packed into 40 bytes: the listing of 10,000 secrets is held in under 2 MB. Anything else
# stays a ``Current``.
_PACKED = struct.Struct("<16s16sd")


def _compact(key_id: str | None, version: str, created: float | None) -> bytes | Current:
    current = Current(key_id, version, created)
    try:
        packed = _PACKED.pack(uuid.UUID(key_id or "").bytes, bytes.fromhex(version), created or 0.0)
    except (ValueError, struct.error):
        return current
    # Packed only when unpacking gives back exactly the same (not another spelling of the ids).
    return packed if created is not None and _unpacked(packed) == current else current


def _unpacked(value: bytes | Current) -> Current:
    if isinstance(value, Current):
        return value
    key_id, version, created = _PACKED.unpack(value)
    return Current(str(uuid.UUID(bytes=key_id)), version.hex(), created)


async def current_versions(vault: Vault) -> dict[str, bytes | Current]:
    """Secret name -> its current version (``_compact``), for every ``app-`` secret whose
    current version is enabled (a disabled one opens nothing: to triage it is no version)."""
    current: dict[str, bytes | Current] = {}
    async for name, v in vault.latest_versions(prefix=stored.SECRET_PREFIX):
        if v.enabled:
            created = None if v.created_on is None else v.created_on.timestamp()
            current[name] = _compact(v.key_id, v.version, created)
    return current


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


async def schedule(deps: Dependencies) -> Sweep:
    """Decide which managed applications need a rotation message. Changes nothing."""
    settings = deps.settings
    policy = settings.rotation_policy
    sp_id = await own_service_principal(deps)

    # The vault's listing starts now and runs beside Graph's paging.
    latest_listing = asyncio.ensure_future(current_versions(deps.vault))
    now = deps.now()
    sweep = Sweep()
    try:
        async for app in deps.applications.owned_applications(sp_id, select=PLAN_SELECT):
            sweep.scanned += 1
            if settings.service_tag not in app.tags:
                continue
            sweep.managed += 1
            if not app.unique_name:  # not registered by this service's requests: no secret to find
                continue
            latest = None
            if (
                stored.credential_type_tag(app.tags) != stored.CERTIFICATE
            ):  # a certificate's plan needs no vault
                current = (await latest_listing).get(stored.secret_name(app.unique_name))
                latest = None if current is None else _unpacked(current).stored_version()
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
    """The scheduler's decision for one application: a message, or (dry run) events. ``latest``:
    the secret's current version, None when it has none or it is disabled."""
    if stored.credential_type_tag(app.tags) == stored.CERTIFICATE:
        plan = triage_certificates(app.keys, now=now, policy=policy)
    else:
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


async def schedule_and_send(deps: Dependencies) -> Sweep:
    """One sweep, its rotation messages sent to the rotation queue and its events to the
    events queue. Each message's id is derived from its body: a timer that fires twice within
    the duplicate-detection window sends each application's message once."""
    sweep = await schedule(deps)
    settings = deps.settings
    await deps.outbox.send(
        [
            *body_envelopes(settings.rotation_queue, "rotation", sweep.messages),
            *body_envelopes(settings.events_queue, "credential-event", sweep.events),
        ]
    )
    return sweep
