"""Pure decisions about an application's client secrets, over plain data.

A credential is *managed* when its display name carries the service's marker
(shared.domain.stored), and *stored* when an enabled version of the app's Key Vault secret is
tagged with its ``keyId``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.domain.records import PasswordInfo, StoredVersion
from shared.domain.stored import origin_of


@dataclass(frozen=True)
class Credential:
    """A password credential joined with the Key Vault version that holds its value."""

    info: PasswordInfo
    origin: str | None
    stored: StoredVersion | None

    @property
    def key_id(self) -> str:
        return self.info.key_id

    @property
    def managed(self) -> bool:
        return self.origin is not None

    def valid_at(self, now: dt.datetime) -> bool:
        return self.info.start <= now < self.info.end


def join(passwords: Iterable[PasswordInfo], versions: Iterable[StoredVersion]) -> list[Credential]:
    enabled = {v.key_id: v for v in versions if v.enabled and v.key_id}
    return [Credential(p, origin_of(p.display_name), enabled.get(p.key_id)) for p in passwords]


def dangling_versions(
    passwords: Iterable[PasswordInfo], versions: Iterable[StoredVersion]
) -> list[StoredVersion]:
    """Enabled versions whose credential no longer exists on the app: their value opens nothing."""
    key_ids = {p.key_id for p in passwords}
    return [v for v in versions if v.enabled and v.key_id not in key_ids]


@dataclass(frozen=True)
class SecretPlan:
    """What a registration does about the app's secret before (maybe) issuing a new one."""

    reuse: Credential | None
    remove: tuple[str, ...]


def plan_registration_secret(
    passwords: Sequence[PasswordInfo],
    versions: Sequence[StoredVersion],
    latest: StoredVersion | None,
    *,
    now: dt.datetime,
    safety_age: dt.timedelta,
) -> SecretPlan:
    """Reuse the credential the unversioned Key Vault secret resolves to if it is the
    service's, exists and is valid now; otherwise a new one is issued. Credentials the service
    created whose value is in no enabled version are removed (never anyone else's) only once
    proven dead: older than ``safety_age``. Younger, its value may still be on its way to the
    vault (a delivery that lost its lease while its write was in flight), and the write would
    make it the latest version: a redelivery alone proves nothing (docs/reliability.md)."""
    credentials = join(passwords, versions)
    remove = tuple(
        c.key_id for c in credentials if c.managed and c.stored is None and now - c.info.start >= safety_age
    )
    reuse = None
    if latest is not None and latest.enabled:
        reuse = next(
            (c for c in credentials if c.key_id == latest.key_id and c.managed and c.valid_at(now)),
            None,
        )
    return SecretPlan(reuse=reuse, remove=remove)
