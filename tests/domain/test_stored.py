"""Every stored format: the credential marker, application tags, Key Vault names and tags."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain import stored
from shared.domain.stored import (
    application_tags,
    credential_name,
    decommission_record,
    description_of,
    lifetime_label,
    lifetime_tag,
    origin_of,
    rotation_origin,
    secret_name,
    version_tags,
)

UTC = dt.UTC
SERVICE_TAG = "managed-by:entra-app-registration-service"


# ---------------------------------------------------------------- the credential marker


@pytest.mark.parametrize(
    ("description", "origin"),
    [
        ("ingest job", "SNOW-CHG0012345"),
        ("client secret", "rotation:2027-06-01"),
        ("with [brackets] inside", "REQ-1"),
        ("", "REQ-2"),
    ],
)
def test_the_marker_round_trips(description: str, origin: str) -> None:
    name = credential_name(description, origin)
    assert name.endswith(f"[managed:{origin}]")
    assert origin_of(name) == origin
    assert description_of(name) == (description or stored.DEFAULT_DESCRIPTION)


@pytest.mark.parametrize(
    "display_name",
    ["added by hand", "", "[managed:x] not at the end", "managed:x", "[managed:x"],
)
def test_a_credential_without_the_marker_has_no_origin(display_name: str) -> None:
    assert origin_of(display_name) is None


def test_description_of_a_hand_made_credential_is_its_name() -> None:
    assert description_of("added by hand") == "added by hand"
    assert description_of("  padded  ") == "padded"
    assert description_of("") == stored.DEFAULT_DESCRIPTION
    assert description_of("   [managed:REQ-1]") == stored.DEFAULT_DESCRIPTION


def test_rotations_of_one_day_share_an_origin() -> None:
    morning = dt.datetime(2027, 6, 1, 0, 0, tzinfo=UTC)
    evening = dt.datetime(2027, 6, 1, 23, 59, 59, tzinfo=UTC)
    assert rotation_origin(morning) == rotation_origin(evening) == "rotation:2027-06-01"
    assert rotation_origin(morning + dt.timedelta(days=1)) == "rotation:2027-06-02"
    assert origin_of(credential_name("job", rotation_origin(morning))) == "rotation:2027-06-01"


# ---------------------------------------------------------------- application tags


def test_application_tags_with_a_secret_record_its_lifetime() -> None:
    tags = application_tags(SERVICE_TAG, "SNOW-1", "alice@contoso.com", "P6M")
    assert tags[0] == SERVICE_TAG
    assert "request:SNOW-1" in tags
    assert "credential-lifetime:P6M" in tags
    assert lifetime_tag(tags) == "P6M"


def test_application_tags_without_a_secret_record_no_lifetime() -> None:
    tags = application_tags(SERVICE_TAG, "SNOW-1", "alice@contoso.com", None)
    assert not any(t.startswith(stored.LIFETIME_TAG) for t in tags)
    assert lifetime_tag(tags) is None


def test_lifetime_tag_reads_the_first_lifetime_among_other_tags() -> None:
    assert lifetime_tag(["other", "credential-lifetime:P90D", "credential-lifetime:P3M"]) == "P90D"
    assert lifetime_tag([]) is None
    assert lifetime_tag(["credential-lifetime"]) is None


@pytest.mark.parametrize(
    ("start", "end", "label"),
    [
        # the portal's choices, in calendar months
        (dt.datetime(2026, 1, 15, 9, 30, tzinfo=UTC), dt.datetime(2026, 4, 15, 9, 30, tzinfo=UTC), "P3M"),
        (dt.datetime(2026, 1, 15, tzinfo=UTC), dt.datetime(2026, 7, 15, tzinfo=UTC), "P6M"),
        (dt.datetime(2026, 1, 15, tzinfo=UTC), dt.datetime(2027, 1, 15, tzinfo=UTC), "P12M"),
        (dt.datetime(2026, 1, 15, tzinfo=UTC), dt.datetime(2028, 1, 15, tzinfo=UTC), "P24M"),
        # months clamp to the end of a shorter month
        (dt.datetime(2025, 8, 31, tzinfo=UTC), dt.datetime(2026, 2, 28, tzinfo=UTC), "P6M"),
        (dt.datetime(2024, 2, 29, tzinfo=UTC), dt.datetime(2025, 2, 28, tzinfo=UTC), "P12M"),
        # anything else: whole days, at least one
        (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 2, 1, tzinfo=UTC), "P31D"),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 6, 30, tzinfo=UTC), "P180D"),
        (dt.datetime(2026, 1, 15, tzinfo=UTC), dt.datetime(2026, 7, 15, 0, 0, 1, tzinfo=UTC), "P181D"),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, 12, tzinfo=UTC), "P1D"),
    ],
)
def test_lifetime_label(start: dt.datetime, end: dt.datetime, label: str) -> None:
    assert lifetime_label(start, end) == label


# ---------------------------------------------------------------- Key Vault


def test_secret_name() -> None:
    assert secret_name("dicom-ingest-prod") == "app-dicom-ingest-prod"
    assert secret_name("a") == "app-a"


def test_version_tags() -> None:
    tags = version_tags(
        key_id="k-1",
        app_id="a-1",
        unique_name="dicom-ingest-prod",
        origin="SNOW-1",
        lifetime="P6M",
        service_tag=SERVICE_TAG,
        requested_by="alice@contoso.com",
        owner="CHG-OWNER-1",
    )
    assert tags[stored.KEY_ID] == "k-1"
    assert tags[stored.APP_ID] == "a-1"
    assert tags[stored.UNIQUE_NAME] == "dicom-ingest-prod"
    assert tags[stored.ORIGIN] == "SNOW-1"
    assert tags[stored.LIFETIME] == "P6M"
    assert tags[stored.MANAGED_BY] == "entra-app-registration-service"  # the tag's value, not its prefix
    assert all(isinstance(value, str) for value in tags.values())


def test_version_tags_of_a_service_tag_without_a_prefix() -> None:
    tags = version_tags(
        key_id="k",
        app_id="a",
        unique_name="u",
        origin="o",
        lifetime="P3M",
        service_tag="plain",
        requested_by="bob",
        owner=None,
    )
    assert tags[stored.MANAGED_BY] == "plain"


def test_decommission_record_keeps_the_tags_and_adds_what_a_redelivery_needs() -> None:
    tags = {stored.KEY_ID: "k-1", stored.UNIQUE_NAME: "dicom-ingest-prod"}
    record = decommission_record(tags, "SNOW-9", "obj-1", "app-1", "DICOM ingest (prod)", "CHG-OWNER-1")
    assert record[stored.KEY_ID] == "k-1" and record[stored.UNIQUE_NAME] == "dicom-ingest-prod"
    assert record[stored.DECOMMISSIONED_BY] == "SNOW-9"
    assert record[stored.OBJECT_ID] == "obj-1"
    assert record[stored.APP_ID] == "app-1"
    assert record[stored.OWNER] == "CHG-OWNER-1"
    assert not stored.is_record(record)
    assert stored.is_record({**record, stored.KIND: stored.RECORD})
    assert record[stored.DISPLAY_NAME] == "DICOM ingest (prod)"
    assert tags == {stored.KEY_ID: "k-1", stored.UNIQUE_NAME: "dicom-ingest-prod"}  # not changed
