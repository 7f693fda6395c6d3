"""Rotation end to end: the real scheduler and rotation functions, apps registered through the
registration function, the emulator's clock moved forward. Asserts what a user would check:
credentials in the tenant, versions in the vault, and that the stored secret authenticates."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing
from tests import harness
from tests.e2e.tenant import Tenant, add_password_by_hand, parse_time, stored_secret_authenticates

TAG = "managed-by:entra-app-registration-service"
OWNER = "CI0009999 rotation tests"


def register_body(unique_name: str, credential: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "requestId": f"REQ-{unique_name}",
        "action": "register",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": unique_name,
            "serviceManagementReference": OWNER,
            "displayName": unique_name,
            "clientType": "service",
        },
        "apiPermissions": [{"api": "azure-healthcare-apis", "delegated": ["user_impersonation"]}],
        "grantAdminConsent": False,
        "credential": credential or {"type": "secret", "description": "job", "lifetime": "P3M"},
    }


async def register(unique_name: str, credential: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await harness.register(register_body(unique_name, credential))
    assert reply["status"] == "succeeded", reply["errors"]
    return reply


async def run_scheduler() -> tuple[list[str], list[dict[str, Any]]]:
    rotations, events = await harness.run_scheduler()
    return rotations, [json.loads(e) for e in events]


async def deliver_rotation(
    body: str, *, message_id: str | None = None, delivery_count: int = 1
) -> list[dict[str, Any]]:
    events = await harness.rotate(body, message_id=message_id, delivery_count=delivery_count)
    return [json.loads(e) for e in events]


async def settle_rotation(body: str, max_deliveries: int = 10) -> tuple[list[dict[str, Any]], int]:
    """Deliver like Service Bus: an exception abandons the message, it comes back."""
    message_id = str(uuid.uuid4())
    for count in range(1, max_deliveries + 1):
        try:
            return await deliver_rotation(body, message_id=message_id, delivery_count=count), count
        except Exception:
            if count == max_deliveries:
                raise
    raise AssertionError("unreachable")


async def run_day() -> list[dict[str, Any]]:
    """What the host does each day: the scheduler, then every message it sent, settled."""
    messages, events = await run_scheduler()
    for body in messages:
        emitted, _ = await settle_rotation(body)
        events.extend(emitted)
    return events


def credentials(tenant: Tenant, unique_name: str) -> list[dict[str, Any]]:
    return sorted(tenant.app(unique_name)["passwordCredentials"], key=lambda p: p["startDateTime"])


def check_invariants(tenant: Tenant, unique_name: str) -> None:
    """What must hold at any moment for a managed application with a secret."""
    now = tenant.now
    name = f"app-{unique_name}"
    passwords = tenant.app(unique_name)["passwordCredentials"]
    valid = {
        p["keyId"] for p in passwords if parse_time(p["startDateTime"]) <= now < parse_time(p["endDateTime"])
    }
    assert valid & tenant.stored_key_ids(name), f"{unique_name}: no valid credential has its value stored"
    latest = tenant.latest_version(name)
    assert latest is not None and latest["attributes"]["enabled"], f"{unique_name}: latest version disabled"
    assert latest["tags"]["keyId"] in valid, f"{unique_name}: the unversioned secret opens nothing"
    assert len(passwords) <= 3, f"{unique_name}: {len(passwords)} credentials"


async def orphans_go_once_proven_dead(
    emulator: RunningEmulator, clock: EmulatorClock, unique_name: str
) -> Tenant:
    """A credential whose value is in no vault version (an addPassword whose answer was lost, a
    process that died before the write) stays while younger than the safety age: its value
    might still be on its way to the vault. The next run after that removes it."""
    tenant = Tenant.read(emulator)
    orphans = tenant.orphans(unique_name)
    assert len(orphans) <= 1, orphans
    if not orphans:
        return tenant
    assert all(tenant.now - parse_time(o["startDateTime"]) < dt.timedelta(hours=1) for o in orphans)
    clock.advance("PT61M")
    messages, _ = await run_scheduler()
    for body in messages:
        await settle_rotation(body)
    tenant = Tenant.read(emulator)
    assert tenant.orphans(unique_name) == []
    check_invariants(tenant, unique_name)
    return tenant


# -- scheduled rotation --------------------------------------------------------------------------


async def test_rotation_inside_the_window_overlaps_then_retires_after_the_grace_period(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    reply = await register("rot-basic")
    first = reply["credential"]
    end = parse_time(first["endDateTime"])

    # Not yet in the window: nothing to do.
    messages, _ = await run_scheduler()
    assert messages == []

    clock.advance(f"PT{int((end - clock.now()).total_seconds() // 3600) - 30 * 24 + 1}H")
    events = await run_day()
    rotated = [e for e in events if e["action"] == "rotate"]
    assert [e["reason"] for e in rotated] == ["expiring"]
    tenant = Tenant.read(emulator)
    old, new = credentials(tenant, "rot-basic")
    assert old["keyId"] == first["keyId"]
    assert parse_time(new["endDateTime"]) - parse_time(new["startDateTime"]) > dt.timedelta(days=88)
    assert "[managed:rotation:" in new["displayName"] and new["displayName"].startswith("job ")
    assert tenant.latest_version("app-rot-basic")["tags"]["keyId"] == new["keyId"]
    assert tenant.latest_version("app-rot-basic")["tags"]["lifetime"] == "P3M"
    assert tenant.stored_key_ids("app-rot-basic") == {old["keyId"], new["keyId"]}  # overlap
    check_invariants(tenant, "rot-basic")
    settings = emulator.settings
    assert await stored_secret_authenticates(
        settings, reply["application"]["clientId"], unique_name="rot-basic"
    )
    assert await stored_secret_authenticates(
        settings, reply["application"]["clientId"], first["keyVaultSecretId"]
    )

    # Within the grace period the old one stays.
    clock.advance("PT47H")
    assert [e for e in await run_day() if e["action"] != "report"] == []
    assert len(credentials(Tenant.read(emulator), "rot-basic")) == 2

    # After it, the old one is retired: removed from the app, its version disabled.
    clock.advance("PT1H")
    events = await run_day()
    assert [(e["action"], e["reason"], e["keyId"]) for e in events] == [
        ("retire", "superseded", old["keyId"])
    ]
    assert all(e["app"]["uniqueName"] == "rot-basic" and e["dryRun"] is False for e in events)
    tenant = Tenant.read(emulator)
    [kept] = credentials(tenant, "rot-basic")
    assert kept["keyId"] == new["keyId"]
    assert tenant.stored_key_ids("app-rot-basic") == {new["keyId"]}
    assert tenant.orphans("rot-basic") == []
    assert await stored_secret_authenticates(
        settings, reply["application"]["clientId"], unique_name="rot-basic"
    )


async def test_an_expired_secret_is_replaced_and_the_old_one_removed(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    await register("rot-expired")
    clock.advance("P4M")
    events = await run_day()
    assert [(e["action"], e["reason"]) for e in events] == [("rotate", "expired"), ("retire", "expired")]
    tenant = Tenant.read(emulator)
    assert len(credentials(tenant, "rot-expired")) == 1
    check_invariants(tenant, "rot-expired")


async def test_public_clients_and_unmanaged_credentials_are_left_alone(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    await register("rot-public", {"type": "none"})
    reply = await register("rot-manual")
    object_id = reply["application"]["objectId"]
    by_hand = add_password_by_hand(emulator, object_id, "added by hand")
    clock.advance("P70D")
    events = await run_day()
    tenant = Tenant.read(emulator)
    assert tenant.app("rot-public")["passwordCredentials"] == []
    assert tenant.secret("app-rot-public") is None
    assert by_hand in {p["keyId"] for p in credentials(tenant, "rot-manual")}
    reports = [e for e in events if e["action"] == "report"]
    assert [(e["reason"], e["keyId"]) for e in reports] == [("unmanaged-credential", by_hand)]


# -- rotate on request ----------------------------------------------------------------------------


def rotate_request(unique_name: str, request_id: str = "SNOW-ROT-1") -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "requestId": request_id,
        "requestedBy": "alice@contoso.com",
        "action": "rotate",
        "application": {"uniqueName": unique_name, "serviceManagementReference": OWNER},
    }


async def test_rotate_on_request_issues_a_new_credential_once(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    registered = await register("rot-request")
    message_id = str(uuid.uuid4())
    reply = await harness.register(rotate_request("rot-request"), message_id=message_id)
    assert reply["status"] == "succeeded", reply["errors"]
    credential = reply["credential"]
    assert credential["keyId"] != registered["credential"]["keyId"]
    assert credential["keyVaultSecretId"].split("/secrets/")[1].startswith("app-rot-request/")
    assert reply["application"]["clientId"] == registered["application"]["clientId"]
    tenant = Tenant.read(emulator)
    assert len(credentials(tenant, "rot-request")) == 2
    check_invariants(tenant, "rot-request")
    client_id = registered["application"]["clientId"]
    assert await stored_secret_authenticates(emulator.settings, client_id, credential["keyVaultSecretId"])

    # Redelivered after it succeeded: the same answer, no third credential.
    again = await harness.register(rotate_request("rot-request"), message_id=message_id, delivery_count=2)
    assert again["credential"] == credential
    assert len(credentials(Tenant.read(emulator), "rot-request")) == 2

    # The scheduler retires the registration's credential after the grace period.
    clock.advance("PT49H")
    await run_day()
    [kept] = credentials(Tenant.read(emulator), "rot-request")
    assert kept["keyId"] == credential["keyId"]


async def test_rotate_on_request_for_an_unknown_or_unmanaged_app_is_rejected(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    reply = await harness.register(rotate_request("no-such-app"))
    assert reply["status"] == "rejected"
    assert [e["field"] for e in reply["errors"]] == ["application.uniqueName"]
    created = emulator.admin.graph(
        "PATCH",
        "/applications(uniqueName='someone-elses')",
        headers={"Prefer": "create-if-missing"},
        json={"displayName": "someone else's"},
    )
    assert created.status_code in (201, 204)
    reply = await harness.register(rotate_request("someone-elses", "SNOW-ROT-2"))
    assert reply["status"] == "rejected"
    assert reply["errors"][0]["field"] == "application.uniqueName"


# -- dry run, redelivery, overlap -----------------------------------------------------------------


def state(tenant: Tenant) -> Any:
    apps = {
        a.get("uniqueName"): sorted(p["keyId"] for p in a["passwordCredentials"])
        for a in tenant.snapshot["applications"]
    }
    vault = {
        s["name"]: [(v["version"], v["attributes"]["enabled"]) for v in s["versions"]]
        for s in tenant.snapshot["vault"]["secrets"]
    }
    return apps, vault


async def test_dry_run_emits_the_plan_and_changes_nothing(
    emulator: RunningEmulator, clock: EmulatorClock, settings_env: Any
) -> None:
    await register("rot-dry-a")
    await register("rot-dry-b", {"type": "secret", "description": "job", "lifetime": "P12M"})
    clock.advance("P70D")
    settings_env(ROTATION_DRY_RUN="true")
    before = state(Tenant.read(emulator))
    messages, events = await run_scheduler()
    assert messages == []
    assert [(e["app"]["uniqueName"], e["action"], e["reason"], e["dryRun"]) for e in events] == [
        ("rot-dry-a", "rotate", "expiring", True)
    ]
    assert state(Tenant.read(emulator)) == before


async def test_a_redelivered_rotation_message_is_a_no_op(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    await register("rot-redeliver")
    clock.advance("P70D")
    [body], _ = await run_scheduler()
    await deliver_rotation(body)
    after_first = state(Tenant.read(emulator))
    events = await deliver_rotation(body, delivery_count=2)
    assert [e for e in events if e["action"] != "report"] == []
    assert state(Tenant.read(emulator)) == after_first
    # Two overlapping scheduler runs: the second message finds nothing to do either.
    events = await deliver_rotation(body)
    assert state(Tenant.read(emulator)) == after_first


ROTATION_CALLS = [
    ("graph", "POST", r"/addPassword$"),
    ("keyvault", "PUT", r"^/secrets/app-"),
    ("graph", "GET", r"^/v1\.0/applications/"),
    ("keyvault", "GET", r"^/secrets/app-[^/]+/versions"),
]
RETIRE_CALLS = [("graph", "POST", r"/removePassword$"), ("keyvault", "PATCH", r"^/secrets/app-[^/]+/[^/]+$")]


def rules_for(kind: str, service: str, method: str, path: str, nth: int) -> list[dict[str, Any]]:
    if kind == "lost-response":
        return [{"kind": "lost-response", "service": service, "method": method, "path": path, "nth": nth}]
    return [{"kind": "status", "status": 503, "service": service, "method": method, "path": path, "times": 8}]


@pytest.mark.parametrize("kind", ["lost-response", "status-503"])
@pytest.mark.parametrize(("service", "method", "path"), ROTATION_CALLS, ids=lambda v: str(v)[:12])
async def test_a_crash_after_any_rotation_call_converges_on_redelivery(
    emulator: RunningEmulator, clock: EmulatorClock, kind: str, service: str, method: str, path: str
) -> None:
    reply = await register("rot-crash")
    clock.advance("P70D")
    [body], _ = await run_scheduler()
    emulator.admin.faults(rules_for(kind, service, method, path, nth=1), seed=7)
    await settle_rotation(body)
    emulator.admin.clear_faults()
    tenant = Tenant.read(emulator)
    check_invariants(tenant, "rot-crash")
    tenant = await orphans_go_once_proven_dead(emulator, clock, "rot-crash")
    old, new = credentials(tenant, "rot-crash")
    assert old["keyId"] == reply["credential"]["keyId"]
    assert tenant.latest_version("app-rot-crash")["tags"]["keyId"] == new["keyId"]
    # a rerun finds nothing to do: the same state as one clean run
    assert (await run_scheduler())[0] == []


@pytest.mark.parametrize("kind", ["lost-response", "status-503"])
@pytest.mark.parametrize(("service", "method", "path"), RETIRE_CALLS, ids=lambda v: str(v)[:12])
async def test_a_crash_after_any_retire_call_converges_on_redelivery(
    emulator: RunningEmulator, clock: EmulatorClock, kind: str, service: str, method: str, path: str
) -> None:
    await register("rot-crash-retire")
    clock.advance("P70D")
    await run_day()
    clock.advance("PT49H")
    [body], _ = await run_scheduler()
    emulator.admin.faults(rules_for(kind, service, method, path, nth=1), seed=7)
    await settle_rotation(body)
    emulator.admin.clear_faults()
    tenant = Tenant.read(emulator)
    check_invariants(tenant, "rot-crash-retire")
    assert len(credentials(tenant, "rot-crash-retire")) == 1
    assert len(tenant.enabled_versions("app-rot-crash-retire")) == 1
    assert (await run_scheduler())[0] == []


async def test_a_crash_between_add_password_and_the_vault_write_leaves_no_orphan(
    emulator: RunningEmulator, clock: EmulatorClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies right after addPassword answered: the redelivery rotates, and the
    orphan goes once proven dead (older than the safety age), never before."""
    from shared.adapters.graph.applications import ApplicationsGateway

    await register("rot-died")
    clock.advance("P70D")
    [body], _ = await run_scheduler()
    real = ApplicationsGateway.add_password

    async def dies(self: ApplicationsGateway, *args: Any, **kwargs: Any) -> Any:
        await real(self, *args, **kwargs)
        raise SystemExit("killed")  # not an Exception: nothing in the service handles it

    monkeypatch.setattr(ApplicationsGateway, "add_password", dies)
    with pytest.raises(SystemExit):
        await deliver_rotation(body)
    assert len(Tenant.read(emulator).orphans("rot-died")) == 1
    monkeypatch.setattr(ApplicationsGateway, "add_password", real)
    await deliver_rotation(body, delivery_count=2)
    check_invariants(Tenant.read(emulator), "rot-died")
    tenant = await orphans_go_once_proven_dead(emulator, clock, "rot-died")
    assert len(credentials(tenant, "rot-died")) == 2
    check_invariants(tenant, "rot-died")


