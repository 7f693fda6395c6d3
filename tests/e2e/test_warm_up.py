"""A new instance warms up beside its first request (``WARM_UP``, shared.bootstrap): Key Vault's
challenge and token and the Resource Manager token are taken in the background, so the first
registration's secret and data role need no round trip of their own for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.launcher import RunningEmulator
from shared import testing
from shared.adapters.clients import WARM_UP_SECRET
from tests import harness
from tests.e2e.test_registration import service_request

# The first write of the registration waits this long, so that the warm-up, which needs a few
# local round trips, has surely finished when the request reaches Key Vault and Resource Manager.
SLOW_CREATE = {
    "kind": "latency",
    "service": "graph",
    "method": "POST",
    "path": r"^/v1\.0/applications$",
    "ms": 400,
}


async def _first_registration(emulator: RunningEmulator, body: dict[str, Any]) -> list[dict[str, Any]]:
    from azure.keyvault.secrets._shared import http_challenge_cache

    # A new instance: no token, no link open, and no vault challenge taken (the SDK keeps
    # challenges for the process, beyond its clients).
    await testing.reset_clients()
    http_challenge_cache.clear()
    emulator.admin.faults([SLOW_CREATE])
    emulator.admin.clear_requests()
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply
    entries: list[dict[str, Any]] = emulator.admin.requests()["entries"]
    return entries


async def test_a_new_instance_takes_the_vaults_challenge_and_its_tokens_beside_the_first_request(
    emulator: RunningEmulator, settings_env: Callable[..., None]
) -> None:
    settings_env(WARM_UP="true")
    log = await _first_registration(emulator, service_request("warm-up-client"))

    probe = [
        e
        for e in log
        if e["service"] == "keyvault" and e["path"].rstrip("/").endswith(f"/secrets/{WARM_UP_SECRET}")
    ]
    assert [e["status"] for e in probe] == [401, 404]  # the challenge, then the read with the token
    writes = [e for e in log if e["service"] == "keyvault" and e["method"] == "PUT"]
    assert [e["status"] for e in writes] == [200]  # the secret's write took no challenge of its own
    created = next(
        e
        for e in log
        if e["service"] == "graph" and e["method"] == "POST" and e["path"] == "/v1.0/applications"
    )
    tokens = [e for e in log if e["service"] == "identity"]
    # Every token, Resource Manager's among them, was taken before the application existed.
    assert tokens and all(e["endMs"] <= created["endMs"] for e in tokens)
    assert any(e["service"] == "arm" and e["method"] == "PUT" for e in log)


async def test_without_warm_up_the_first_request_makes_every_first_call_itself(
    emulator: RunningEmulator, settings_env: Callable[..., None]
) -> None:
    settings_env(WARM_UP="false")
    log = await _first_registration(emulator, service_request("cold-client"))

    assert not [e for e in log if e["path"].rstrip("/").endswith(f"/secrets/{WARM_UP_SECRET}")]
    assert [e["status"] for e in log if e["service"] == "keyvault"] == [
        401,
        200,
    ]  # the challenge on the write


async def test_a_new_instance_makes_the_lease_blobs_once_so_that_a_lease_is_one_round_trip(
    emulator: RunningEmulator, settings_env: Callable[..., None]
) -> None:
    from shared.domain import stored

    settings_env(WARM_UP="true")
    await _first_registration(emulator, service_request("warm-leases-first"))
    await testing.warmed()
    container = "app-registration-leases"
    leases = emulator.admin.request("GET", "/_emulator/leases").json()
    made = [k for k in leases if k.startswith(f"{container}/{stored.LEASE_PREFIX}")]
    assert len(made) == stored.LEASE_BLOBS

    # The next instance reads the last one's properties (made last, so all exist) and creates
    # none; its leases are one request each.
    log = await _first_registration(emulator, service_request("warm-leases-next"))
    await testing.warmed()
    log += emulator.admin.requests()["entries"][len(log) :]
    storage = [(e["method"], e["status"]) for e in log if e["service"] == "storage"]
    assert sorted(storage) == [("HEAD", 200), ("PUT", 200), ("PUT", 201)]  # the last; acquire; release
