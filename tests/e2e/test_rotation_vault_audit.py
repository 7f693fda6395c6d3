"""The sweep between vault audits (``VAULT_AUDIT_DAYS``, shared/services/scheduler.py): the real
scheduler against the emulator, the day set by the emulator's clock as tests/e2e/test_rotation.py
sets it. On a day that is no audit the sweep decides from Graph, and reads one application's
secret only where Graph shows something its plan needs the vault for (no managed credential, or
two and more); on an audit day it lists the whole vault as before.

The trade, documented here and in docs/rotation.md: a secret damaged by hand in the vault,
behind an application whose one credential looks healthy in Graph, is found on the next audit
day, not on the day after."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import secrets
import uuid
from typing import Any

import pytest

from emulator.launcher import EmulatorClock, RunningEmulator
from shared.services.scheduler import vault_audit_day
from tests import harness
from tests.e2e.tenant import Tenant, add_password_by_hand
from tests.e2e.test_rotation import (
    check_invariants,
    credentials,
    register,
    rotate_request,
    run_scheduler,
    settle_rotation,
)
from tests.emulator.clients import credential, secret_client

AUDIT_DAYS = 7  # VAULT_AUDIT_DAYS' default, which these tests run with
DAY = dt.timedelta(days=1)


def move_to(clock: EmulatorClock, *, audit: bool, at_least: dt.timedelta = DAY) -> dt.datetime:
    """Forward to noon (UTC) of the first day at least ``at_least`` ahead that is (``audit``) or
    is not a vault-audit day; noon, so that the sweep runs on that day whatever it takes."""
    first = (clock.now() + at_least).date()
    for ahead in range(AUDIT_DAYS + 1):
        noon = dt.datetime.combine(first + ahead * DAY, dt.time(12), dt.UTC)
        if noon >= clock.now() + at_least and vault_audit_day(noon, AUDIT_DAYS) == audit:
            clock.set(noon)
            return noon
    raise AssertionError("unreachable")


async def sweep(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """One timer run: its messages, the Key Vault requests it made, and its summary
    (``rotation.scheduled``)."""
    emulator.admin.clear_requests()
    caplog.clear()
    messages, _ = await run_scheduler()
    vault = [e for e in emulator.admin.requests()["entries"] if e["service"] == "keyvault"]
    [record] = [r for r in caplog.records if r.getMessage() == "rotation.scheduled"]
    summary = {key: getattr(record, key) for key in ("managed", "needingWork", "vaultAudit", "vaultReads")}
    return [json.loads(m) for m in messages], vault, summary


def reasons(messages: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {m["uniqueName"]: m["reasons"] for m in messages}


@pytest.fixture(autouse=True)
def default_audit_days(settings_env: Any) -> None:
    """The default, whatever the environment running the tests says."""
    settings_env(VAULT_AUDIT_DAYS=str(AUDIT_DAYS))


@pytest.fixture
def summaries(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="shared.services.scheduler")
    return caplog


# -- which days are audits (pure) --------------------------------------------------------------------


def test_audit_days_are_the_utc_days_whose_ordinal_is_a_multiple() -> None:
    day = dt.datetime(2027, 6, 1, 0, 0, tzinfo=dt.UTC)
    audits = [d for d in range(28) if vault_audit_day(day + d * DAY, 7)]
    assert len(audits) == 4 and all(b - a == 7 for a, b in itertools.pairwise(audits))
    first = day + audits[0] * DAY
    assert first.toordinal() % 7 == 0
    # the whole UTC day, whatever offset the time is given in
    assert vault_audit_day(first + dt.timedelta(hours=23, minutes=59, seconds=59), 7)
    assert not vault_audit_day(first - dt.timedelta(seconds=1), 7)
    assert vault_audit_day(first.astimezone(dt.timezone(dt.timedelta(hours=-5))), 7)
    assert vault_audit_day(first.astimezone(dt.timezone(dt.timedelta(hours=14))), 7)


def test_every_day_is_an_audit_with_one() -> None:
    assert all(vault_audit_day(dt.datetime(2027, 6, 1, tzinfo=dt.UTC) + d * DAY, 1) for d in range(30))


# -- between audits ---------------------------------------------------------------------------------


async def test_a_healthy_application_costs_no_vault_request_between_audits(
    emulator: RunningEmulator, clock: EmulatorClock, summaries: pytest.LogCaptureFixture
) -> None:
    await register("audit-healthy")
    await register("audit-public", {"type": "none"})
    move_to(clock, audit=False)
    messages, vault, summary = await sweep(emulator, summaries)
    assert messages == []
    assert vault == []
    assert summary == {"managed": 2, "needingWork": 0, "vaultAudit": False, "vaultReads": 0}

    # Expiry is Graph's to tell: inside the window it is found without the vault too.
    move_to(clock, audit=False, at_least=dt.timedelta(days=65))
    messages, vault, summary = await sweep(emulator, summaries)
    assert reasons(messages) == {"audit-healthy": ["rotate:expiring"]}
    assert vault == [] and summary["vaultReads"] == 0


async def test_a_secret_damaged_by_hand_is_found_on_the_audit_day_not_between(
    emulator: RunningEmulator, clock: EmulatorClock, summaries: pytest.LogCaptureFixture
) -> None:
    """Someone sets a new version of the secret by hand (another value, another keyId): the
    unversioned secret opens nothing, while Graph shows a healthy credential. Between audits
    the sweep trusts Graph and does not see it (the documented trade: found within
    VAULT_AUDIT_DAYS); the audit day's listing finds it, and the worker repairs it."""
    await register("audit-damaged")
    await register("audit-intact")
    service = credential(emulator.settings)
    vault = secret_client(emulator.settings, service)
    try:
        # a value made here, never written in this file: a failure report shows the source
        await vault.set_secret(
            "app-audit-damaged", secrets.token_urlsafe(24), tags={"keyId": str(uuid.uuid4())}
        )
    finally:
        await vault.close()
        await service.close()

    move_to(clock, audit=False)
    messages, requests, summary = await sweep(emulator, summaries)
    assert messages == [] and requests == []  # not found between audits
    assert summary["vaultAudit"] is False

    move_to(clock, audit=True)
    messages, requests, summary = await sweep(emulator, summaries)
    assert reasons(messages) == {"audit-damaged": ["rotate:latest-not-valid"]}
    assert summary == {"managed": 2, "needingWork": 1, "vaultAudit": True, "vaultReads": 0}
    assert requests and all(r["method"] == "GET" and r["path"].rstrip("/") == "/secrets" for r in requests)

    await settle_rotation(json.dumps(messages[0]))
    check_invariants(Tenant.read(emulator), "audit-damaged")


