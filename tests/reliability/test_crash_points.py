"""A fault at every Graph and Key Vault request of each workflow, then redelivery: the same
final tenant and vault as a clean run (see crash_points.py)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from typing import Any

import pytest

from emulator.launcher import EmulatorClock, RunningEmulator
from shared import testing
from tests import harness
from tests.e2e.tenant import parse_time
from tests.e2e.test_registration import GRAPH_READER_POLICY, sample
from tests.e2e.test_rotation import run_scheduler, settle_rotation
from tests.reliability.crash_points import FAULTS, Scenario, check_every_crash_point, register_delivery


def _converge_request() -> dict[str, Any]:
    body = copy.deepcopy(sample("confidential-web-client"))
    body["requestId"] = "SNOW-CHG0077777"
    body["application"]["redirectUris"]["web"].append("https://fhir-viewer.contoso.com/auth/again")
    body["apiPermissions"].append({"api": "dicom", "delegated": ["Dicom.ReadWrite"]})
    graph = next(p for p in body["apiPermissions"] if p["api"] == "microsoft-graph")
    graph["application"] = ["User.Read.All"]
    return body


async def _register(emulator: RunningEmulator, name: str) -> None:
    reply = await harness.register(sample(name))
    assert reply["status"] == "succeeded"


def _federated(emulator_issuer: str, request_id: str, *subjects: tuple[str, str]) -> dict[str, Any]:
    body = copy.deepcopy(sample("service-client"))
    body["requestId"] = request_id
    body["federatedCredentials"] = [
        {"name": name, "issuer": emulator_issuer, "subject": subject} for name, subject in subjects
    ]
    return body


def _issuer() -> str:
    return os.environ["FEDERATED_ISSUERS"]


async def _register_federated(emulator: RunningEmulator) -> None:
    body = _federated(
        _issuer(), "SNOW-CHG0012500", ("keep", "s-keep"), ("change", "s-old"), ("drop", "s-drop")
    )
    reply = await harness.register(body)
    assert reply["status"] == "succeeded", reply["errors"]


async def _converge_federated() -> dict[str, Any]:
    body = _federated(
        _issuer(), "SNOW-CHG0012501", ("keep", "s-keep"), ("change", "s-new"), ("add", "s-drop")
    )
    reply, _ = await harness.deliver_until_settled(body)
    return reply


ROTATE = {
    "schemaVersion": 1,
    "requestId": "SNOW-CHG0012400",
    "action": "rotate",
    "requestedBy": "alice@contoso.com",
    "application": {
        "uniqueName": "dicom-ingest-prod",
        "serviceManagementReference": "CI0001001 DICOM ingest",
    },
}


class ScheduledRotation:
    """A rotation as the timer plans it: the app registered, the clock moved 20 days before its
    secret expires, the scheduler's message for it; then that message is delivered until settled."""

    def __init__(self, sample_name: str = "service-client") -> None:
        self.sample = sample_name
        self.body = ""

    async def prepare(self, emulator: RunningEmulator) -> None:
        testing.use_clock(None)
        reply = await harness.register(sample(self.sample))
        end = parse_time(reply["credential"]["endDateTime"])
        clock = EmulatorClock(emulator.admin)
        clock.set(end - dt.timedelta(days=20))
        testing.use_clock(clock.now)
        [self.body], _ = await run_scheduler()

    async def deliver(self) -> dict[str, Any]:
        events, _ = await settle_rotation(self.body)
        return {"status": "succeeded", "events": sorted((e["action"], e["reason"]) for e in events)}


SCHEDULED = ScheduledRotation()
SCHEDULED_CERTIFICATE = ScheduledRotation("certificate-client")

DECOMMISSION = {
    "schemaVersion": 1,
    "requestId": "SNOW-CHG0012399",
    "action": "decommission",
    "requestedBy": "alice@contoso.com",
    "application": {
        "uniqueName": "dicom-ingest-prod",
        "serviceManagementReference": "CI0001001 DICOM ingest",
    },
}

SCENARIOS = [
    Scenario("register service client", "dicom-ingest-prod", register_delivery(sample("service-client"))),
    Scenario(
        "register confidential web client",
        "fhir-viewer-prod",
        register_delivery(sample("confidential-web-client")),
    ),
    Scenario("register public client", "dicom-viewer", register_delivery(sample("public-client"))),
    Scenario(
        "converge",
        "fhir-viewer-prod",
        register_delivery(_converge_request()),
        prepare=lambda emulator: _register(emulator, "confidential-web-client"),
    ),
    Scenario(
        "rotate on request",
        "dicom-ingest-prod",
        register_delivery(ROTATE),
        prepare=lambda emulator: _register(emulator, "service-client"),
    ),
    Scenario(
        "converge federated credentials",
        "dicom-ingest-prod",
        _converge_federated,
        prepare=_register_federated,
    ),
    Scenario("scheduled rotation", "dicom-ingest-prod", SCHEDULED.deliver, prepare=SCHEDULED.prepare),
    Scenario(
        "register certificate client", "fhir-export-prod", register_delivery(sample("certificate-client"))
    ),
    Scenario(
        "scheduled certificate rotation",
        "fhir-export-prod",
        SCHEDULED_CERTIFICATE.deliver,
        prepare=SCHEDULED_CERTIFICATE.prepare,
    ),
    Scenario(
        "decommission",
        "dicom-ingest-prod",
        register_delivery(DECOMMISSION),
        prepare=lambda emulator: _register(emulator, "service-client"),
    ),
]


# Each scenario's points in this many tests, so that parallel workers share the waits; every
# scenario makes at least this many requests (asserted).
SHARES = 4


@pytest.mark.parametrize("share", range(1, SHARES + 1), ids=lambda share: f"share{share}of{SHARES}")
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_crash_point_converges(
    emulator: RunningEmulator, scenario: Scenario, fault: str, share: int, settings_env: Any
) -> None:
    # The converge scenario adds an application permission: an operator's policy allows it.
    settings_env(API_POLICY=json.dumps({"microsoft-graph": GRAPH_READER_POLICY}))
    try:
        covered, count = await check_every_crash_point(emulator, scenario, fault, share, SHARES)
    finally:
        testing.use_clock(None)
    print(f"{scenario.name}: {fault} at {covered} of its {count} requests (share {share}) converged")
