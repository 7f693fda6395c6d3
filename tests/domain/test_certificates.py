"""The certificate decisions (shared.domain.certificates), over plain data, without I/O."""

from __future__ import annotations

import base64
import datetime as dt
import json

from shared.domain import certificates as certs
from shared.domain.planner import Policy
from shared.domain.records import CertificateVersion, KeyInfo
from shared.domain.stored import APP_ID, ORIGIN, credential_name, origin_of

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
POLICY = Policy(window=30 * DAY, grace=2 * DAY, safety_age=dt.timedelta(hours=1))


def version(n: int, *, created: dt.datetime, days: int = 365, enabled: bool = True, origin: str = "REQ-1"):
    return CertificateVersion(
        id=f"https://vault/certificates/cert-x/v{n}",
        version=f"v{n}",
        thumbprint=f"{n:040X}",
        enabled=enabled,
        not_before=created,
        expires_on=created + days * DAY,
        created_on=created,
        tags={ORIGIN: origin, APP_ID: "app"},
    )


def key(v: CertificateVersion, *, managed: bool = True) -> KeyInfo:
    assert v.not_before is not None and v.expires_on is not None
    name = certs.key_display_name(v.tags[ORIGIN]) if managed else "someone's certificate"
    return KeyInfo(
        key_id=f"key-{v.version}",
        display_name=name,
        thumbprint=v.thumbprint,
        start=v.not_before,
        end=v.expires_on,
    )


def test_thumbprint_is_the_portals_sha1_hex_and_graphs_identifier_round_trips() -> None:
    cer = b"not really a certificate"
    thumbprint = certs.thumbprint_of(cer)
    assert len(thumbprint) == 40 and thumbprint == thumbprint.upper()
    assert certs.thumbprint_from_identifier(bytes.fromhex(thumbprint)) == thumbprint


def test_the_proof_has_graphs_claims_and_no_padding() -> None:
    data = certs.proof_signing_input("object-id", b"cer", NOW).decode()
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in data.split("."))
    assert header["alg"] == "RS256" and "x5t" in header
    assert claims["aud"] == certs.PROOF_AUDIENCE and claims["iss"] == "object-id"
    assert claims["exp"] - claims["nbf"] <= 600
    token = certs.signed_token(data.encode(), b"\xff" * 5)
    assert "=" not in token and token.count(".") == 2


def test_a_long_request_id_still_leaves_the_marker_within_graphs_90_characters() -> None:
    name = certs.key_display_name("R" * 100)
    assert len(name) <= certs.MAX_KEY_DISPLAY_NAME and origin_of(name) is not None


def test_registration_reuses_the_attached_newest_version() -> None:
    v1 = version(1, created=NOW - 10 * DAY)
    plan = certs.plan_registration_certificate([key(v1)], [v1], v1, now=NOW)
    assert plan.reuse is not None and plan.reuse.key_id == "key-v1" and not plan.create


def test_registration_attaches_a_version_an_earlier_attempt_made_and_did_not_attach() -> None:
    v1 = version(1, created=NOW - DAY)
    plan = certs.plan_registration_certificate([], [v1], v1, now=NOW)
    assert plan.attach == v1 and not plan.create


def test_registration_creates_when_the_newest_version_is_disabled_or_not_the_services() -> None:
    disabled = version(1, created=NOW - DAY, enabled=False)
    assert certs.plan_registration_certificate([], [disabled], disabled, now=NOW).create
    foreign = CertificateVersion(**{**vars(version(2, created=NOW - DAY)), "tags": {}})
    assert certs.plan_registration_certificate([], [foreign], foreign, now=NOW).create


def test_the_signer_is_the_newest_attached_valid_managed_certificate() -> None:
    v1, v2 = version(1, created=NOW - 100 * DAY), version(2, created=NOW - DAY)
    assert certs.signer([key(v1), key(v2)], [v1, v2], NOW) == v2
    # someone else's certificate cannot sign for the service; an expired one neither
    assert certs.signer([key(v1, managed=False)], [v1], NOW) is None
    old = version(3, created=NOW - 400 * DAY)
    assert certs.signer([key(old)], [old], NOW) is None


