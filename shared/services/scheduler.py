"""The rotation sweep: which managed applications need a rotation message. Changes nothing.

It lists what the service identity owns, page by page, and runs the planner over a partial
view (``triage``: every managed credential assumed stored) only to decide which applications
need a message; the worker (shared.services.rotation) finds out the whole truth. Graph's pages
are processed as they come and dropped.

What the sweep checks daily, and what only on vault-audit days (``VAULT_AUDIT_DAYS``; a UTC day
whose ordinal is a multiple of it, ``vault_audit_day``):

- **Every day, from Graph**: expiry (``expiring``, ``expired``), a secret-type application with
  no managed credential left (removed by hand: ``not-stored`` / ``latest-not-valid``), and the
  applications holding two and more managed credentials (an overlap, a suspected orphan, a
  retirement due). For those, and only those, the sweep reads the one secret's current version
  (``Vault.latest``), at most ``VAULT_READS`` at once beside Graph's paging; an application
  with exactly one managed credential is triaged as if its secret resolved to it
  (``assumed_latest``), with no vault request (shared.domain.planner, ``needs_vault_read``).
- **On audit days, the whole vault**: one listing of the vault's secrets beside Graph's paging,
  so the current version of every application is checked, which Graph cannot show: a secret
  damaged by hand (a version set with another value or keyId, disabled, deleted) behind an
  application whose one credential looks healthy is found then (``latest-not-valid``), within
  ``VAULT_AUDIT_DAYS`` rather than within a day. Consumers whose secret stopped opening see it
  at once anyway. Of each secret only what triage reads of its current version is kept
  (``Current``), never its tags or the SDK's objects.

Key Vault lists at most 25 secrets a page: the audit's listing is ceil(managed / 25)
sequential round trips (docs/benchmarks.md), which is why it is not daily.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import struct
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from shared.domain import stored
from shared.domain.certificates import triage_certificates
from shared.domain.planner import Policy, assumed_latest, needs_vault_read, triage
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
# Between vault audits: single-secret reads in flight at once (Graph's paging waits beyond it).
VAULT_READS = 16


def vault_audit_day(now: dt.datetime, every: int) -> bool:
    """Whether the sweep at ``now`` is a vault audit: the UTC day's ordinal is a multiple of
    ``every`` (``VAULT_AUDIT_DAYS``; 1: every day)."""
    day = now.astimezone(dt.UTC) if now.tzinfo is not None else now
    return day.toordinal() % every == 0


class Current(NamedTuple):
    """What triage reads of a secret's current (enabled) version: which credential's value it
    holds, its id, and since when (POSIX seconds)."""

    key_id: str | None
    version: str
    created: float | None

    @classmethod
    def of(cls, version: StoredVersion) -> Current:
        """What triage reads of a current version, and nothing else of it."""
        created = None if version.created_on is None else version.created_on.timestamp()
        return cls(version.key_id, version.version, created)

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
            current[name] = _compact(*Current.of(v))
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
    # Whether this sweep listed the whole vault; else how many single secrets it read.
    vault_audit: bool = False
    vault_reads: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "managed": self.managed,
            "needingWork": self.needing_work,
            "byReason": dict(self.by_reason),
            "vaultAudit": self.vault_audit,
            "vaultReads": self.vault_reads,
        }


async def schedule(deps: Dependencies) -> Sweep:
    """Decide which managed applications need a rotation message. Changes nothing. On a vault
    audit day every application's current secret is checked from one listing of the vault;
    on other days only those ``needs_vault_read`` names are read (the module says why)."""
    settings = deps.settings
    sp_id = await own_service_principal(deps)
    now = deps.now()
    sweep = Sweep(vault_audit=vault_audit_day(now, settings.vault_audit_days))
    if sweep.vault_audit:
        await _audit(deps, sp_id, sweep, now)
    else:
        await _from_graph(deps, sp_id, sweep, now)
    log.info("rotation.scheduled", extra={**sweep.summary(), "dryRun": settings.rotation_dry_run})
    return sweep


async def _registered(deps: Dependencies, sp_id: str, sweep: Sweep) -> AsyncIterator[tuple[AppRecord, str]]:
    """The applications the service identity owns that the service registered from a request
    (its tag and a uniqueName), with their uniqueName, page by page, counted into ``sweep``."""
    service_tag = deps.settings.service_tag
    async for app in deps.applications.owned_applications(sp_id, select=PLAN_SELECT):
        sweep.scanned += 1
        if service_tag not in app.tags:
            continue
        sweep.managed += 1
        if app.unique_name:  # else not registered by this service's requests: no secret to find
            yield app, app.unique_name


async def _audit(deps: Dependencies, sp_id: str, sweep: Sweep, now: dt.datetime) -> None:
    """The vault audit: Graph's paging beside one listing of the whole vault."""
    settings = deps.settings
    policy = settings.rotation_policy
    # The vault's listing starts now and runs beside Graph's paging.
    latest_listing = asyncio.ensure_future(current_versions(deps.vault))
    try:
        async for app, unique_name in _registered(deps, sp_id, sweep):
            latest = None
            if (
                stored.credential_type_tag(app.tags) != stored.CERTIFICATE
            ):  # a certificate's plan needs no vault
                current = (await latest_listing).get(stored.secret_name(unique_name))
                latest = None if current is None else _unpacked(current).stored_version()
            _plan_one(sweep, app, latest, now=now, policy=policy, settings=settings)
    finally:
        if not latest_listing.done():
            latest_listing.cancel()


