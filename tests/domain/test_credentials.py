"""The registration's secret decisions, as pure functions over plain data."""

from __future__ import annotations

import datetime as dt

from shared.domain.credentials import dangling_versions, plan_registration_secret
from shared.domain.records import PasswordInfo, StoredVersion
from shared.domain.stored import credential_name, origin_of

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def password(
    key_id: str, origin: str | None = "REQ-1", *, age: dt.timedelta = HOUR, days: int = 180
) -> PasswordInfo:
    start = NOW - age
    name = credential_name("job", origin) if origin else "added by hand"
    return PasswordInfo(key_id, name, key_id[:3], start, start + dt.timedelta(days=days))


def version(key_id: str, number: int, *, enabled: bool = True) -> StoredVersion:
    return StoredVersion(
        id=f"https://vault/secrets/app-x/v{number}",
        version=f"v{number}",
        key_id=key_id,
        enabled=enabled,
        expires_on=None,
        created_on=NOW,
        tags={"keyId": key_id},
    )


def plan(
    passwords: list[PasswordInfo], versions: list[StoredVersion], latest: StoredVersion | None, **kw: object
):
    options: dict[str, object] = {"now": NOW, "safety_age": HOUR}
    options.update(kw)
    return plan_registration_secret(passwords, versions, latest, **options)  # type: ignore[arg-type]


def test_the_marker_round_trips_and_tells_hand_made_credentials_apart() -> None:
    assert origin_of(credential_name("ingest job", "SNOW-1")) == "SNOW-1"
    assert origin_of("ingest job") is None
    assert origin_of("[managed:x] but not at the end") is None


def test_a_stored_valid_credential_the_latest_version_names_is_reused() -> None:
    stored = version("k1", 1)
    result = plan([password("k1")], [stored], stored)
    assert result.reuse is not None and result.reuse.key_id == "k1"
    assert result.remove == ()


def test_an_expired_credential_is_not_reused() -> None:
    stored = version("k1", 1)
    result = plan([password("k1", age=dt.timedelta(days=200), days=180)], [stored], stored)
    assert result.reuse is None


def test_a_hand_made_credential_is_never_reused_nor_removed() -> None:
    stored = version("k1", 1)
    result = plan([password("k1", origin=None, age=dt.timedelta(days=5))], [stored], stored)
    assert result.reuse is None
    hand_made_unstored = plan([password("k2", origin=None, age=dt.timedelta(days=5))], [], None)
    assert hand_made_unstored.remove == ()


def test_a_young_unstored_credential_is_never_removed_even_of_this_request() -> None:
    # Its value may still be on its way to the vault (a delivery that lost its lease while its
    # write was in flight): removed now, the write would land as the latest version.
    young = password("k1", age=dt.timedelta(seconds=5))
    assert plan([young], [], None).remove == ()


def test_an_unstored_credential_older_than_the_safety_age_is_removed_whoever_made_it() -> None:
    other_request = password("k1", origin="REQ-0", age=HOUR)
    assert plan([other_request], [], None).remove == ("k1",)
    just_younger = password("k2", origin="REQ-0", age=HOUR - dt.timedelta(seconds=1))
    assert plan([just_younger], [], None).remove == ()


def test_a_disabled_latest_version_means_a_new_secret() -> None:
    disabled = version("k1", 1, enabled=False)
    result = plan([password("k1")], [disabled], None)
    assert result.reuse is None


def test_dangling_versions_are_those_whose_credential_is_gone() -> None:
    versions = [version("gone", 1), version("here", 2), version("off", 3, enabled=False)]
    assert [v.version for v in dangling_versions([password("here")], versions)] == ["v1"]
