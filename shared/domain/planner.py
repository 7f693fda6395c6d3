"""The rotation planner: what to do about one application's client secrets, as data.

"Fetch, build a plan, execute": ``plan_rotation`` is pure and takes ``now``; the scheduler
runs it over a partial view (``triage``) to decide which applications need a message, and the
worker runs it over the whole truth, carries the plan out, and plans again until nothing is
left.

Invariants every plan keeps (see docs/rotation.md): a managed application keeps a valid
credential whose value is in Key Vault; the unversioned secret resolves to a valid credential
(the new credential is added and stored before anything is removed or disabled, and the latest
version is never disabled); no credential without the service's marker is removed; and no
application is pushed past ``MAX_CREDENTIALS``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.domain.credentials import Credential, join
from shared.domain.records import AppRecord, CertificateVersion, PasswordInfo, StoredVersion
from shared.domain.stored import CERTIFICATE, credential_type_tag, origin_of
from shared.messages.rotation import Action

MAX_CREDENTIALS = 3


@dataclass(frozen=True)
class Policy:
    """The settings the planner reads, as plain durations."""

    window: dt.timedelta
    grace: dt.timedelta
    safety_age: dt.timedelta
    max_credentials: int = MAX_CREDENTIALS


@dataclass(frozen=True)
class Step:
    """One thing to do (or to report). ``key_id`` names a credential; ``versions`` are the Key
    Vault versions to disable (those of a removed credential, or a dangling one): a secret's,
    or a certificate's (shared.domain.certificates)."""

    action: Action
    reason: str
    key_id: str | None = None
    versions: tuple[StoredVersion | CertificateVersion, ...] = ()


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


class Validity(Protocol):
    """What a credential's rotation time depends on: a password's or a certificate's validity."""

    @property
    def start(self) -> dt.datetime: ...

    @property
    def end(self) -> dt.datetime: ...


def rotate_at(info: Validity, window: dt.timedelta) -> dt.datetime:
    """When a credential is due for rotation: ``window`` before its end, but never in the first
    half of its life (a secret shorter than twice the window would otherwise rotate daily)."""
    return max(info.end - window, info.start + (info.end - info.start) / 2)


def _newer(credential: Credential) -> tuple[dt.datetime, dt.datetime]:
    return credential.info.start, credential.info.end


def in_successors_grace(
    credential: Credential, stored_valid: Sequence[Credential], now: dt.datetime, grace: dt.timedelta
) -> bool:
    """Whether a newer stored credential took over from ``credential`` less than ``grace`` ago:
    consumers that cached ``credential`` may not have picked its successor up yet."""
    return any(
        n is not credential and _newer(n) > _newer(credential) and now - _stored_since(n) < grace
        for n in stored_valid
    )


def rotated_within(
    passwords: Sequence[PasswordInfo],
    versions: Sequence[StoredVersion],
    now: dt.datetime,
    grace: dt.timedelta,
) -> Credential | None:
    """The newest stored, valid managed credential if it was stored less than ``grace`` ago and
    succeeded another one (a rotation whose grace period is running), else None."""
    credentials = join(passwords, versions)
    stored = [c for c in credentials if c.managed and c.stored is not None and c.valid_at(now)]
    newest = max(stored, key=_newer, default=None)
    if newest is None or now - _stored_since(newest) >= grace:
        return None
    older = [c for c in credentials if c.managed and c is not newest and _newer(c) < _newer(newest)]
    return newest if older else None


