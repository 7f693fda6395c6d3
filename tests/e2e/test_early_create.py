"""A new application created beside the lease's acquire (``create_early``, issue 15 goal 1):
when the process already knows every permission id, a first delivery sends the create-only
``POST /applications`` while its lease is taken, and trusts what it created only if no other
delivery wrote the application before the lease was held.

The interleavings are forced with the emulator's fault rules and control plane: the test
waits for the request log to show the create, never for a sleep to hope for a race.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.keyvault.certificates import CertificatePolicy
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

from emulator.launcher import RunningEmulator
from shared.domain.stored import DELIVERY_TAG, lease_name
from tests import harness
from tests.e2e.tenant import Tenant, add_password_by_hand, stored_secret_authenticates
from tests.e2e.test_registration import service_request
from tests.emulator.clients import certificate_client, container_client, credential

CONTAINER = "app-registration-leases"


def _graph(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in log if e["service"] == "graph"]


async def _until_created(emulator: RunningEmulator, unique_name: str) -> dict[str, Any]:
    """Wait until the emulator has created ``unique_name``'s application; return it."""
    for _ in range(400):
        apps = Tenant.read(emulator).apps(unique_name)
        if apps:
            return apps[0]
        await asyncio.sleep(0.025)
    raise AssertionError(f"{unique_name} was never created")


async def _lease_blob(container: ContainerClient, unique_name: str) -> None:
    """The application's lease blob, made as a deployed service's warm-up makes it."""
    with contextlib.suppress(ResourceExistsError):  # it exists: what was wanted
        await container.create_container()
    with contextlib.suppress(ResourceExistsError):
        await container.get_blob_client(lease_name(unique_name)).upload_blob(b"", overwrite=False)


async def test_a_warm_first_delivery_creates_a_new_application_beside_its_lease(
    emulator: RunningEmulator,
) -> None:
    await harness.register(service_request("early-warm"))  # the process now keeps the permission ids
    emulator.admin.clear_requests()

    reply = await harness.register(service_request("early-new"))

    assert reply["status"] == "succeeded", reply
    graph = _graph(emulator.admin.requests()["entries"])
    assert graph[0] == ("POST", "/v1.0/applications")  # no read of the uniqueName first
    assert not [r for r in graph if r[1].startswith("/v1.0/applications(uniqueName=")]
    app = Tenant.read(emulator).app("early-new")
    assert any(t.startswith(DELIVERY_TAG) for t in app["tags"])
    assert await stored_secret_authenticates(
        emulator.settings, reply["application"]["clientId"], unique_name="early-new"
    )


async def test_a_redelivery_and_a_cold_process_read_the_unique_name_before_they_write(
    emulator: RunningEmulator,
) -> None:
    emulator.admin.clear_requests()
    cold = await harness.register(service_request("early-cold"))  # no permission ids kept yet
    await harness.register(service_request("early-warm-2"))
    emulator.admin.clear_requests()
    again = await harness.register(service_request("early-redelivered"), delivery_count=2)

    assert cold["status"] == again["status"] == "succeeded"
    graph = _graph(emulator.admin.requests()["entries"])
    read = graph.index(("GET", "/v1.0/applications(uniqueName='early-redelivered')"))
    assert read < graph.index(("POST", "/v1.0/applications"))


def _another_delivery_converged(emulator: RunningEmulator, app: dict[str, Any]) -> None:
    """What another delivery's convergence writes first: the properties, tagged with itself."""
    tags = [t for t in app["tags"] if not t.startswith(DELIVERY_TAG)] + [f"{DELIVERY_TAG}another"]
    assert emulator.admin.graph("PATCH", f"/applications/{app['id']}", json={"tags": tags}).status_code == 204


def _a_rotation_added_a_password(emulator: RunningEmulator, app: dict[str, Any]) -> None:
    """What a rotation writes, which leaves the tags alone: a password."""
    add_password_by_hand(emulator, app["id"], "client secret [managed:rotation:2026-12-01]")


