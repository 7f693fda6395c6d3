"""``Dependencies``: everything a workflow needs, handed in once (shared.bootstrap builds it).

The workflows are functions over this object; nothing in them reaches for a global.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from shared.services.ports import (
    Applications,
    Certificates,
    Consent,
    KeyCredentials,
    Leases,
    Outbox,
    RoleAssignments,
    Vault,
)
from shared.settings import Settings

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Dependencies:
    """The settings, the ports to the platform, and the clock decisions are made by."""

    settings: Settings
    applications: Applications
    consent: Consent
    vault: Vault
    leases: Leases
    role_assignments: RoleAssignments
    outbox: Outbox
    keys: KeyCredentials
    certificates: Certificates
    # The real time, or the emulator's when the service runs on one (shared.testing.use_clock).
    clock: Clock = utc_now
    # The service identity's own service principal, looked up once (the rotation sweep lists
    # what it owns).
    service_principal_id: str | None = None

    def now(self) -> dt.datetime:
        return self.clock()