def _stored_since(credential: Credential) -> dt.datetime:
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
) -> Plan:
    """What to do about one application's client secrets, given everything known about them.

    ``latest`` is the version the unversioned secret resolves to (None: missing or disabled).
    ``expects_secret``: the app was registered with a secret (a public client has none, and
    gets none). ``force``: issue a new credential unless one from ``origin`` is already stored
    (rotate on request). An unstored credential goes only once proven dead, older than the
    safety age, whoever issued it: younger, its value may still be on its way to the vault.
    """
    credentials = join(passwords, versions)
    by_key = {c.key_id: c for c in credentials}
    managed = [c for c in credentials if c.managed]
    stored_valid = [c for c in managed if c.stored is not None and c.valid_at(now)]
    newest = max(stored_valid, key=_newer, default=None)
    latest_credential = by_key.get(latest.key_id or "") if latest is not None and latest.enabled else None
    latest_ok = latest_credential is not None and latest_credential in stored_valid
    # What consumers read now: never removed, and its version never disabled.
    keeper = latest_credential if latest_ok else newest
    latest_version = latest.version if latest is not None else None

    def disable_of(credential: Credential) -> tuple[StoredVersion, ...]:
        return tuple(
            v for v in versions if v.enabled and v.key_id == credential.key_id and v.version != latest_version
        )

    def holds_latest(credential: Credential) -> bool:
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
            if now - c.info.start >= policy.safety_age:
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
        # Never one inside its successor's grace period: consumers may have read it moments ago.
        others = sorted(
            (
                c
                for c in managed
                if c is not keeper
                and c.key_id not in chosen
                and not holds_latest(c)
                and not in_successors_grace(c, stored_valid, now, policy.grace)
            ),
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
    managed: Sequence[Credential],
    stored_valid: Sequence[Credential],
    newest: Credential | None,
    latest: StoredVersion | None,
    latest_ok: bool,
    by_key: dict[str, Credential],
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
    """The scheduler's view: Graph's credentials and the secret's current version (the vault's,
    or between vault audits ``assumed_latest``), no version history. Every managed credential is
    assumed stored; the worker finds out."""
    assumed = [_assumed_stored(p) for p in app.passwords if origin_of(p.display_name) is not None]
    if latest is not None:
        assumed = [v for v in assumed if v.key_id != latest.key_id] + [latest]
    plan = plan_rotation(
        app.passwords,
        assumed,
        latest,
        now=now,
        policy=policy,
        expects_secret=expects_secret(app, service_tag),
    )
    if plan.changes or latest is None or latest.created_on is None:
        return plan
    # A credential issued around (or after) the current version, yet not the one it holds, is
    # likely an orphan: an addPassword whose answer was lost, or a process that died before the
    # vault write. Once older than the safety age it is proven dead: the worker, which reads the
    # version history, removes it if its value is indeed stored nowhere.
    suspects = [
        p
        for p in app.passwords
        if origin_of(p.display_name) is not None
        and p.key_id != latest.key_id
        and p.start > latest.created_on - policy.safety_age
        and now - p.start >= policy.safety_age
    ]
    checks = tuple(Step("cleanup", "suspected-not-stored", p.key_id) for p in suspects)
    return Plan(before=plan.before, rotate=plan.rotate, after=(*plan.after, *checks))


def needs_vault_read(app: AppRecord, service_tag: str) -> bool:
    """Between vault audits (the scheduler, on a day it does not list the vault): whether triage
    needs this application's current version read from the vault.

    Not when the application holds exactly one managed credential: triage assumes the
    unversioned secret resolves to it (``assumed_latest``), as it does after every clean
    registration and rotation. Not for a certificate's application, nor for one that holds no
    managed credential and expects no secret (a public client): no plan of theirs depends on it.
    Otherwise it does: no managed credential while a secret is expected (removed by hand, or never
    stored), or two and more (an overlap, a suspected orphan), where which one the secret holds
    decides the plan."""
    if credential_type_tag(app.tags) == CERTIFICATE:
        return False
    managed = sum(1 for p in app.passwords if origin_of(p.display_name) is not None)
    if managed == 1:
        return False
    return managed > 1 or expects_secret(app, service_tag)


def assumed_latest(app: AppRecord) -> StoredVersion | None:
    """The current version triage assumes when it reads no vault (``needs_vault_read`` false):
    the one managed credential's (its keyId, enabled, created at its start), else None."""
    managed = [p for p in app.passwords if origin_of(p.display_name) is not None]
    if len(managed) != 1:
        return None
    return _assumed_stored(managed[0])


def _assumed_stored(password: PasswordInfo) -> StoredVersion:
    """The version that would hold ``password`` had it been stored when it was issued."""
    return StoredVersion(
        id="",
        version=f"assumed-{password.key_id}",
        key_id=password.key_id,
        enabled=True,
        expires_on=password.end,
        created_on=password.start,
        tags={},
    )


def expects_secret(app: AppRecord, service_tag: str) -> bool:
    """Whether the application was registered with a secret (public clients have none)."""
    return service_tag in app.tags and credential_type_tag(app.tags) == "secret"
