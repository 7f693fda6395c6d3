"""Every crash point, enumerated: run a scenario once to learn the sequence of Graph and Key
Vault requests it makes, then, for each request k of that sequence, run it again with a fault
at k and redeliver as Service Bus would, and check it converges to the clean run's state.

Two faults per point: a *lost response* (the request takes effect, then the connection drops
before the answer) and a *failure before the effect* (a 503 answered instead, without a
Retry-After: the gateways' own backoff applies). Because the sequence is learned from the
emulator's request log, a call added to a workflow is covered without touching this file.

A scenario's points can be checked in shares (point k in share ``(k - 1) % shares + 1``), one
test each, so that parallel workers spread the waits (a 503 on a lease call waits out the
storage SDK's backoff); together the shares cover every point, as one test would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing
from shared.domain.data_access import DATA_ROLES
from shared.domain.stored import DELIVERY_TAG
from tests import harness
from tests.e2e.tenant import Tenant, parse_time

# Requests to the emulated platform's data planes (not the token endpoint): Graph, Key Vault and
# the storage account that holds the per-application leases.
PLATFORM = r"^/(v1\.0|secrets|deletedsecrets|certificates|keys|devstoreaccount1|subscriptions)(/|$)"
DATA_ROLE_IDS = {role.id for role in DATA_ROLES.values()}
FAULTS: dict[str, dict[str, Any]] = {
    "lost-response": {"kind": "lost-response", "path": PLATFORM},
    "failure-before-effect": {"kind": "status", "status": 503, "path": PLATFORM},
}


@dataclass
class Scenario:
    """``prepare`` brings the tenant to the starting state (no faults); ``deliver`` is the
    message under test, delivered until settled; ``unique_name`` is the app it concerns."""

    name: str
    unique_name: str
    deliver: Callable[[], Awaitable[dict[str, Any]]]
    prepare: Callable[[RunningEmulator], Awaitable[None]] | None = None
    extra_checks: list[Callable[[Tenant], None]] = field(default_factory=list)


def platform_requests(emulator: RunningEmulator) -> list[dict[str, Any]]:
    return [
        e
        for e in emulator.admin.requests()["entries"]
        if e["service"] in ("graph", "keyvault", "storage", "arm")
    ]


def converged_state(emulator: RunningEmulator, unique_name: str, reply: dict[str, Any]) -> dict[str, Any]:
    """What a user would compare between two runs, without the ids each run mints; and the
    invariants every run must hold: no credential without its value in Key Vault, the
    unversioned secret resolves to a valid credential."""
    tenant = Tenant.read(emulator)
    apps = tenant.apps(unique_name)
    state: dict[str, Any] = {
        "reply": {
            "status": reply["status"],
            "credential": reply.get("credential") is not None,
            "errors": sorted(e["code"] for e in reply.get("errors", [])),
            "removed": reply.get("removed"),
            "events": reply.get("events"),
        },
        "apps": len(apps),
    }
    secret_name = f"app-{unique_name}"
    stored = tenant.stored_key_ids(secret_name)
    state["storedCredentials"] = len(stored)
    # Every data-role assignment in the emulated subscription (a reset leaves none): exactly
    # one per role the request names, none left behind by a decommission.
    state["dataRoles"] = sorted(
        (a["properties"]["scope"].rsplit("/", 1)[-1], a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])
        for a in emulator.admin.request("GET", "/_emulator/role-assignments").json()["value"]
        if a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] in DATA_ROLE_IDS
    )
    if not apps:
        return state
    app = apps[0]
    assert tenant.orphans(unique_name) == [], "a credential the service created has no stored value"
    assert stored <= {p["keyId"] for p in app["passwordCredentials"]}, (
        "an enabled version opens no credential"
    )
    if app["passwordCredentials"]:
        latest = tenant.latest_version(secret_name)
        assert latest is not None and latest["attributes"]["enabled"], (
            "the unversioned secret does not resolve"
        )
        [current] = [p for p in app["passwordCredentials"] if p["keyId"] == latest["tags"]["keyId"]]
        assert parse_time(current["startDateTime"]) <= tenant.now < parse_time(current["endDateTime"])
    state.update(_certificate_state(tenant, unique_name, app))
    sps = tenant.service_principals(app["appId"])
    resources = {sp["id"]: sp["displayName"] for sp in tenant.snapshot["servicePrincipals"]}
    state.update(
        displayName=app["displayName"],
        # Every delivery tags its writes with itself (shared.domain.stored.DELIVERY_TAG): which
        # delivery wrote last differs from run to run, that one did does not.
        tags=sorted(t if not t.startswith(DELIVERY_TAG) else DELIVERY_TAG for t in app["tags"]),
        redirectUris=[
            app["web"]["redirectUris"],
            app["publicClient"]["redirectUris"],
            app["spa"]["redirectUris"],
        ],
        isFallbackPublicClient=app["isFallbackPublicClient"],
        requiredResourceAccess=sorted(
            json.dumps([r["resourceAppId"], sorted((a["id"], a["type"]) for a in r["resourceAccess"])])
            for r in app["requiredResourceAccess"]
        ),
        credentials=len(app["passwordCredentials"]),
        servicePrincipals=len(sps),
        grants=sorted(
            (resources[g["resourceId"]], " ".join(sorted(g["scope"].split())))
            for sp in sps
            for g in tenant.grants(sp["id"])
        ),
        assignments=sorted(
            (resources[a["resourceId"]], a["appRoleId"]) for sp in sps for a in tenant.assignments(sp["id"])
        ),
        federatedCredentials=sorted(
            (c["name"], c["issuer"], c["subject"], c["description"], tuple(c["audiences"]))
            for c in emulator.admin.graph(
                "GET", f"/applications/{app['id']}/federatedIdentityCredentials"
            ).json()["value"]
        ),
    )
    return state


def _certificate_state(tenant: Tenant, unique_name: str, app: dict[str, Any]) -> dict[str, Any]:
    """The certificates' share of the state, and their invariants: every key credential the
    service attached has its private key in an enabled vault version, and every enabled
    version is on the application (none made twice, none left unattached)."""
    keys = tenant.managed_keys(unique_name)
    versions = [
        v
        for v in tenant.certificate_versions(f"cert-{unique_name}")
        if v["enabled"] and v["tags"].get("appId") == app["appId"]
    ]
    on_app = {base64.b64decode(k["customKeyIdentifier"]).hex().upper() for k in keys}
    in_vault = {v["x5t"] for v in versions}
    assert on_app <= in_vault, "a certificate on the application has no private key in the vault"
    assert in_vault <= on_app, "an enabled certificate version is on no application"
    return {"certificates": len(keys), "storedCertificates": len(versions)}


def reset(emulator: RunningEmulator) -> None:
    """Every run starts from the same state, the process's too: what the service kept of the
    tenant (e.g. which lease blobs exist) is forgotten with it, as the ``emulator`` fixture
    does. Otherwise a point's request sequence would depend on the runs before it."""
    emulator.admin.reset()
    testing.forget()


