"""Data access to Azure Health Data Services: which Azure RBAC data roles a client holds on
which FHIR or DICOM service, and how the service names the role assignments it makes. Pure.

**Catalog.** ``HEALTH_DATA_SERVICES`` names each service a ticket may ask access to, with its
Azure Resource Manager id (the assignment's scope) and its URL. Only the Health Data Services
FHIR and DICOM services (``…/workspaces/{ws}/fhirservices/{n}``, ``…/dicomservices/{n}``) can
be named: Azure API for FHIR (``Microsoft.HealthcareApis/services``) was retired on
30 September 2026.

**Roles.** Only the built-in FHIR and DICOM data roles exist here, by their documented ids
(learn.microsoft.com/azure/role-based-access-control/built-in-roles). No Owner, Contributor
or access-administration role can be named, whatever the settings say; ``DATA_ROLES``
narrows the list further.

**Names.** Every assignment the service makes is named by a name-based UUID over scope,
principal and role, so a redelivery PUTs the same assignment again and converge can tell the
service's assignments from anyone else's (a hand-made one has a random name and is never
touched).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.messages.base import FieldError
from shared.messages.requests import RegisterRequest

Kind = Literal["fhir", "dicom"]
# The DICOM service's token audience is one for every DICOM service (platform-facts.md);
# a FHIR service's audience is its own URL.
DICOM_AUDIENCE = "https://dicom.healthcareapis.azure.com"
MAX_SERVICES = 10

_NAMESPACE = uuid.UUID("8a3f6d2e-5c1b-4e7a-9f0d-2b6c4e8a1d37")
_SERVICE_ID = re.compile(
    r"/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/[-\w._()]{1,90}"
    r"/providers/Microsoft\.HealthcareApis/workspaces/[a-z0-9]{3,24}"
    r"/(?P<type>fhirservices|dicomservices)/[a-z0-9]{3,24}",
    re.IGNORECASE,
)
_RETIRED_ID = re.compile(r"/providers/Microsoft\.HealthcareApis/services/", re.IGNORECASE)


@dataclass(frozen=True)
class DataRole:
    """A built-in data-plane role of Azure Health Data Services."""

    name: str
    id: str
    kind: Kind


DATA_ROLES: Mapping[str, DataRole] = {
    role.name: role
    for role in (
        DataRole("FHIR Data Reader", "4c8d0bbc-75d3-4935-991f-5f3c56d81508", "fhir"),
        DataRole("FHIR Data Writer", "3f88fce4-5892-4214-ae73-ba5294559913", "fhir"),
        DataRole("FHIR Data Contributor", "5a1fc7df-4bf1-4951-a576-89034ee01acd", "fhir"),
        DataRole("FHIR Data Exporter", "3db33094-8700-4567-8da5-1501d4e7e843", "fhir"),
        DataRole("FHIR Data Importer", "4465e953-8ced-4406-a58e-0f6e3f3b530b", "fhir"),
        DataRole("FHIR Data Converter", "a1705bd2-3a8f-45a5-8683-466fcfd5cc24", "fhir"),
        DataRole("FHIR SMART User", "4ba50f17-9666-485c-a643-ff00808643f0", "fhir"),
        DataRole("DICOM Data Reader", "e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a", "dicom"),
        DataRole("DICOM Data Owner", "58a3b984-7adf-4c20-983a-32417c86fbc8", "dicom"),
    )
}
_BY_ID = {role.id: role for role in DATA_ROLES.values()}


def data_role(name: str) -> DataRole | None:
    """The role of this name; Azure's role names compare case-insensitively."""
    folded = name.casefold()
    return next((r for r in DATA_ROLES.values() if r.name.casefold() == folded), None)


def role_of_definition(role_definition_id: str) -> DataRole | None:
    """The data role a ``roleDefinitionId`` (``…/roleDefinitions/{guid}``) points at, if any."""
    return _BY_ID.get(role_definition_id.rsplit("/", 1)[-1].lower())


@dataclass(frozen=True)
class HealthDataService:
    """A FHIR or DICOM service of the catalog: where its data plane is, and its ARM id."""

    name: str
    resource_id: str
    url: str

    @property
    def kind(self) -> Kind:
        return "fhir" if "/fhirservices/" in self.resource_id.lower() else "dicom"

    @property
    def audience(self) -> str:
        return self.url if self.kind == "fhir" else DICOM_AUDIENCE

    @property
    def token_scope(self) -> str:
        """What a client asks a token for to call this service."""
        return f"{self.audience}/.default"

    def role_definition_id(self, role: DataRole) -> str:
        """The role's definition id as Resource Manager wants it in an assignment."""
        subscription = self.resource_id.split("/")[2]
        return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role.id}"


def health_data_service(name: str, resource_id: str, url: str) -> HealthDataService:
    """A catalog entry, validated; raises ``ValueError`` saying what is wrong."""
    if _RETIRED_ID.search(resource_id):
        raise ValueError(
            f"{name}: Azure API for FHIR (Microsoft.HealthcareApis/services) was retired on "
            "30 September 2026; name a Health Data Services FHIR or DICOM service"
        )
    if not _SERVICE_ID.fullmatch(resource_id):
        raise ValueError(
            f"{name}: resourceId must be /subscriptions/{{id}}/resourceGroups/{{group}}/providers/"
            "Microsoft.HealthcareApis/workspaces/{workspace}/fhirservices|dicomservices/{name}"
        )
    if not url.lower().startswith("https://") or any(c.isspace() for c in url):
        raise ValueError(f"{name}: url must be the service's https:// URL")
    return HealthDataService(name, resource_id, url.rstrip("/"))


