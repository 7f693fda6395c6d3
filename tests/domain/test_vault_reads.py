"""Between vault audits, the sweep reads an application's secret only when Graph shows something
its plan needs the vault for: ``needs_vault_read`` and ``assumed_latest``, pure, no I/O.
(Which days are vault audits: tests/e2e/test_rotation_vault_audit.py.)"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from shared.domain import stored
from shared.domain.planner import assumed_latest, needs_vault_read, triage
from shared.domain.records import AppRecord, PasswordInfo
from tests.domain.test_planner import DAY, NOW, POLICY, TAG, pw, ver

SECRET = stored.application_tags(TAG, "REQ-1", "alice@contoso.com", "P6M")
PUBLIC = stored.application_tags(TAG, "REQ-1", "alice@contoso.com", None)
CERTIFICATE = stored.application_tags(TAG, "REQ-1", "alice@contoso.com", "P6M", "certificate")


def app(*passwords: PasswordInfo, tags: tuple[str, ...] = SECRET) -> AppRecord:
    return AppRecord("o", "a", "x", "x", tags, tuple(passwords))


def fresh(key: str, origin: str | None = "rotation:x") -> PasswordInfo:
    return pw(key, NOW - 10 * DAY, NOW + 170 * DAY, origin=origin)


def actions(a: AppRecord, latest: object) -> list[tuple[str, str, str | None]]:
    plan = triage(a, latest, now=NOW, policy=POLICY, service_tag=TAG)  # type: ignore[arg-type]
    return [(s.action, s.reason, s.key_id) for s in plan.steps]


# -- which applications need a read --------------------------------------------------------------


def test_one_managed_credential_needs_no_read_and_is_assumed_current() -> None:
    a = app(fresh("a"))
    assert not needs_vault_read(a, TAG)
    latest = assumed_latest(a)
    assert latest is not None
    assert (latest.key_id, latest.enabled, latest.created_on) == ("a", True, NOW - 10 * DAY)


def test_credentials_added_by_hand_do_not_count() -> None:
    a = app(fresh("a"), fresh("by-hand", origin=None))
    assert not needs_vault_read(a, TAG)
    assert assumed_latest(a) is not None and assumed_latest(a).key_id == "a"  # type: ignore[union-attr]
    assert needs_vault_read(app(fresh("by-hand", origin=None)), TAG)  # no managed one left: read


def test_no_managed_credential_on_a_secret_application_needs_a_read() -> None:
    """Removed by hand, or never stored: only the vault says what the secret resolves to."""
    a = app()
    assert needs_vault_read(a, TAG)
    assert assumed_latest(a) is None


def test_two_and_more_managed_credentials_need_a_read() -> None:
    """An overlap, a suspected orphan, a retirement due: which one the secret holds decides."""
    assert needs_vault_read(app(fresh("a"), fresh("b")), TAG)
    assert needs_vault_read(app(fresh("a"), fresh("b"), fresh("c")), TAG)
    assert assumed_latest(app(fresh("a"), fresh("b"))) is None


def test_public_clients_and_certificates_need_no_read() -> None:
    assert not needs_vault_read(app(tags=PUBLIC), TAG)
    assert assumed_latest(app(tags=PUBLIC)) is None
    assert not needs_vault_read(app(tags=CERTIFICATE), TAG)
    assert not needs_vault_read(app(fresh("a"), fresh("b"), tags=CERTIFICATE), TAG)


# -- what the assumption decides -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(200))
def test_the_assumption_plans_as_the_vault_would_when_the_secret_holds_the_credential(seed: int) -> None:
    """One managed credential, any validity, with or without hand-made ones: triage over the
    assumed current version plans exactly what it plans over the vault's, when the vault's
    current version holds that credential (what every clean registration and rotation leaves)."""
    rng = random.Random(seed)
    start = NOW - rng.randint(0, 800) * DAY + dt.timedelta(minutes=rng.randint(0, 1440))
    end = start + rng.choice([1, 20, 60, 90, 180, 365, 730]) * DAY
    passwords = [pw("m", start, end)]
    passwords += [
        pw(f"h{i}", NOW - rng.randint(0, 300) * DAY, NOW + rng.randint(-30, 300) * DAY, origin=None)
        for i in range(rng.randint(0, 2))
    ]
    rng.shuffle(passwords)
    a = app(*passwords)
    assert not needs_vault_read(a, TAG)
    vault = ver("m", start + dt.timedelta(seconds=rng.randint(0, 5)))
    assert actions(a, assumed_latest(a)) == actions(a, vault)


@pytest.mark.parametrize("latest", [None, "gone", "unknown-young"])
def test_no_plan_of_an_application_without_a_secret_depends_on_the_vault(latest: str | None) -> None:
    version = {
        None: None,
        "gone": ver("gone", NOW - 30 * DAY),
        "unknown-young": ver("unknown", NOW - dt.timedelta(minutes=5)),
    }[latest]
    for a in (app(tags=PUBLIC), app(fresh("by-hand", origin=None), tags=PUBLIC)):
        assert not needs_vault_read(a, TAG)
        assert actions(a, version) == actions(a, assumed_latest(a))
        assert not triage(a, version, now=NOW, policy=POLICY, service_tag=TAG).changes


def test_a_damaged_secret_is_what_the_assumption_cannot_see() -> None:
    """The trade of the days between audits: a current version set by hand with another keyId,
    behind a healthy-looking credential, is found only by the vault (on audit days)."""
    a = app(fresh("a"))
    assert actions(a, assumed_latest(a)) == []
    assert ("rotate", "latest-not-valid", None) in actions(a, ver("set-by-hand", NOW - 2 * DAY))