# -- problems are contained --------------------------------------------------------------------------


async def test_a_tenant_policy_is_reported_and_does_not_stop_other_apps(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    await register("rot-policy-long", {"type": "secret", "description": "job", "lifetime": "P3M"})
    now = clock.now()
    short = {
        "type": "secret",
        "description": "job",
        "startDateTime": now.isoformat(),
        "endDateTime": (now + dt.timedelta(days=30)).isoformat(),
    }
    await register("rot-policy-short", short)
    clock.advance("P70D")
    emulator.admin.policy(maxSecretLifetime="P30D")
    events = await run_day()
    by_app = {(e["app"]["uniqueName"], e["action"], e["reason"]) for e in events}
    assert ("rot-policy-long", "report", "tenant-policy:CredentialInvalidLifetimeAsPerAppPolicy") in by_app
    assert ("rot-policy-short", "rotate", "expired") in by_app
    tenant = Tenant.read(emulator)
    check_invariants(tenant, "rot-policy-short")
    assert len(credentials(tenant, "rot-policy-long")) == 1  # untouched, nothing removed
    assert tenant.orphans("rot-policy-long") == []


async def test_a_deleted_application_is_reported(emulator: RunningEmulator, clock: EmulatorClock) -> None:
    reply = await register("rot-gone")
    clock.advance("P70D")
    [body], _ = await run_scheduler()
    assert (
        emulator.admin.graph("DELETE", f"/applications/{reply['application']['objectId']}").status_code == 204
    )
    events = await deliver_rotation(body)
    assert [(e["action"], e["reason"], e["app"]["uniqueName"]) for e in events] == [
        ("report", "application-not-found", "rot-gone")
    ]


async def test_transient_failures_raise_until_the_last_delivery_then_report(
    emulator: RunningEmulator, clock: EmulatorClock
) -> None:
    await register("rot-down")
    clock.advance("P70D")
    [body], _ = await run_scheduler()
    emulator.admin.faults([{"kind": "status", "status": 503, "service": "keyvault"}])
    with pytest.raises(Exception, match=r"KeyVault|Unavailable"):
        await deliver_rotation(body, delivery_count=1)
    events = await deliver_rotation(body, delivery_count=int(os.environ.get("MAX_DELIVERY_COUNT", "10")))
    emulator.admin.clear_faults()
    assert [(e["action"], e["reason"]) for e in events] == [("report", "failed:KeyVaultUnavailable")]


async def test_no_secret_value_in_events_or_logs(
    emulator: RunningEmulator, clock: EmulatorClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await register("rot-leak")
    clock.advance("P70D")
    events = await run_day()
    await harness.register(rotate_request("rot-leak"))
    secrets = emulator.admin.issued_secrets()
    assert secrets
    text = json.dumps(events) + "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not [s for s in secrets if s in text]


async def test_concurrent_rotations_each_send_their_event(emulator: RunningEmulator) -> None:
    """Deliveries running at once (the host's maxConcurrentCalls) share one sender per queue:
    each one's event reaches the events queue (a shared sender once refused concurrent sends)."""
    for i in range(6):
        await register(f"concurrent-{i}", {"type": "secret", "lifetime": "P3M"})
    clock = EmulatorClock(emulator.admin)
    testing.use_clock(clock.now)
    try:
        clock.advance("P75D")
        rotations, _ = await run_scheduler()
        sent = await asyncio.gather(*(harness.rotate(body) for body in rotations))
    finally:
        testing.use_clock(None)
    rotated = sorted(json.loads(e)["app"]["uniqueName"] for events in sent for e in events)
    assert rotated == [f"concurrent-{i}" for i in range(6)]
