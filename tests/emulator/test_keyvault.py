"""The emulated Key Vault, seen only through azure-keyvault-secrets' async SecretClient: the
challenge, versions, attributes, paging, soft delete, Key Vault's errors, and the platform's
faults as the SDK meets them in Azure."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets.aio import SecretClient

from emulator.launcher import RunningEmulator
from tests.emulator.clients import credential, secret_client

UTC = dt.UTC


@pytest.fixture
async def vault(emulator: RunningEmulator) -> AsyncIterator[SecretClient]:
    """A SecretClient past its challenge and token, with the request log emptied, so a test
    sees only its own requests."""
    s = emulator.settings
    async with credential(s) as cred, secret_client(s, cred) as client:
        _ = [p async for p in client.list_properties_of_secrets()]
        emulator.admin.clear_requests()
        yield client


def vault_requests(emulator: RunningEmulator, method: str | None = None) -> list[dict[str, Any]]:
    entries = emulator.admin.requests()["entries"]
    return [e for e in entries if e["service"] == "keyvault" and (method is None or e["method"] == method)]


async def test_set_adds_versions_and_reads_latest_or_a_given_version(vault: SecretClient) -> None:
    first = await vault.set_secret("app-1", "value-one", content_type="text/plain", tags={"ticket": "T-1"})
    second = await vault.set_secret("app-1", "value-two")

    latest = await vault.get_secret("app-1")
    assert latest.value == "value-two" and latest.properties.version == second.properties.version
    older = await vault.get_secret("app-1", first.properties.version)
    assert older.value == "value-one"
    assert older.properties.content_type == "text/plain" and older.properties.tags == {"ticket": "T-1"}
    # a new version starts from what its set says, not from the version before it
    assert latest.properties.tags is None and latest.properties.content_type is None

    props = first.properties
    assert props.vault_url == vault.vault_url.rstrip("/")
    assert props.id == f"{props.vault_url}/secrets/app-1/{props.version}"
    assert len(props.version or "") == 32 and int(props.version or "", 16) >= 0
    assert props.enabled is True and props.expires_on is None
    assert props.recovery_level == "Recoverable+Purgeable" and props.recoverable_days == 90
    assert props.created_on is not None and props.created_on == props.updated_on
    # names are case-insensitive and keep the casing they were created with
    assert (await vault.get_secret("APP-1")).name == "app-1"


async def test_three_sets_list_three_versions_and_the_newest_is_latest(vault: SecretClient) -> None:
    made = [(await vault.set_secret("rotating", f"v{n}")).properties.version for n in range(3)]
    listed = [p async for p in vault.list_properties_of_secret_versions("rotating")]
    assert sorted(p.version or "" for p in listed) == sorted(v or "" for v in made)
    assert all(p.id == f"{p.vault_url}/secrets/rotating/{p.version}" for p in listed)
    assert (await vault.get_secret("rotating")).properties.version == made[-1]
    assert [p async for p in vault.list_properties_of_secret_versions("never-set")] == []


async def test_update_disables_a_version_and_sets_expiry_and_tags(vault: SecretClient) -> None:
    old = await vault.set_secret("app-2", "old-value")
    new = await vault.set_secret("app-2", "new-value")
    expires = dt.datetime(2031, 5, 17, 8, 30, tzinfo=UTC)

    updated = await vault.update_secret_properties(
        "app-2", old.properties.version, enabled=False, expires_on=expires, tags={"state": "retired"}
    )
    assert updated.enabled is False and updated.expires_on == expires
    assert updated.tags == {"state": "retired"}
    assert updated.updated_on is not None and updated.created_on is not None

    with pytest.raises(HttpResponseError) as refused:
        await vault.get_secret("app-2", old.properties.version)
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "Forbidden"
    assert refused.value.error.innererror == {"code": "SecretDisabled"}

    # the latest version is untouched; the disabled one is still listed, with its attributes
    assert (await vault.get_secret("app-2")).value == "new-value"
    listed = {p.version: p async for p in vault.list_properties_of_secret_versions("app-2")}
    assert listed[old.properties.version].enabled is False
    assert listed[old.properties.version].expires_on == expires
    assert listed[new.properties.version].enabled is True

    # no version given: the latest is updated
    latest = await vault.update_secret_properties("app-2", content_type="application/x-client-secret")
    assert latest.version == new.properties.version
    assert latest.content_type == "application/x-client-secret"


async def test_expiry_and_not_before_round_trip(vault: SecretClient) -> None:
    not_before = dt.datetime(2030, 1, 1, tzinfo=UTC)
    expires = dt.datetime(2030, 7, 1, 12, 0, 5, tzinfo=UTC)
    stored = await vault.set_secret("timed", "timed-value", not_before=not_before, expires_on=expires)
    assert stored.properties.not_before == not_before and stored.properties.expires_on == expires
    # exp and nbf are informational: a secret outside its window is still readable
    read = await vault.get_secret("timed")
    assert read.value == "timed-value"
    assert read.properties.not_before == not_before and read.properties.expires_on == expires


async def test_timestamps_run_on_the_emulator_clock(emulator: RunningEmulator, vault: SecretClient) -> None:
    emulator.admin.set_clock("2030-03-01T00:00:00Z")
    created = (await vault.set_secret("clocked", "clocked-value")).properties.created_on
    assert created is not None and created.date() == dt.date(2030, 3, 1)


async def test_listing_secrets_pages_with_next_link(emulator: RunningEmulator, vault: SecretClient) -> None:
    names = [f"bulk-{n:02d}" for n in range(30)]
    await asyncio.gather(*(vault.set_secret(name, f"bulk-value-{name}") for name in names))
    emulator.admin.clear_requests()

    listed = [p async for p in vault.list_properties_of_secrets()]
    assert sorted(p.name or "" for p in listed) == names
    # items carry the unversioned id and no value
    assert all(p.version is None and p.id == f"{p.vault_url}/secrets/{p.name}" for p in listed)
    pages = vault_requests(emulator, "GET")
    assert len(pages) == 2  # Key Vault's default page is 25
    assert "skiptoken" in pages[1]["query"]

    small = [p async for p in vault.list_properties_of_secrets(max_page_size=7)]
    assert len(small) == 30
    assert len(vault_requests(emulator, "GET")) == 2 + 5


async def test_soft_delete_then_get_deleted_then_recover(vault: SecretClient) -> None:
    await vault.set_secret("app-3", "first")
    await vault.set_secret("app-3", "second")

    deleted = await vault.delete_secret("app-3")
    assert (
        deleted.name == "app-3"
        and deleted.recovery_id == f"{deleted.properties.vault_url}/deletedsecrets/app-3"
    )
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_date == dt.timedelta(days=90)
    assert deleted.properties.version is not None

    with pytest.raises(ResourceNotFoundError):
        await vault.get_secret("app-3")
    assert [p.name async for p in vault.list_properties_of_secrets()] == []
    assert (await vault.get_deleted_secret("app-3")).recovery_id == deleted.recovery_id
    assert [d.name async for d in vault.list_deleted_secrets()] == ["app-3"]

    recovered = await vault.recover_deleted_secret("app-3")
    assert recovered.name == "app-3" and recovered.version == deleted.properties.version
    assert (await vault.get_secret("app-3")).value == "second"
    assert len([p async for p in vault.list_properties_of_secret_versions("app-3")]) == 2
    with pytest.raises(ResourceNotFoundError):
        await vault.get_deleted_secret("app-3")


async def test_purge_frees_the_name(emulator: RunningEmulator, vault: SecretClient) -> None:
    await vault.set_secret("app-4", "before-purge")
    await vault.delete_secret("app-4")
    await vault.purge_deleted_secret("app-4")
    assert vault_requests(emulator, "DELETE")[-1]["status"] == 204

    with pytest.raises(ResourceNotFoundError):
        await vault.get_deleted_secret("app-4")
    again = await vault.set_secret("app-4", "after-purge")
    assert [p.version async for p in vault.list_properties_of_secret_versions("app-4")] == [
        again.properties.version
    ]

    # Key Vault purges by itself when the retention period ends
    await vault.set_secret("app-5", "expiring")
    await vault.delete_secret("app-5")
    emulator.admin.advance("P91D")
    with pytest.raises(ResourceNotFoundError):
        await vault.get_deleted_secret("app-5")


async def test_a_soft_deleted_name_cannot_be_set(vault: SecretClient) -> None:
    await vault.set_secret("app-6", "value")
    await vault.delete_secret("app-6")
    with pytest.raises(ResourceExistsError) as conflict:
        await vault.set_secret("app-6", "another value")
    error = conflict.value.error
    assert conflict.value.status_code == 409
    assert error is not None and error.code == "Conflict"
    assert error.innererror == {"code": "ObjectIsDeletedButRecoverable"}
    assert error.message == (
        "Secret app-6 is currently in a deleted but recoverable state, and its name cannot be reused; "
        "in this state, the secret can only be recovered or purged."
    )


async def test_missing_secrets_are_404_secret_not_found(vault: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        await vault.get_secret("no-such-secret")
    assert missing.value.error is not None and missing.value.error.code == "SecretNotFound"
    assert "A secret with (name/id) no-such-secret was not found in this key vault" in str(missing.value)

    await vault.set_secret("has-one-version", "v")
    with pytest.raises(ResourceNotFoundError):
        await vault.get_secret("has-one-version", "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        await vault.delete_secret("no-such-secret")
    with pytest.raises(ResourceNotFoundError):
        await vault.purge_deleted_secret("no-such-secret")


async def test_bad_names_tags_and_api_versions_are_bad_parameter(vault: SecretClient) -> None:
    for call in (
        vault.set_secret("under_score", "v"),
        vault.set_secret("x" * 128, "v"),
        vault.set_secret("many-tags", "v", tags={f"t{n}": "v" for n in range(16)}),
    ):
        with pytest.raises(HttpResponseError) as bad:
            await call
        assert bad.value.status_code == 400
        assert bad.value.error is not None and bad.value.error.code == "BadParameter"
    assert (await vault.set_secret("x" * 127, "v", tags={f"t{n}": "v" for n in range(15)})).name == "x" * 127

    # the SDK sends its own api-version unless the request already names one
    for query, expected in (("api-version=1999-01-01", "not recognized"), ("api-version=", "missing")):
        response = await vault.send_request(HttpRequest("GET", f"/secrets?{query}"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BadParameter"
        assert expected in response.json()["error"]["message"]
    assert (await vault.send_request(HttpRequest("GET", "/secrets?api-version=7.4"))).status_code == 200


async def test_the_first_request_is_answered_with_the_challenge(emulator: RunningEmulator) -> None:
    s = emulator.settings
    # The SDK caches challenges per vault for the whole process; forget it to see a first contact.
    http_challenge_cache.clear()
    async with credential(s) as cred, secret_client(s, cred) as client:
        await client.set_secret("first-contact", "v")
    puts = vault_requests(emulator, "PUT")
    assert [(e["status"], e["appId"]) for e in puts] == [(401, None), (200, s["AZURE_CLIENT_ID"])]


# -- faults, as the SDK meets them in Azure ----------------------------------------------------


async def test_429_with_retry_after_is_retried_transparently(
    emulator: RunningEmulator, vault: SecretClient
) -> None:
    emulator.admin.faults(
        [{"kind": "status", "service": "keyvault", "status": 429, "retryAfter": 1, "method": "PUT", "nth": 1}]
    )
    assert (await vault.set_secret("throttled", "throttled-value")).value == "throttled-value"
    puts = vault_requests(emulator, "PUT")
    assert [(e["status"], e["fault"]) for e in puts] == [(429, "status:429"), (200, None)]
    assert len([p async for p in vault.list_properties_of_secret_versions("throttled")]) == 1


async def test_503_that_outlasts_the_retries_surfaces(emulator: RunningEmulator, vault: SecretClient) -> None:
    emulator.admin.faults([{"kind": "status", "service": "keyvault", "status": 503, "method": "PUT"}])
    with pytest.raises(HttpResponseError) as unavailable:
        await vault.set_secret("unavailable", "v", retry_total=2, retry_backoff_factor=0.05)
    assert unavailable.value.status_code == 503
    assert unavailable.value.error is not None and unavailable.value.error.code == "ServiceUnavailable"
    assert [e["fault"] for e in vault_requests(emulator, "PUT")] == ["status:503"] * 3
    emulator.admin.clear_faults()
    with pytest.raises(ResourceNotFoundError):
        await vault.get_secret("unavailable")


async def test_lost_response_to_set_is_retried_and_makes_a_second_version(
    emulator: RunningEmulator, vault: SecretClient
) -> None:
    emulator.admin.faults([{"kind": "lost-response", "service": "keyvault", "method": "PUT", "nth": 1}])
    stored = await vault.set_secret("lost", "lost-value")
    # azure-core retries PUT (an idempotent method) on a dropped connection, and the first PUT had
    # already taken effect: Key Vault keeps both, so a lost response leaves one extra version
    # with the same value. Harmless for readers of the latest; a caller that counts versions
    # (to prove a rotation happened) must not count on one version per call.
    assert [e["fault"] for e in vault_requests(emulator, "PUT")] == ["lost-response", None]
    versions = [p async for p in vault.list_properties_of_secret_versions("lost")]
    assert len(versions) == 2
    assert stored.properties.version in {p.version for p in versions}
    assert (await vault.get_secret("lost")).value == "lost-value"


async def test_latency_delays_answers_and_trips_client_timeouts(
    emulator: RunningEmulator, vault: SecretClient
) -> None:
    await vault.set_secret("slow", "slow-value")
    emulator.admin.faults([{"kind": "latency", "service": "keyvault", "method": "GET", "ms": 1500}])
    with pytest.raises(ServiceResponseError):
        await vault.get_secret("slow", read_timeout=0.3, retry_total=0)
    # The emulator still answers the abandoned read, 1.5 s after it came: wait until it has, so
    # that its log entry lands in this test's log rather than in the next test's on this worker.
    for _ in range(200):
        if vault_requests(emulator, "GET"):
            break
        await asyncio.sleep(0.025)
    emulator.admin.faults([{"kind": "latency", "service": "keyvault", "method": "GET", "ms": 200}])
    emulator.admin.clear_requests()
    assert (await vault.get_secret("slow")).value == "slow-value"
    (entry,) = vault_requests(emulator, "GET")
    assert entry["endMs"] - entry["startMs"] >= 200


# -- what tests may inspect ------------------------------------------------------------------------


async def test_snapshot_shows_state_without_values(emulator: RunningEmulator, vault: SecretClient) -> None:
    value = "s3cr3t-value-that-must-not-leak"
    first = await vault.set_secret("kept", value, tags={"appId": "a-1"})
    await vault.set_secret("kept", value + "-2")
    await vault.update_secret_properties("kept", first.properties.version, enabled=False)
    await vault.set_secret("gone", "gone-value")
    await vault.delete_secret("gone")

    snapshot = emulator.admin.snapshot()["vault"]
    raw = json.dumps(snapshot)
    assert value not in raw and "gone-value" not in raw
    by_name = {s["name"]: s for s in snapshot["secrets"]}
    kept = by_name["kept"]
    assert kept["deleted"] is None and len(kept["versions"]) == 2
    (old,) = [v for v in kept["versions"] if v["version"] == first.properties.version]
    assert old["sha256"] == hashlib.sha256(value.encode()).hexdigest()
    assert old["attributes"]["enabled"] is False and old["tags"] == {"appId": "a-1"}
    assert by_name["gone"]["deleted"]["deletedDate"] is not None
    # the leak detector's list does hold every value stored
    assert {value, value + "-2", "gone-value"} <= set(emulator.admin.issued_secrets())