async def _from_graph(deps: Dependencies, sp_id: str, sweep: Sweep, now: dt.datetime) -> None:
    """Between audits: Graph's paging, and a read of one secret only where Graph shows
    something the plan needs the vault for (``needs_vault_read``)."""
    settings = deps.settings
    policy = settings.rotation_policy
    reads = _VaultReads(deps.vault, VAULT_READS)
    try:
        async for app, unique_name in _registered(deps, sp_id, sweep):
            if not needs_vault_read(app, settings.service_tag):
                _plan_one(sweep, app, assumed_latest(app), now=now, policy=policy, settings=settings)
                continue

            def plan(latest: StoredVersion | None, app: AppRecord = app) -> None:
                _plan_one(sweep, app, latest, now=now, policy=policy, settings=settings)

            sweep.vault_reads += 1
            await reads.start(stored.secret_name(unique_name), plan)
        await reads.finish()
    finally:
        await reads.cancel()


class _VaultReads:
    """Reads of single secrets' current versions beside Graph's paging, each planned as soon as
    it comes back: one application's plan depends on no other's, so the order they finish in
    does not matter. At most ``limit`` at once; ``start`` waits for a free slot, so paging waits
    while ``limit`` reads are pending, and nothing more than those is held. The first failure
    is raised by the next ``start`` or by ``finish`` (as the audit's listing raises its own)."""

    def __init__(self, vault: Vault, limit: int) -> None:
        self._vault = vault
        self._slots = asyncio.Semaphore(limit)
        self._pending: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def start(self, name: str, then: Callable[[StoredVersion | None], None]) -> None:
        await self._slots.acquire()
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        task = asyncio.ensure_future(self._read(name, then))
        self._pending.add(task)
        task.add_done_callback(self._done)

    async def _read(self, name: str, then: Callable[[StoredVersion | None], None]) -> None:
        version = await self._vault.latest(name)
        # As the audit sees it: a disabled current version opens nothing, so it is none; of an
        # enabled one only what triage reads (``Current``).
        then(Current.of(version).stored_version() if version is not None and version.enabled else None)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def finish(self) -> None:
        """Wait for every pending read; raise the first failure."""
        while self._pending and self._failure is None:
            await asyncio.wait(set(self._pending), return_when=asyncio.FIRST_COMPLETED)
        if self._failure is not None:
            raise self._failure

    async def cancel(self) -> None:
        """Stop what is still pending (after a failure, or when the sweep itself is stopped)."""
        pending = set(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


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