async def run_clean(emulator: RunningEmulator, scenario: Scenario) -> tuple[int, dict[str, Any]]:
    """(number of platform requests the scenario makes, the state it ends in)."""
    reset(emulator)
    if scenario.prepare:
        await scenario.prepare(emulator)
    emulator.admin.clear_requests()
    reply = await scenario.deliver()
    return len(platform_requests(emulator)), converged_state(emulator, scenario.unique_name, reply)


async def run_with_fault(emulator: RunningEmulator, scenario: Scenario, fault: str, k: int) -> dict[str, Any]:
    reset(emulator)
    if scenario.prepare:
        await scenario.prepare(emulator)
    emulator.admin.faults([{**FAULTS[fault], "nth": k}], seed=k)
    reply = await scenario.deliver()
    fired = [r for r in emulator.admin.request("GET", "/_emulator/faults").json()["rules"] if r.get("fired")]
    assert fired, f"the fault at request {k} never fired"
    emulator.admin.clear_faults()
    if Tenant.read(emulator).orphans(scenario.unique_name):
        await sweep_once_proven_dead(emulator)
    return converged_state(emulator, scenario.unique_name, reply)


async def sweep_once_proven_dead(emulator: RunningEmulator) -> None:
    """A lost addPassword answer leaves a credential whose value is stored nowhere; it stays
    while younger than the safety age (its value might still be on its way to the vault), and
    the first sweep after that removes it. Move the clock past the safety age and sweep."""
    clock = EmulatorClock(emulator.admin)
    testing.use_clock(clock.now)
    try:
        clock.advance("PT61M")
        rotations, _ = await harness.run_scheduler()
        for body in rotations:
            await harness.rotate(body)
    finally:
        testing.use_clock(None)


async def check_every_crash_point(
    emulator: RunningEmulator, scenario: Scenario, fault: str, share: int = 1, shares: int = 1
) -> tuple[int, int]:
    """Check the crash points of ``share`` (of ``shares``); returns (points checked, points of
    the scenario)."""
    # Learned from a second clean run: the first of a process also carries one-off requests
    # (Key Vault's 401 challenge, which the SDK then caches).
    await run_clean(emulator, scenario)
    count, clean = await run_clean(emulator, scenario)
    assert count >= shares, f"{scenario.name}: {count} requests, fewer than {shares} shares"
    clean_events = clean["reply"].pop("events") or []
    points = range(share, count + 1, shares)
    for k in points:
        state = await run_with_fault(emulator, scenario, fault, k)
        events = state["reply"].pop("events") or []
        assert state == clean, f"{scenario.name}: {fault} at request {k} of {count} did not converge"
        # The events the clean run gives, plus, truthfully, the clean-up of what the fault left
        # behind (e.g. a credential whose addPassword answer was lost), and nothing else.
        extra = list(events)
        for expected in clean_events:
            assert expected in extra, f"{scenario.name}: {fault} at request {k}: event {expected} missing"
            extra.remove(expected)
        assert all(action == "cleanup" for action, _ in extra), f"{scenario.name}: unexpected events {extra}"
    return len(points), count


def register_delivery(body: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def deliver() -> dict[str, Any]:
        reply, _ = await harness.deliver_until_settled(body)
        return reply

    return deliver
