"""The emulated blob service, seen only through azure-storage-blob's async clients: the *Lease
Blob* state machine as Azure documents it (on the emulator clock), Storage's errors, and its
authentication."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient

from emulator.launcher import RunningEmulator
from tests.emulator.clients import container_client, credential


@pytest.fixture
async def blob(emulator: RunningEmulator) -> AsyncIterator[BlobClient]:
    s = emulator.settings
    async with (
        credential(s) as cred,
        container_client(s, "leases", cred) as container,
    ):
        await container.create_container()
        client = container.get_blob_client("app-x")
        await client.upload_blob(b"", overwrite=False)
        yield client


def code(error: HttpResponseError) -> str:
    value = error.error_code
    return str(getattr(value, "value", value))


async def test_a_lease_is_exclusive_until_released(blob: BlobClient) -> None:
    first, second = BlobLeaseClient(blob), BlobLeaseClient(blob)
    await first.acquire(lease_duration=60)
    with pytest.raises(ResourceExistsError) as held:
        await second.acquire(lease_duration=60)
    assert held.value.status_code == 409 and code(held.value) == "LeaseAlreadyPresent"
    await first.acquire(lease_duration=30)  # the holder acquiring again renews
    await first.release()
    await second.acquire(lease_duration=15)
    properties = await blob.get_blob_properties()
    assert (properties.lease.state, properties.lease.status, properties.lease.duration) == (
        "leased",
        "locked",
        "fixed",
    )


async def test_a_lease_expires_on_the_emulator_clock(emulator: RunningEmulator, blob: BlobClient) -> None:
    first, second = BlobLeaseClient(blob), BlobLeaseClient(blob)
    await first.acquire(lease_duration=15)
    emulator.admin.advance("PT16S")
    assert (await blob.get_blob_properties()).lease.state == "expired"
    await first.renew()  # nobody took it: the holder may renew
    emulator.admin.advance("PT16S")
    await second.acquire(lease_duration=60)
    with pytest.raises(HttpResponseError) as gone:
        await first.renew()
    assert gone.value.status_code == 409 and code(gone.value) == "LeaseIdMismatchWithLeaseOperation"


async def test_a_broken_lease_cannot_be_renewed_and_anyone_may_acquire_it(blob: BlobClient) -> None:
    holder, other = BlobLeaseClient(blob), BlobLeaseClient(blob)
    await holder.acquire(lease_duration=60)
    assert await other.break_lease(lease_break_period=0) == 0
    with pytest.raises(HttpResponseError) as broken:
        await holder.renew()
    assert broken.value.status_code == 409 and code(broken.value) == "LeaseIsBrokenAndCannotBeRenewed"
    await other.acquire(lease_duration=60)


async def test_a_break_without_a_period_waits_for_a_fixed_lease_to_end(
    emulator: RunningEmulator, blob: BlobClient
) -> None:
    holder, other = BlobLeaseClient(blob), BlobLeaseClient(blob)
    await holder.acquire(lease_duration=60)
    remaining = await other.break_lease()
    assert 55 <= remaining <= 60
    assert (await blob.get_blob_properties()).lease.state == "breaking"
    with pytest.raises(ResourceExistsError):
        await other.acquire(lease_duration=60)
    emulator.admin.advance("PT61S")
    assert (await blob.get_blob_properties()).lease.state == "broken"
    await other.acquire(lease_duration=60)


async def test_writes_to_a_leased_blob_need_its_lease_id(blob: BlobClient) -> None:
    lease = BlobLeaseClient(blob)
    await lease.acquire(lease_duration=-1)
    with pytest.raises(HttpResponseError) as missing:
        await blob.upload_blob(b"x", overwrite=True)
    assert missing.value.status_code == 412 and code(missing.value) == "LeaseIdMissing"
    await blob.upload_blob(b"x", overwrite=True, lease=lease)
    with pytest.raises(ResourceExistsError) as exists:
        await blob.upload_blob(b"y", overwrite=False)
    assert code(exists.value) == "BlobAlreadyExists"


async def test_lease_durations_outside_15_to_60_seconds_are_refused(blob: BlobClient) -> None:
    with pytest.raises(HttpResponseError) as refused:
        await BlobLeaseClient(blob).acquire(lease_duration=10)
    assert refused.value.status_code == 400 and code(refused.value) == "InvalidHeaderValue"


async def test_a_missing_blob_and_container_are_named(emulator: RunningEmulator, blob: BlobClient) -> None:
    s = emulator.settings
    async with credential(s) as cred:
        for container, name, expected in (
            ("nowhere", "b", "ContainerNotFound"),
            ("leases", "app-y", "BlobNotFound"),
        ):
            async with container_client(s, container, cred) as client:
                with pytest.raises(ResourceNotFoundError) as missing:
                    await BlobLeaseClient(client.get_blob_client(name)).acquire(lease_duration=15)
                assert code(missing.value) == expected


def test_requests_without_a_token_are_refused_as_storage_refuses_them(emulator: RunningEmulator) -> None:
    s = emulator.settings
    url = f"{s['AzureWebJobsStorage__blobServiceUri']}/leases?restype=container"
    response = httpx.put(url, headers={"x-ms-version": "2026-02-06"}, verify=s["PLATFORM_CA_FILE"])
    assert response.status_code == 401
    assert response.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    assert "<Code>NoAuthenticationInformation</Code>" in response.text
    assert "resource_id=https://storage.azure.com" in response.headers["www-authenticate"]


async def test_list_blobs_pages_by_name_with_a_prefix_and_shows_lease_state(
    emulator: RunningEmulator, blob: BlobClient
) -> None:
    s = emulator.settings
    async with (
        credential(s) as cred,
        container_client(s, "leases", cred) as container,
    ):
        for name in ("lease-002", "lease-000", "lease-001", "other"):
            await container.get_blob_client(name).upload_blob(b"", overwrite=False)
        await BlobLeaseClient(container.get_blob_client("lease-001")).acquire(lease_duration=30)

        pages = container.list_blobs(name_starts_with="lease-", results_per_page=2).by_page()
        seen = [[(b.name, b.lease.state, b.lease.status) async for b in page] async for page in pages]

    assert seen == [
        [("lease-000", "available", "unlocked"), ("lease-001", "leased", "locked")],
        [("lease-002", "available", "unlocked")],
    ]


async def test_list_blobs_names_a_missing_container_and_refuses_a_page_size_of_zero(
    emulator: RunningEmulator, blob: BlobClient
) -> None:
    s = emulator.settings
    async with credential(s) as cred:
        for container, size, expected in (("nowhere", None, "ContainerNotFound"), ("leases", 0, None)):
            async with container_client(s, container, cred) as client:
                with pytest.raises(HttpResponseError) as refused:
                    _ = [b async for b in client.list_blobs(results_per_page=size)]
                if expected is None:
                    assert refused.value.status_code == 400
                    assert code(refused.value) == "OutOfRangeQueryParameterValue"
                else:
                    assert code(refused.value) == expected


async def test_an_upload_cut_off_mid_body_is_not_applied(emulator: RunningEmulator, blob: BlobClient) -> None:
    """A client that closes its connection before the body it announced has arrived (a cancelled
    upload) gets nothing created; the emulator records the request as 499 and goes on serving."""
    s = emulator.settings
    async with credential(s) as cred:
        token = (await cred.get_token("https://storage.azure.com/.default")).token
    url = httpx.URL(f"{s['AzureWebJobsStorage__blobServiceUri']}/leases/cut-off")
    tls = ssl.create_default_context(cafile=s["PLATFORM_CA_FILE"])
    emulator.admin.clear_requests()
    _, writer = await asyncio.open_connection(url.host, url.port, ssl=tls)
    head = (
        f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n"
        f"Authorization: Bearer {token}\r\nx-ms-version: 2026-02-06\r\nx-ms-blob-type: BlockBlob\r\n"
        "Content-Length: 64\r\n\r\n"
    )
    writer.write(head.encode() + b"only eight")
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    for _ in range(100):  # the emulator sees the connection close, then logs the request
        entries = [e for e in emulator.admin.requests()["entries"] if e["path"].endswith("/cut-off")]
        if entries:
            break
        await asyncio.sleep(0.05)
    assert [e["status"] for e in entries] == [499]
    async with credential(s) as cred, container_client(s, "leases", cred) as container:
        with pytest.raises(ResourceNotFoundError):
            await container.get_blob_client("cut-off").get_blob_properties()