@dataclass(frozen=True)
class DataAccessPolicy:
    """The catalog, and the data roles a ticket may ask for."""

    services: Mapping[str, HealthDataService]
    roles: frozenset[str]


@dataclass(frozen=True)
class Assignment:
    """One role assignment: ``role`` for ``principal_id`` on ``service``, named as the service
    names its own."""

    service: HealthDataService
    role: DataRole
    principal_id: str

    @property
    def scope(self) -> str:
        return self.service.resource_id

    @property
    def name(self) -> str:
        return assignment_name(self.scope, self.principal_id, self.role.id)


def assignment_name(scope: str, principal_id: str, role_id: str) -> str:
    """The name-based UUID of the service's assignment of ``role_id`` to ``principal_id`` at
    ``scope``: the same on every delivery, and ARM compares ids case-insensitively."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope.lower()}|{principal_id.lower()}|{role_id.lower()}"))


def data_access_problems(request: RegisterRequest, policy: DataAccessPolicy) -> list[FieldError]:
    """What the policy refuses in ``request.dataAccess``, found before anything is written:
    a service outside the catalog, a role that is not a data role of that service's kind, or
    one the policy does not allow."""
    errors: list[FieldError] = []
    for i, entry in enumerate(request.data_access):
        service = policy.services.get(entry.service)
        if service is None:
            names = ", ".join(sorted(policy.services)) or "none configured"
            errors.append(
                FieldError(
                    field=f"dataAccess[{i}].service",
                    code="service_not_in_catalog",
                    message=f"The service's catalog (HEALTH_DATA_SERVICES) has no such service; it has: {names}.",
                )
            )
            continue
        for j, name in enumerate(entry.roles):
            role = data_role(name)
            field = f"dataAccess[{i}].roles[{j}]"
            if role is None:
                errors.append(
                    FieldError(
                        field=field,
                        code="role_not_allowed",
                        message="Only the FHIR and DICOM data roles can be requested: "
                        + ", ".join(DATA_ROLES)
                        + ".",
                    )
                )
            elif role.kind != service.kind:
                errors.append(
                    FieldError(
                        field=field,
                        code="role_not_for_service",
                        message=f"{role.name} is a {role.kind.upper()} role; {entry.service} is a "
                        f"{service.kind.upper()} service.",
                    )
                )
            elif role.name not in policy.roles:
                errors.append(
                    FieldError(
                        field=field,
                        code="role_not_allowed",
                        message="The service's policy (DATA_ROLES) allows only: "
                        + ", ".join(r for r in DATA_ROLES if r in policy.roles)
                        + ".",
                    )
                )
    return errors


def desired_assignments(
    request: RegisterRequest, policy: DataAccessPolicy, principal_id: str
) -> list[Assignment]:
    """The assignments ``request`` asks for (after ``data_access_problems`` found none)."""
    wanted: list[Assignment] = []
    for entry in request.data_access:
        service = policy.services[entry.service]
        for name in entry.roles:
            role = data_role(name)
            assert role is not None  # by data_access_problems
            wanted.append(Assignment(service, role, principal_id))
    return wanted


@dataclass(frozen=True)
class Existing:
    """A role assignment Resource Manager lists for the principal at exactly a catalog scope."""

    scope: str
    name: str
    role_definition_id: str
    principal_id: str


def made_by_service(existing: Existing, services: Iterable[HealthDataService]) -> Assignment | None:
    """The assignment ``existing`` is, if the service made it: a data role on a catalog
    service, under the name the service gives it. Anything else is someone else's."""
    role = role_of_definition(existing.role_definition_id)
    if role is None:
        return None
    for service in services:
        if service.resource_id.lower() == existing.scope.lower():
            mine = Assignment(service, role, existing.principal_id)
            return mine if mine.name == existing.name.lower() else None
    return None


def plan_assignments(
    wanted: Sequence[Assignment], existing: Sequence[Existing], services: Iterable[HealthDataService]
) -> tuple[list[Assignment], list[Assignment]]:
    """(to make, to remove): a wanted role the principal does not hold at the service yet is
    made (one it holds through anyone's assignment is held already); the service's own
    assignments that are no longer wanted are removed; anyone else's are left alone."""
    held = {(e.scope.lower(), e.role_definition_id.rsplit("/", 1)[-1].lower()) for e in existing}
    names = {a.name for a in wanted}
    to_make = [a for a in wanted if (a.scope.lower(), a.role.id) not in held]
    return to_make, [a for a in services_own(existing, services) if a.name not in names]


def services_own(existing: Sequence[Existing], services: Iterable[HealthDataService]) -> list[Assignment]:
    """Of ``existing``, the assignments the service made (``made_by_service``)."""
    catalog = list(services)
    return [a for a in (made_by_service(e, catalog) for e in existing) if a is not None]
