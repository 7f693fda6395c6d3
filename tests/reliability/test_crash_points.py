"""A fault at every Graph and Key Vault request of each workflow, then redelivery: the same
final tenant and vault as a clean run (see crash_points.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.test_registration import sample
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


DECOMMISSION = {
    "schemaVersion": 1,
    "requestId": "SNOW-CHG0012399",
    "action": "decommission",
    "requestedBy": "alice@contoso.com",
    "application": {"uniqueName": "dicom-ingest-prod"},
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
        "decommission",
        "dicom-ingest-prod",
        register_delivery(DECOMMISSION),
        prepare=lambda emulator: _register(emulator, "service-client"),
    ),
]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_crash_point_converges(emulator: RunningEmulator, scenario: Scenario, fault: str) -> None:
    covered = await check_every_crash_point(emulator, scenario, fault)
    print(f"{scenario.name}: {fault} at each of {covered} requests converged")