@pytest.mark.parametrize("intervene", [_another_delivery_converged, _a_rotation_added_a_password])
async def test_an_application_another_delivery_wrote_before_the_lease_was_held_is_not_trusted(
    emulator: RunningEmulator, intervene: Any
) -> None:
    """The first delivery's acquire is slow; meanwhile another delivery writes the application it
    created. Holding the lease at once, the first delivery finds that out: it undoes nothing,
    replies nothing, and is retried; the retry converges it as an existing application."""
    await harness.register(service_request("early-warm-3"))
    target = "early-contended"
    async with container_client(emulator.settings, CONTAINER) as container:
        await _lease_blob(container, target)
    emulator.admin.faults(
        [
            {
                "kind": "latency",
                "service": "storage",
                "method": "PUT",
                "path": f"/{lease_name(target)}$",
                "ms": 1500,
                "times": 1,
            }
        ]
    )
    body = service_request(target, request_id="SNOW-EARLY-1")
    first = asyncio.ensure_future(harness.register(body, message_id="early-1"))
    intervene(emulator, await _until_created(emulator, target))

    with pytest.raises(Exception, match="ConcurrentDelivery"):
        await first
    reply = await harness.register(body, message_id="early-1", delivery_count=2)

    assert reply["status"] == "succeeded", reply
    tenant = Tenant.read(emulator)
    assert len(tenant.apps(target)) == 1 and tenant.service_principals(tenant.app(target)["appId"])
    assert await stored_secret_authenticates(
        emulator.settings, reply["application"]["clientId"], unique_name=target
    )


async def test_an_early_application_is_read_again_when_the_lease_had_to_be_waited_for(
    emulator: RunningEmulator,
) -> None:
    """Another delivery holds the lease while the first delivery creates the application, and
    writes it before giving the lease back: the first delivery, having waited, reads the
    application again under the lease and converges it, in the same delivery."""
    await harness.register(service_request("early-warm-4"))
    target = "early-waited"
    async with container_client(emulator.settings, CONTAINER) as container:
        await _lease_blob(container, target)
        other = BlobLeaseClient(container.get_blob_client(lease_name(target)))
        await other.acquire(lease_duration=15)
        body = service_request(target, request_id="SNOW-EARLY-2")
        first = asyncio.ensure_future(harness.register(body))
        _another_delivery_converged(emulator, await _until_created(emulator, target))
        await other.release()

        reply = await first

    assert reply["status"] == "succeeded", reply
    app = Tenant.read(emulator).app(target)
    assert f"{DELIVERY_TAG}another" not in app["tags"]  # converged by the first delivery after it
    assert len(Tenant.read(emulator).apps(target)) == 1
    assert await stored_secret_authenticates(
        emulator.settings, reply["application"]["clientId"], unique_name=target
    )


async def test_an_early_application_whose_vault_write_is_refused_is_removed_not_retried(
    emulator: RunningEmulator,
) -> None:
    """The delivery's own password is on the application when its vault write fails for good
    (a certificate someone made by hand holds the secret's name: Key Vault refuses a write to
    a certificate's managed secret, 403). That password is this request's: the creation is
    confirmed, and the rejection undoes it, instead of a retry that would fail the same way."""
    await harness.register(service_request("early-warm-5"))  # the process now keeps the permission ids
    target = "early-refused"
    async with credential(emulator.settings) as cred:
        certificates = certificate_client(emulator.settings, cred)
        async with certificates:
            await certificates.create_certificate(f"app-{target}", CertificatePolicy.get_default())

    settled = await harness.settle(service_request(target, request_id="SNOW-EARLY-3"))

    assert settled.deliveries == 1
    assert settled.reply is not None and settled.reply["status"] == "rejected", settled.reply
    [error] = settled.reply["errors"]
    assert "Nothing was left behind" in error["message"]
    assert Tenant.read(emulator).apps(target) == []
