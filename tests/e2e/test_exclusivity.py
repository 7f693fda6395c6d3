"""One delivery at a time per application (issue 11): the races of a throttled Key Vault write
and a redelivery, and a delivery that loses its lease while its work still runs.

The interleavings are forced with the emulator's fault rules and control plane: a test waits
for the request log to show the held write, never for a sleep to hope for a race.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobLeaseClient

from emulator.launcher import EmulatorClock, RunningEmulator
from shared.domain.stored import lease_name
from tests import harness
from tests.e2e.tenant import Tenant, stored_secret_authenticates
from tests.e2e.test_registration import sample
from tests.e2e.test_rotation import deliver_rotation, register, run_scheduler
from tests.emulator.clients import container_client

# The Key Vault write of the application's secret, answered 429 once with a Retry-After that
# holds the writer while a second delivery runs.
HELD_WRITE = {
    "kind": "status",
    "status": 429,
    "service": "keyvault",
    "method": "PUT",
    "path": r"^/secrets/app-",
    "times": 1,
    "retryAfter": 3,
}


async def until_held(emulator: RunningEmulator) -> None:
    """Wait until the emulator has answered the held write with its 429."""
    for _ in range(400):
        log = emulator.admin.requests()["entries"]
        if any(r["fault"] == "status:429" and r["service"] == "keyvault" for r in log):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the Key Vault write was never held")


async def unversioned_secret_authenticates(
    emulator: RunningEmulator, reply: dict[str, Any], unique_name: str
) -> bool:
    """What a consumer does: read the unversioned secret and get a token with it."""
    client_id = reply["application"]["clientId"]
    return await stored_secret_authenticates(emulator.settings, client_id, unique_name=unique_name)


def one_current_credential(emulator: RunningEmulator, unique_name: str) -> str:
    """The one credential the application holds, which the unversioned secret resolves to."""
    tenant = Tenant.read(emulator)
    keys = [p["keyId"] for p in tenant.app(unique_name)["passwordCredentials"]]
    latest = tenant.latest_version(f"app-{unique_name}")
    assert latest is not None and latest["tags"]["keyId"] in keys, "the unversioned secret opens nothing"
    assert len(keys) == 1, keys
    assert tenant.orphans(unique_name) == []
    return keys[0]


async def test_a_redelivery_while_a_vault_write_is_throttled_leaves_one_working_credential(
    emulator: RunningEmulator,
) -> None:
    """Issue 11, race 1: delivery 2 of a request runs while delivery 1's Key Vault write waits
    out a 429. Delivery 2 waits for delivery 1's lease, then finds its stored credential."""
    request = sample("service-client")
    emulator.admin.faults([HELD_WRITE])
    first = asyncio.create_task(harness.register(request, message_id="race-1", delivery_count=1))
    await until_held(emulator)
    second = asyncio.create_task(harness.register(request, message_id="race-1", delivery_count=2))
    replies = await asyncio.gather(first, second)

    assert [r["status"] for r in replies] == ["succeeded", "succeeded"], [r["errors"] for r in replies]
    key = one_current_credential(emulator, "dicom-ingest-prod")
    assert {r["credential"]["keyId"] for r in replies} == {key}
    assert await unversioned_secret_authenticates(emulator, replies[0], "dicom-ingest-prod")