def test_rotation_waits_until_the_window_then_rotates() -> None:
    v1 = version(1, created=NOW - 300 * DAY)
    assert certs.plan_certificate_rotation([key(v1)], [v1], v1, now=NOW, policy=POLICY).rotate is None
    later = NOW + 40 * DAY
    plan = certs.plan_certificate_rotation([key(v1)], [v1], v1, now=later, policy=POLICY)
    assert plan.rotate is not None and plan.rotate.reason == "expiring" and not plan.rotate.versions


def test_rotation_attaches_an_unattached_newest_version_instead_of_making_another() -> None:
    v1, v2 = version(1, created=NOW - 340 * DAY), version(2, created=NOW - DAY, origin="rotation:2026-05-31")
    plan = certs.plan_certificate_rotation([key(v1)], [v1, v2], v2, now=NOW, policy=POLICY)
    # the reason it was made still holds, and it is what the event says
    assert plan.rotate is not None and plan.rotate.reason == "expiring" and plan.rotate.versions == (v2,)
    fresh = version(3, created=NOW - 10 * DAY)
    plan = certs.plan_certificate_rotation([key(fresh)], [fresh, v2], v2, now=NOW, policy=POLICY)
    assert plan.rotate is not None and plan.rotate.reason == "not-attached" and plan.rotate.versions == (v2,)


def test_the_old_key_is_retired_only_after_the_grace_period_with_its_version() -> None:
    v1, v2 = version(1, created=NOW - 340 * DAY), version(2, created=NOW - DAY)
    keys = [key(v1), key(v2)]
    inside = certs.plan_certificate_rotation(keys, [v1, v2], v2, now=NOW, policy=POLICY)
    assert not inside.changes
    after = certs.plan_certificate_rotation(keys, [v1, v2], v2, now=NOW + 2 * DAY, policy=POLICY)
    assert [(s.action, s.reason, s.key_id, s.versions) for s in after.steps] == [
        ("retire", "superseded", "key-v1", (v1,))
    ]


def test_nobody_elses_key_is_touched_and_an_expired_managed_one_goes_once_replaced() -> None:
    v1, v2 = version(1, created=NOW - 400 * DAY), version(2, created=NOW - DAY)
    foreign = KeyInfo("key-x", "hand-made", "F" * 40, NOW - 400 * DAY, NOW - DAY)
    plan = certs.plan_certificate_rotation([foreign, key(v1), key(v2)], [v1, v2], v2, now=NOW, policy=POLICY)
    steps = {(s.action, s.reason, s.key_id) for s in plan.steps}
    assert ("retire", "expired", "key-v1") in steps
    assert ("report", "unmanaged-credential", "key-x") in steps
    assert not any(s.key_id == "key-x" and s.action != "report" for s in plan.steps)


def test_dangling_versions_are_disabled_once_older_than_the_safety_age_never_the_newest() -> None:
    v1, v2, v3 = (version(n, created=NOW - d * DAY) for n, d in ((1, 30), (2, 20), (3, 10)))
    plan = certs.plan_certificate_rotation([key(v2)], [v1, v2, v3], v3, now=NOW, policy=POLICY)
    dangling = [s.versions for s in plan.steps if s.reason == "dangling-version"]
    assert dangling == [(v1,)]


def test_forced_rotation_is_done_once_its_origin_is_attached() -> None:
    v1 = version(1, created=NOW - DAY, origin="REQ-9")
    plan = certs.plan_certificate_rotation(
        [key(v1)], [v1], v1, now=NOW, policy=POLICY, force=True, origin="REQ-9"
    )
    assert plan.rotate is None
    again = certs.plan_certificate_rotation(
        [key(v1)], [v1], v1, now=NOW, policy=POLICY, force=True, origin="REQ-10"
    )
    assert again.rotate is not None and again.rotate.reason == "requested"


def test_the_schedulers_triage_sees_expiry_from_graph_alone() -> None:
    v1 = version(1, created=NOW - 340 * DAY)
    assert certs.triage_certificates([key(v1)], now=NOW, policy=POLICY).rotate is not None
    assert certs.triage_certificates([key(v1)], now=NOW - 100 * DAY, policy=POLICY).rotate is None
    assert credential_name("certificate", "x").endswith("[managed:x]")