async def test_two_managed_credentials_get_one_vault_read_and_the_right_plan(
    emulator: RunningEmulator, clock: EmulatorClock, summaries: pytest.LogCaptureFixture
) -> None:
    """An overlap (a rotation on request) past its grace period: the one read of the secret says
    which credential consumers read, and the other is retired."""
    registered = await register("audit-overlap")
    await register("audit-bystander")
    reply = await harness.register(rotate_request("audit-overlap"))
    assert reply["status"] == "succeeded", reply["errors"]

    move_to(clock, audit=False, at_least=dt.timedelta(hours=49))
    messages, requests, summary = await sweep(emulator, summaries)
    assert reasons(messages) == {"audit-overlap": ["retire:superseded"]}
    assert [(r["method"], r["path"].rstrip("/")) for r in requests] == [("GET", "/secrets/app-audit-overlap")]
    assert summary == {"managed": 2, "needingWork": 1, "vaultAudit": False, "vaultReads": 1}

    await settle_rotation(json.dumps(messages[0]))
    tenant = Tenant.read(emulator)
    [kept] = credentials(tenant, "audit-overlap")
    assert kept["keyId"] == reply["credential"]["keyId"] != registered["credential"]["keyId"]
    check_invariants(tenant, "audit-overlap")


async def test_a_suspected_orphan_is_found_between_audits_from_the_secret_read(
    emulator: RunningEmulator, clock: EmulatorClock, summaries: pytest.LogCaptureFixture
) -> None:
    """A managed credential newer than the one the secret holds, stored nowhere (an addPassword
    whose answer was lost): assuming the newest current would hide it; the read does not."""
    registered = await register("audit-orphan")
    object_id = registered["application"]["objectId"]
    add_password_by_hand(emulator, object_id, "job [managed:rotation:2026-01-01]")
    move_to(clock, audit=False)
    messages, requests, summary = await sweep(emulator, summaries)
    assert reasons(messages) == {"audit-orphan": ["cleanup:suspected-not-stored"]}
    assert [(r["method"], r["path"].rstrip("/")) for r in requests] == [("GET", "/secrets/app-audit-orphan")]
    assert summary["vaultReads"] == 1

    await settle_rotation(json.dumps(messages[0]))
    tenant = Tenant.read(emulator)
    assert [p["keyId"] for p in credentials(tenant, "audit-orphan")] == [registered["credential"]["keyId"]]
    check_invariants(tenant, "audit-orphan")


async def test_a_credential_removed_by_hand_in_graph_is_found_between_audits(
    emulator: RunningEmulator, clock: EmulatorClock, summaries: pytest.LogCaptureFixture
) -> None:
    registered = await register("audit-removed")
    await register("audit-untouched")
    object_id = registered["application"]["objectId"]
    removed = emulator.admin.graph(
        "POST", f"/applications/{object_id}/removePassword", json={"keyId": registered["credential"]["keyId"]}
    )
    assert removed.status_code == 204
    move_to(clock, audit=False)
    messages, requests, summary = await sweep(emulator, summaries)
    assert reasons(messages) == {"audit-removed": ["rotate:not-stored"]}
    assert [(r["method"], r["path"].rstrip("/")) for r in requests] == [("GET", "/secrets/app-audit-removed")]
    assert summary == {"managed": 2, "needingWork": 1, "vaultAudit": False, "vaultReads": 1}

    await settle_rotation(json.dumps(messages[0]))
    check_invariants(Tenant.read(emulator), "audit-removed")


async def test_vault_audit_days_one_lists_the_vault_every_day(
    emulator: RunningEmulator, clock: EmulatorClock, settings_env: Any, summaries: pytest.LogCaptureFixture
) -> None:
    await register("audit-daily")
    settings_env(VAULT_AUDIT_DAYS="1")
    move_to(clock, audit=False)  # no audit day by the default, an audit by the setting
    messages, requests, summary = await sweep(emulator, summaries)
    assert messages == []
    assert summary["vaultAudit"] is True and summary["vaultReads"] == 0
    assert requests and {r["path"].rstrip("/") for r in requests} == {"/secrets"}