async def test_two_rotation_deliveries_while_a_vault_write_is_throttled_leave_one_new_credential(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    """Issue 11, race 2: two deliveries of one rotation message, the first one's write held."""
    registered = await register("rot-race")
    clock.advance("P70D")  # inside the rotation window of a P3M secret
    [body], _ = await run_scheduler()
    emulator.admin.faults([HELD_WRITE])
    first = asyncio.create_task(deliver_rotation(body, message_id="rot-race", delivery_count=1))
    await until_held(emulator)
    second = asyncio.create_task(deliver_rotation(body, message_id="rot-race", delivery_count=2))
    first_events, second_events = await asyncio.gather(first, second)

    rotated = [e["keyId"] for e in first_events + second_events if e["action"] == "rotate"]
    assert len(rotated) == 1, first_events + second_events
    tenant = Tenant.read(emulator)
    keys = {p["keyId"] for p in tenant.app("rot-race")["passwordCredentials"]}
    # the old credential stays through its successor's grace period; the new one is current
    assert keys == {registered["credential"]["keyId"], rotated[0]}
    latest = tenant.latest_version("app-rot-race")
    assert latest is not None and latest["tags"]["keyId"] == rotated[0]
    assert tenant.orphans("rot-race") == []
    assert await unversioned_secret_authenticates(emulator, registered, "rot-race")


async def test_a_delivery_that_lost_its_lease_writes_nothing_more(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    """The lease lapses while delivery 1 waits out a throttled write (a stalled process): a
    redelivery takes the lease and registers; delivery 1 then sends no write but the removal
    of its own unstored credential, and is redelivered; nothing the consumers read is lost."""
    request = sample("service-client")
    emulator.admin.faults([HELD_WRITE])
    first = asyncio.create_task(harness.register(request, message_id="lapse", delivery_count=1))
    await until_held(emulator)
    clock.advance("PT61S")  # past the 60 s lease, by both the emulator's and the service's clock
    leases = emulator.admin.request("GET", "/_emulator/leases").json()
    assert leases[f"app-registration-leases/{lease_name('dicom-ingest-prod')}"]["state"] == "expired"
    since = emulator.admin.requests()["lastSeq"]
    second = await harness.register(request, message_id="lapse", delivery_count=2)
    assert second["status"] == "succeeded", second["errors"]

    with pytest.raises(Exception, match="ExclusivityLost"):
        await first
    writes = [
        (r["service"], r["method"], r["path"])
        for r in emulator.admin.requests(since=since)["entries"]
        if r["method"] in ("PUT", "POST", "PATCH", "DELETE") and r["service"] in ("graph", "keyvault")
    ]
    # delivery 2's own writes (converge, add, store) came first; delivery 1's only write after
    # them is the removal of the credential whose value never left it
    assert writes[-1][0:2] == ("graph", "POST") and writes[-1][2].endswith("/removePassword"), writes
    assert sum(1 for w in writes if w[0] == "keyvault" and w[1] == "PUT") == 1, writes
    key = one_current_credential(emulator, "dicom-ingest-prod")
    assert second["credential"]["keyId"] == key
    assert await unversioned_secret_authenticates(emulator, second, "dicom-ingest-prod")

    third = await harness.register(request, message_id="lapse", delivery_count=3)
    assert third["status"] == "succeeded" and third["credential"]["keyId"] == key


async def test_a_delivery_that_waits_too_long_for_the_lease_is_redelivered_then_answered(
    emulator: RunningEmulator, settings_env: Any
) -> None:
    """Another holder keeps the application's lease: the delivery gives up after LEASE_WAIT,
    changes nothing, and asks for redelivery; the last delivery replies ``failed``, saying why."""
    settings_env(LEASE_WAIT="PT1S", MAX_DELIVERY_COUNT="2")
    settings = emulator.settings
    async with container_client(settings, "app-registration-leases") as container:
        await container.create_container()
        blob = container.get_blob_client(lease_name("dicom-ingest-prod"))
        await blob.upload_blob(b"", overwrite=False)
        await BlobLeaseClient(blob).acquire(lease_duration=-1)
        before = emulator.admin.snapshot()

        with pytest.raises(Exception, match="ApplicationBusy"):
            await harness.register(sample("service-client"), message_id="busy", delivery_count=1)
        last = await harness.register(sample("service-client"), message_id="busy", delivery_count=2)

        assert last["status"] == "failed"
        assert [(e["field"], e["code"]) for e in last["errors"]] == [("request", "ApplicationBusy")]
        after = emulator.admin.snapshot()
        assert after["applications"] == before["applications"] and after["vault"] == before["vault"]
        # an intruder's write without the lease id is refused, as Azure refuses it
        with pytest.raises(HttpResponseError) as refused:
            await blob.upload_blob(b"x", overwrite=True)
        assert refused.value.status_code == 412


def test_lease_names_are_case_insensitive_like_unique_names() -> None:
    assert lease_name("DICOM-Ingest") == lease_name("dicom-ingest")


def test_lease_names_are_a_fixed_set_chosen_by_a_stable_hash() -> None:
    from shared.domain.stored import LEASE_BLOBS, lease_names

    names = [lease_name(f"app-{n}") for n in range(5000)]
    assert set(names) <= set(lease_names()) and len(lease_names()) == LEASE_BLOBS
    assert len(set(names)) > LEASE_BLOBS * 0.95  # spread over (nearly) all of them
    assert lease_name("fhir-ingest") == "lease-2f4"  # stable across processes and releases


def _sharing_a_lease(prefix: str) -> tuple[str, str]:
    seen: dict[str, str] = {}
    for n in range(10_000):
        name = f"{prefix}-{n}"
        other = seen.setdefault(lease_name(name), name)
        if other != name:
            return other, name
    raise AssertionError("no two names share a lease blob")


async def test_two_applications_sharing_a_lease_blob_are_registered_one_after_the_other(
    emulator: RunningEmulator,
) -> None:
    from tests.e2e.test_registration import service_request

    first, second = _sharing_a_lease("shared-blob")
    emulator.admin.clear_requests()
    replies = await asyncio.gather(
        harness.register(service_request(first)), harness.register(service_request(second))
    )

    assert [r["status"] for r in replies] == ["succeeded", "succeeded"]
    tenant = Tenant.read(emulator)
    assert [tenant.app(first)["uniqueName"], tenant.app(second)["uniqueName"]] == [first, second]
    for name, reply in zip((first, second), replies, strict=True):
        assert await unversioned_secret_authenticates(emulator, reply, name)
    container = "/devstoreaccount1/app-registration-leases"
    storage = [e for e in emulator.admin.requests()["entries"] if e["path"].startswith(f"{container}/")]
    assert {e["path"] for e in storage} == {f"{container}/{lease_name(first)}"}
    assert any(e["status"] == 409 for e in storage)  # one waited for the other's lease
