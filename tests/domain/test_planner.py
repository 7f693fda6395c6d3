"""The rotation planner as a pure function over plain data: no I/O, no clock but ``NOW``."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from shared.domain.planner import Plan, Policy, Step, plan_rotation, rotate_at, triage
from shared.domain.records import AppRecord, PasswordInfo, StoredVersion

NOW = dt.datetime(2027, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
POLICY = Policy(window=30 * DAY, grace=dt.timedelta(hours=48), safety_age=dt.timedelta(hours=1))
TAG = "managed-by:entra-app-registration-service"
_versions = itertools.count(1)


def pw(key: str, start: dt.datetime, end: dt.datetime, origin: str | None = "rotation:x") -> PasswordInfo:
    name = "job" if origin is None else f"job [managed:{origin}]"
    return PasswordInfo(key_id=key, display_name=name, hint="abc", start=start, end=end)


def ver(
    key: str | None, created: dt.datetime, enabled: bool = True, version: str | None = None
) -> StoredVersion:
    version = version or f"v{next(_versions):04d}"
    tags = {"keyId": key} if key else {}
    return StoredVersion(
        id=f"https://vault/secrets/app-x/{version}",
        version=version,
        key_id=key,
        enabled=enabled,
        expires_on=None,
        created_on=created,
        tags=tags,
    )


def stored(
    key: str, start: dt.datetime, end: dt.datetime, **kw: object
) -> tuple[PasswordInfo, StoredVersion]:
    return pw(key, start, end, **kw), ver(key, start)  # type: ignore[arg-type]


def plan(
    passwords: list[PasswordInfo],
    versions: list[StoredVersion],
    latest: StoredVersion | None = None,
    **kw: object,
) -> Plan:
    if latest is None and versions:
        latest = max((v for v in versions if v.enabled), key=lambda v: v.version, default=None)
    return plan_rotation(passwords, versions, latest, now=kw.pop("now", NOW), policy=POLICY, **kw)  # type: ignore[arg-type]


def actions(p: Plan) -> list[tuple[str, str, str | None]]:
    return [(s.action, s.reason, s.key_id) for s in p.steps]


def removed(p: Plan) -> set[str]:
    return {s.key_id for s in p.steps if s.action in ("retire", "cleanup") and s.key_id}


# -- rotate -------------------------------------------------------------------------------


def test_a_fresh_stored_credential_needs_nothing() -> None:
    p, v = stored("a", NOW - 10 * DAY, NOW + 170 * DAY)
    assert not plan([p], [v]).changes


def test_exactly_at_the_window_rotates_one_second_before_does_not() -> None:
    p, v = stored("a", NOW - 150 * DAY, NOW + 30 * DAY)
    assert plan([p], [v]).rotate == Step("rotate", "expiring")
    p2, v2 = stored("b", NOW - 150 * DAY, NOW + 30 * DAY + dt.timedelta(seconds=1))
    assert plan([p2], [v2]).rotate is None


def test_a_secret_shorter_than_twice_the_window_rotates_at_half_its_life() -> None:
    p, v = stored("a", NOW - 10 * DAY, NOW + 20 * DAY)  # a P30D secret, 10 days old
    assert plan([p], [v]).rotate is None
    assert rotate_at(p, POLICY.window) == NOW + 5 * DAY
    assert plan([p], [v], now=NOW + 5 * DAY).rotate == Step("rotate", "expiring")


def test_the_clock_past_expiry_rotates_and_retires_the_expired_one_only_after() -> None:
    p, v = stored("a", NOW - 200 * DAY, NOW - DAY)
    result = plan([p], [v])
    assert result.rotate == Step("rotate", "expired")
    assert removed(result) == set()  # the new one is stored before the old one goes
    # the next pass, with the new credential stored, retires the expired one at once
    n, nv = stored("n", NOW, NOW + 180 * DAY)
    after = plan([p, n], [v, nv], latest=nv)
    assert ("retire", "expired", "a") in actions(after)
    assert after.rotate is None


def test_exactly_at_end_is_expired() -> None:
    p, v = stored("a", NOW - 180 * DAY, NOW)
    assert plan([p], [v]).rotate == Step("rotate", "expired")


def test_a_credential_whose_value_is_missing_is_rotated() -> None:
    p = pw("a", NOW - 10 * DAY, NOW + 170 * DAY)
    assert plan([p], []).rotate == Step("rotate", "not-stored")
    disabled = ver("a", NOW - 10 * DAY, enabled=False)
    assert plan([p], [disabled], latest=None).rotate == Step("rotate", "not-stored")


def test_latest_version_pointing_at_a_gone_credential_rotates_and_is_never_disabled() -> None:
    p, v = stored("a", NOW - 10 * DAY, NOW + 170 * DAY)
    gone = ver("gone", NOW - 5 * DAY)
    result = plan([p], [v, gone], latest=gone)
    assert result.rotate == Step("rotate", "latest-not-valid")
    assert all(gone not in s.versions for s in result.steps)


def test_a_just_stored_version_graph_does_not_show_yet_suppresses_rotation() -> None:
    p, v = stored("a", NOW - 170 * DAY, NOW + 10 * DAY)
    pending = ver("new", NOW - dt.timedelta(minutes=1))
    result = plan([p], [v, pending], latest=pending)
    assert result.rotate is None
    assert not any(s.reason == "dangling-version" for s in result.steps)


def test_public_clients_without_secret_get_none() -> None:
    assert plan([], [], expects_secret=False).rotate is None
    assert plan([], [], expects_secret=True).rotate == Step("rotate", "not-stored")


def test_forced_rotation_once_per_origin() -> None:
    p, v = stored("a", NOW - 10 * DAY, NOW + 170 * DAY)
    assert plan([p], [v], force=True, origin="REQ-1").rotate == Step("rotate", "requested")
    n, nv = stored("n", NOW, NOW + 180 * DAY, origin="REQ-1")
    assert plan([p, n], [v, nv], latest=nv, force=True, origin="REQ-1").rotate is None


def test_may_rotate_false_never_rotates() -> None:
    p, v = stored("a", NOW - 200 * DAY, NOW - DAY)
    assert plan([p], [v], may_rotate=False).rotate is None


# -- retire -------------------------------------------------------------------------------


def test_superseded_exactly_at_the_grace_period_is_retired_not_before() -> None:
    old, old_v = stored("old", NOW - 160 * DAY, NOW + 20 * DAY)
    new, new_v = stored("new", NOW - POLICY.grace, NOW + 180 * DAY)
    result = plan([old, new], [old_v, new_v], latest=new_v)
    [step] = [s for s in result.steps if s.action == "retire"]
    assert (step.reason, step.key_id, step.versions) == ("superseded", "old", (old_v,))
    early = plan([old, new], [old_v, new_v], latest=new_v, now=NOW - dt.timedelta(seconds=1))
    assert removed(early) == set()


def test_grace_is_measured_from_the_later_of_start_and_version_creation() -> None:
    old, old_v = stored("old", NOW - 160 * DAY, NOW + 20 * DAY)
    new = pw("new", NOW - 10 * DAY, NOW + 180 * DAY)
    new_v = ver("new", NOW - DAY)  # stored only yesterday
    assert removed(plan([old, new], [old_v, new_v], latest=new_v)) == set()


def test_the_only_stored_valid_credential_is_never_removed() -> None:
    # newer credentials exist but none is stored: the stored one stays
    keep, keep_v = stored("keep", NOW - 170 * DAY, NOW + 10 * DAY)
    orphan = pw("orphan", NOW - 5 * DAY, NOW + 175 * DAY)
    result = plan([keep, orphan], [keep_v], latest=keep_v)
    assert "keep" not in removed(result)
    assert ("cleanup", "not-stored", "orphan") in actions(result)
    assert result.rotate == Step("rotate", "expiring")


def test_the_credential_behind_the_latest_version_is_never_retired() -> None:
    a, a_v = stored("a", NOW - 100 * DAY, NOW + 80 * DAY)
    b, b_v = stored("b", NOW - 50 * DAY, NOW + 130 * DAY)
    result = plan([a, b], [a_v, b_v], latest=a_v)  # latest resolves to the older one
    assert "a" not in removed(result)


# -- clean up -----------------------------------------------------------------------------


def test_unstored_credentials_go_only_after_the_safety_age_whoever_issued_them() -> None:
    keep, keep_v = stored("keep", NOW - 10 * DAY, NOW + 170 * DAY)
    young = pw("young", NOW - dt.timedelta(minutes=5), NOW + 180 * DAY, origin="rotation:2027-06-01")
    old = pw("old", NOW - dt.timedelta(hours=1), NOW + 180 * DAY, origin="REQ-9")
    result = plan([keep, young, old], [keep_v], latest=keep_v)
    assert removed(result) == {"old"}
    # even the delivery that issued it leaves a young one: its write may still land
    assert removed(plan([keep, young], [keep_v], latest=keep_v, origin="rotation:2027-06-01")) == set()


def test_dangling_versions_are_disabled_but_not_the_latest_or_a_young_one() -> None:
    keep, keep_v = stored("keep", NOW - 10 * DAY, NOW + 170 * DAY)
    dangling = ver("gone", NOW - 20 * DAY)
    young = ver("pending", NOW - dt.timedelta(minutes=2))
    manual = ver(None, NOW - 30 * DAY)
    result = plan([keep], [dangling, young, manual, keep_v], latest=keep_v)
    disabled = [v for s in result.steps for v in s.versions]
    assert disabled == [dangling]


# -- never touched, never more than three ---------------------------------------------------


def test_unmanaged_credentials_are_reported_never_removed() -> None:
    hand = pw("hand", NOW - 400 * DAY, NOW - 30 * DAY, origin=None)
    p, v = stored("a", NOW - 200 * DAY, NOW - DAY)
    result = plan([hand, p], [v])
    assert "hand" not in removed(result)
    assert ("report", "unmanaged-credential", "hand") in actions(result)


def test_a_rotation_never_pushes_past_three_credentials() -> None:
    a, a_v = stored("a", NOW - 170 * DAY, NOW + 10 * DAY)
    b, b_v = stored("b", NOW - 171 * DAY, NOW + 9 * DAY)
    hand = pw("hand", NOW - 10 * DAY, NOW + 300 * DAY, origin=None)
    result = plan([a, b, hand], [b_v, a_v], latest=a_v)
    assert result.rotate is not None
    assert [(s.action, s.key_id) for s in result.before] == [("retire", "b")]
    assert "a" not in removed(result)


def test_room_is_made_first_from_what_goes_anyway() -> None:
    a, a_v = stored("a", NOW - 170 * DAY, NOW + 10 * DAY)
    orphan = pw("orphan", NOW - 2 * DAY, NOW + 178 * DAY)
    old, old_v = stored("old", NOW - 300 * DAY, NOW + 12 * DAY)
    result = plan([a, orphan, old], [old_v, a_v], latest=a_v)
    assert [(s.action, s.reason, s.key_id) for s in result.before] == [("cleanup", "not-stored", "orphan")]


def test_no_room_without_removing_the_only_stored_one_is_reported() -> None:
    a, a_v = stored("a", NOW - 170 * DAY, NOW + 10 * DAY)
    hands = [pw(f"h{i}", NOW - DAY, NOW + 300 * DAY, origin=None) for i in range(2)]
    result = plan([a, *hands], [a_v], latest=a_v)
    assert result.rotate is None
    assert ("report", "credential-limit", None) in actions(result)
    assert removed(result) == set()


@pytest.mark.parametrize("seed", range(200))
def test_random_states_keep_the_invariants(seed: int) -> None:
    """Whatever the state, the plan never removes the keeper or an unmanaged credential, never
    disables the latest version, and leaves room for what it rotates."""
    rng = random.Random(seed)
    passwords, versions = [], []
    for i in range(rng.randint(0, 3)):
        start = NOW - rng.randint(0, 400) * DAY
        end = start + rng.choice([30, 90, 180, 365]) * DAY
        origin = rng.choice([None, "rotation:x", "REQ-1"])
        passwords.append(pw(f"k{i}", start, end, origin=origin))
        if origin and rng.random() < 0.8:
            versions.append(ver(f"k{i}", start, enabled=rng.random() < 0.9))
    if rng.random() < 0.2:
        versions.append(ver("gone", NOW - rng.randint(0, 30) * DAY))
    versions.sort(key=lambda v: v.created_on or NOW)
    latest = versions[-1] if versions and versions[-1].enabled else None
    result = plan_rotation(
        passwords, versions, latest, now=NOW, policy=POLICY, force=rng.random() < 0.2, origin="REQ-1"
    )
    gone = removed(result)
    unmanaged = {p.key_id for p in passwords if "[managed:" not in p.display_name}
    assert not gone & unmanaged
    assert all(latest not in s.versions for s in result.steps)
    if latest is not None and latest.key_id:
        assert latest.key_id not in gone
    stored_valid = {
        p.key_id
        for p in passwords
        if p.start <= NOW < p.end and any(v.enabled and v.key_id == p.key_id for v in versions)
    }
    if stored_valid:
        assert stored_valid - gone, "the last stored valid credential was planned away"
    before = {s.key_id for s in result.before}
    if result.rotate is not None:
        assert len(passwords) - len(before) + 1 <= 3


def test_triage_assumes_managed_credentials_stored() -> None:
    app = AppRecord(
        object_id="o",
        app_id="a",
        unique_name="x",
        display_name="",
        tags=(TAG, "credential-lifetime:P6M"),
        passwords=(pw("a", NOW - 10 * DAY, NOW + 170 * DAY),),
    )
    current = ver("a", NOW - 10 * DAY)
    assert not triage(app, current, now=NOW, policy=POLICY, service_tag=TAG).changes
    # no secret in the vault at all: rotate
    assert triage(app, None, now=NOW, policy=POLICY, service_tag=TAG).rotate is not None
    expiring = AppRecord("o", "a", "x", "", (TAG,), (pw("a", NOW - 170 * DAY, NOW + 10 * DAY),))
    assert triage(expiring, current, now=NOW, policy=POLICY, service_tag=TAG).rotate == Step(
        "rotate", "expiring"
    )
    public = AppRecord("o", "a", "x", "", (TAG,), ())
    assert not triage(public, None, now=NOW, policy=POLICY, service_tag=TAG).changes
    # the vault's current version names a credential that is gone: rotate
    gone = ver("gone", NOW - 10 * DAY)
    assert triage(app, gone, now=NOW, policy=POLICY, service_tag=TAG).rotate == Step(
        "rotate", "latest-not-valid"
    )
