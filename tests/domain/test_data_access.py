"""Data access decisions without I/O: the catalog's validation, the policy's verdict on a
request's dataAccess, the service's assignment names, and what converge makes and removes."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.data_access import (
    DATA_ROLES,
    DICOM_AUDIENCE,
    Assignment,
    DataAccessPolicy,
    Existing,
    assignment_name,
    data_access_problems,
    desired_assignments,
    health_data_service,
    plan_assignments,
)
from tests.messages.requests_fixtures import VALID, register, with_changes

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
WORKSPACE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-health/providers/Microsoft.HealthcareApis/workspaces/healthws"
)
FHIR = health_data_service(
    "fhir", f"{WORKSPACE}/fhirservices/fhir01", "https://healthws-fhir01.fhir.azurehealthcareapis.com/"
)
DICOM = health_data_service(
    "dicom", f"{WORKSPACE}/dicomservices/dicom01", "https://healthws-dicom01.dicom.azurehealthcareapis.com"
)
POLICY = DataAccessPolicy(services={"fhir": FHIR, "dicom": DICOM}, roles=frozenset(DATA_ROLES))
SP = "5b8a7c1e-0000-4000-8000-000000000001"


def request(*entries: dict[str, Any]):
    return register(with_changes("dataAccess", list(entries), VALID))


def test_a_service_knows_its_kind_audience_and_role_definition_ids() -> None:
    assert (FHIR.kind, DICOM.kind) == ("fhir", "dicom")
    assert FHIR.url == "https://healthws-fhir01.fhir.azurehealthcareapis.com"  # no trailing slash
    assert FHIR.token_scope == f"{FHIR.url}/.default"
    assert DICOM.token_scope == f"{DICOM_AUDIENCE}/.default"
    reader = DATA_ROLES["FHIR Data Reader"]
    assert FHIR.role_definition_id(reader) == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{reader.id}"
    )


@pytest.mark.parametrize(
    ("resource_id", "says"),
    [
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.HealthcareApis/services/fhir1",
            "retired",
        ),
        (f"{WORKSPACE}", "resourceId must be"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x",
            "resourceId",
        ),
        (f"{WORKSPACE}/fhirservices/fhir01/extra", "resourceId"),
    ],
)
def test_the_catalog_takes_only_health_data_services(resource_id: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        health_data_service("x", resource_id, "https://x.fhir.azurehealthcareapis.com")


def test_the_catalog_wants_an_https_url() -> None:
    with pytest.raises(ValueError, match="https"):
        health_data_service("x", f"{WORKSPACE}/fhirservices/fhir01", "http://x.fhir.azurehealthcareapis.com")


def test_names_are_stable_and_differ_by_scope_principal_and_role() -> None:
    reader, writer = DATA_ROLES["FHIR Data Reader"].id, DATA_ROLES["FHIR Data Writer"].id
    name = assignment_name(FHIR.resource_id, SP, reader)
    assert name == assignment_name(FHIR.resource_id.upper(), SP.upper(), reader)  # ARM ids ignore case
    assert (
        len(
            {
                name,
                assignment_name(DICOM.resource_id, SP, reader),
                assignment_name(FHIR.resource_id, SP, writer),
            }
        )
        == 3
    )
    assert name == assignment_name(FHIR.resource_id, SP, reader)


def test_the_policy_names_each_problem_by_field() -> None:
    problems = data_access_problems(
        request(
            {"service": "fhir", "roles": ["FHIR Data Reader", "Owner", "DICOM Data Reader"]},
            {"service": "pacs", "roles": ["DICOM Data Reader"]},
        ),
        DataAccessPolicy(services=POLICY.services, roles=frozenset({"FHIR Data Reader"})),
    )
    assert [(p.field, p.code) for p in problems] == [
        ("dataAccess[0].roles[1]", "role_not_allowed"),
        ("dataAccess[0].roles[2]", "role_not_for_service"),
        ("dataAccess[1].service", "service_not_in_catalog"),
    ]
    narrowed = data_access_problems(
        request({"service": "fhir", "roles": ["FHIR Data Writer"]}),
        DataAccessPolicy(services=POLICY.services, roles=frozenset({"FHIR Data Reader"})),
    )
    assert [(p.field, p.code) for p in narrowed] == [("dataAccess[0].roles[0]", "role_not_allowed")]
    assert "FHIR Data Reader" in narrowed[0].message


def test_role_names_compare_case_insensitively() -> None:
    wanted = desired_assignments(request({"service": "fhir", "roles": ["fhir data reader"]}), POLICY, SP)
    assert [a.role.name for a in wanted] == ["FHIR Data Reader"]


def existing(service: Any, role: str, name: str | None = None, principal: str = SP) -> Existing:
    definition = service.role_definition_id(DATA_ROLES[role])
    mine = assignment_name(service.resource_id, principal, DATA_ROLES[role].id)
    return Existing(
        scope=service.resource_id, name=name or mine, role_definition_id=definition, principal_id=principal
    )


def test_converge_makes_what_is_missing_and_removes_only_its_own() -> None:
    wanted = desired_assignments(
        request({"service": "fhir", "roles": ["FHIR Data Reader", "FHIR Data Writer"]}), POLICY, SP
    )
    current = [
        existing(FHIR, "FHIR Data Reader"),  # the service's, still wanted
        existing(FHIR, "FHIR Data Writer", name="1c0e7f1a-6b7d-4a51-9a55-0d7a9a3f2b10"),  # by hand
        existing(DICOM, "DICOM Data Owner"),  # the service's, no longer wanted
        existing(DICOM, "DICOM Data Reader", name="2d1f8a2b-7c8e-4b62-8b66-1e8b0b4a3c21"),  # by hand
    ]
    to_make, to_remove = plan_assignments(wanted, current, POLICY.services.values())
    assert to_make == []  # Reader is the service's, Writer is held through someone's assignment
    assert to_remove == [Assignment(DICOM, DATA_ROLES["DICOM Data Owner"], SP)]


def test_a_fresh_principal_gets_every_wanted_role() -> None:
    wanted = desired_assignments(request({"service": "dicom", "roles": ["DICOM Data Reader"]}), POLICY, SP)
    assert plan_assignments(wanted, [], POLICY.services.values()) == (wanted, [])


def test_assignments_outside_the_catalog_or_of_other_roles_are_never_the_services() -> None:
    elsewhere = Existing(
        scope=WORKSPACE,
        name=assignment_name(WORKSPACE, SP, DATA_ROLES["FHIR Data Reader"].id),
        role_definition_id=FHIR.role_definition_id(DATA_ROLES["FHIR Data Reader"]),
        principal_id=SP,
    )
    owner = Existing(
        scope=FHIR.resource_id,
        name=assignment_name(FHIR.resource_id, SP, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        role_definition_id=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        principal_id=SP,
    )
    assert plan_assignments([], [elsewhere, owner], POLICY.services.values()) == ([], [])
