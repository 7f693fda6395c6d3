"""The Key Vault gateway against the emulator: secret versions found by their tags, the latest
version readers get, disabling, soft delete, and Key Vault's errors as the service's."""

from __future__ import annotations

import datetime as dt

import pytest

from emulator.launcher import RunningEmulator
from shared.adapters.keyvault import KeyVaultGateway
from shared.domain.errors import NotFound, PermissionDenied, TransientError
from shared.domain.records import StoredVersion
from shared.domain.secret_value import SecretValue
from shared.domain.stored import KEY_ID
from tests.adapters.tenant_objects import faults_seen

NOT_BEFORE = dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.UTC)
EXPIRES = dt.datetime(2026, 7, 15, 9, 30, tzinfo=dt.UTC)


async def store(vault: KeyVaultGateway, name: str, key_id: str, value: str = "stored-value") -> StoredVersion:
    return await vault.store(
        name,
        SecretValue(f"{value}-{key_id}"),
        tags={KEY_ID: key_id, "origin": "ADAPTER-1"},
        not_before=NOT_BEFORE,
        expires_on=EXPIRES,
    )


async def test_a_missing_secret_has_no_versions_and_no_latest(vault: KeyVaultGateway) -> None:
    assert await vault.versions("app-adapter-missing") == []
    assert await vault.latest("app-adapter-missing") is None


async def test_store_then_versions_shows_the_version_tagged_with_its_key_id(vault: KeyVaultGateway) -> None:
    stored = await store(vault, "app-adapter-store", "key-1")
    assert stored.key_id == "key-1" and stored.tags[KEY_ID] == "key-1"
    assert stored.enabled and stored.expires_on == EXPIRES and stored.created_on is not None
    [listed] = await vault.versions("app-adapter-store")
    assert (listed.version, listed.key_id, listed.enabled) == (stored.version, "key-1", True)
    assert listed.tags == {KEY_ID: "key-1", "origin": "ADAPTER-1"}
    assert await vault.latest("app-adapter-store") == stored
    value = await vault.read("app-adapter-store", stored.version)
    same = value.reveal() == "stored-value-key-1"
    assert same


async def test_each_store_is_a_new_version_and_the_newest_is_latest(vault: KeyVaultGateway) -> None:
    first = await store(vault, "app-adapter-two", "key-1")
    second = await store(vault, "app-adapter-two", "key-2")
    assert first.version != second.version
    assert {v.key_id for v in await vault.versions("app-adapter-two")} == {"key-1", "key-2"}
    latest = await vault.latest("app-adapter-two")
    assert latest is not None and latest.key_id == "key-2"
    same = (await vault.read("app-adapter-two")).reveal() == "stored-value-key-2"
    assert same


async def test_a_disabled_latest_version_is_no_latest(vault: KeyVaultGateway) -> None:
    stored = await store(vault, "app-adapter-disabled", "key-1")
    await vault.disable("app-adapter-disabled", stored.version)
    assert await vault.latest("app-adapter-disabled") is None
    [listed] = await vault.versions("app-adapter-disabled")
    assert listed.enabled is False and listed.tags == stored.tags  # tags left as they were
    with pytest.raises(PermissionDenied):  # Key Vault answers 403 for a disabled version's value
        await vault.read("app-adapter-disabled", stored.version)


async def test_disable_replaces_the_tags_when_given(vault: KeyVaultGateway) -> None:
    stored = await store(vault, "app-adapter-retag", "key-1")
    await vault.disable("app-adapter-retag", stored.version, {KEY_ID: "key-1", "decommissionedBy": "R-9"})
    [listed] = await vault.versions("app-adapter-retag")
    assert listed.tags == {KEY_ID: "key-1", "decommissionedBy": "R-9"}


async def test_disable_of_a_missing_version_is_not_found(vault: KeyVaultGateway) -> None:
    await store(vault, "app-adapter-no-version", "key-1")
    with pytest.raises(NotFound):
        await vault.disable("app-adapter-no-version", "0" * 32)
    with pytest.raises(NotFound):
        await vault.disable("app-adapter-no-secret", "0" * 32)


async def test_latest_versions_lists_the_prefixed_secrets_only(vault: KeyVaultGateway) -> None:
    await store(vault, "app-adapter-a", "key-a1")
    await store(vault, "app-adapter-a", "key-a2")
    await store(vault, "app-adapter-b", "key-b1")
    await store(vault, "other-adapter-c", "key-c1")
    listed = {name: version.key_id async for name, version in vault.latest_versions("app-adapter-")}
    assert listed == {"app-adapter-a": "key-a2", "app-adapter-b": "key-b1"}


async def test_store_recovers_a_soft_deleted_name_with_its_history(vault: KeyVaultGateway) -> None:
    await store(vault, "app-adapter-deleted", "key-1")
    await vault.client.delete_secret("app-adapter-deleted")
    assert await vault.versions("app-adapter-deleted") == []

    again = await store(vault, "app-adapter-deleted", "key-2")
    assert {v.key_id for v in await vault.versions("app-adapter-deleted")} == {"key-1", "key-2"}
    assert await vault.latest("app-adapter-deleted") == again


async def test_recover_of_a_name_nothing_was_deleted_under_is_not_found(vault: KeyVaultGateway) -> None:
    with pytest.raises(NotFound):
        await vault.recover("app-adapter-never-deleted")


async def test_read_of_a_missing_secret_is_not_found(vault: KeyVaultGateway) -> None:
    with pytest.raises(NotFound):
        await vault.read("app-adapter-missing")


# ---------------------------------------------------------------- faults


async def test_a_503_on_a_read_is_retried(emulator: RunningEmulator, vault: KeyVaultGateway) -> None:
    stored = await store(vault, "app-adapter-503", "key-1")
    emulator.admin.faults(
        [
            {
                "kind": "status",
                "service": "keyvault",
                "status": 503,
                "method": "GET",
                "times": 1,
                "retryAfter": 0,
            }
        ]
    )
    emulator.admin.clear_requests()
    assert await vault.latest("app-adapter-503") == stored
    assert faults_seen(emulator, "keyvault", "GET", "/secrets/app-adapter-503") == ["status:503", None]


async def test_a_503_that_outlasts_the_retries_is_transient(
    emulator: RunningEmulator, vault: KeyVaultGateway
) -> None:
    emulator.admin.faults(
        [{"kind": "status", "service": "keyvault", "status": 503, "method": "GET", "retryAfter": 0}]
    )
    with pytest.raises(TransientError):
        await vault.versions("app-adapter-unavailable")
