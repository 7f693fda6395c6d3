"""Azure Health Data Services' data planes, as far as a client proves the access it was given:
the seeded workspace's FHIR service (R4) and DICOM service, each behind Microsoft Entra ID and
Azure RBAC.

- FHIR at ``{base}/fhir/{workspace}-{service}``, the path prefix standing for the host of
  ``https://{workspace}-{service}.fhir.azurehealthcareapis.com``. ``GET /metadata`` is
  anonymous: a CapabilityStatement whose ``rest[0].security`` carries the SMART ``oauth-uris``
  extension pointing at the emulated authority. ``GET /Patient`` searches the seeded patients
  and answers a ``searchset`` Bundle. A token's audience must be the service URL (platform-facts);
  without a valid one: 401 with ``WWW-Authenticate: Bearer authorization_uri, resource_id,
  realm`` and an OperationOutcome (``login``, "Authentication failed."); without the data action
  ``Microsoft.HealthcareApis/workspaces/fhirservices/resources/read``: 403 (``forbidden``,
  "Authorization failed.").
- DICOM at ``{base}/dicom/{workspace}-{service}`` (``https://{workspace}-{service}.dicom.
  azurehealthcareapis.com``): ``GET /v2/studies`` (QIDO-RS) answers the seeded study as DICOM
  JSON (``application/dicom+json``). Token audience ``https://dicom.healthcareapis.azure.com``;
  401 as ASP.NET's bearer handler answers it in the DICOM server (an empty body, the reason in
  ``WWW-Authenticate``); 403 as its exception filter does (text "Authorization failed.") without
  ``Microsoft.HealthcareApis/workspaces/dicomservices/resources/read``.

Who may do what is Azure RBAC's answer for the token's ``oid`` at the service's resource id,
parent scopes included, from the role table in emulator.arm; role assignments reach these data
planes only after the propagation delay (``ResourceManager.data_permitted``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.arm import DICOM_READ, FHIR_READ, ResourceManager
from emulator.clock import iso
from emulator.errors import DICOM_PREFIX, FHIR_PREFIX, PlatformError, request_id_of, service_headers
from emulator.identity import DICOM_AUDIENCE, Principal, TokenRejected

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

Json = dict[str, Any]

FHIR_JSON = "application/fhir+json"
DICOM_JSON = "application/dicom+json"

# The seeded clinical data: two patients in the FHIR service, one study in the DICOM service.
PATIENTS: tuple[Json, ...] = (
    {
        "resourceType": "Patient",
        "id": "0b6c2f6e-4f0e-4d9a-9a47-6d1f5b0c2a11",
        "meta": {"versionId": "1", "lastUpdated": "2024-01-15T09:30:00.000+00:00"},
        "active": True,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "PAT-0001"}],
        "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1984-03-12",
    },
    {
        "resourceType": "Patient",
        "id": "5d1e8f2a-7b3c-4e6d-8f9a-0c1b2d3e4f52",
        "meta": {"versionId": "1", "lastUpdated": "2024-02-02T14:05:00.000+00:00"},
        "active": True,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "PAT-0002"}],
        "name": [{"use": "official", "family": "Smith", "given": ["John"]}],
        "gender": "male",
        "birthDate": "1975-11-02",
    },
)
STUDY_INSTANCE_UID = "1.2.826.0.1.3680043.8.498.10485127633291538641"


def _study(url: str) -> Json:
    return {
        "00080020": {"vr": "DA", "Value": ["20240115"]},
        "00080030": {"vr": "TM", "Value": ["093000"]},
        "00080050": {"vr": "SH", "Value": ["ACC0001"]},
        "00080061": {"vr": "CS", "Value": ["CT"]},
        "00081030": {"vr": "LO", "Value": ["CT CHEST WITHOUT CONTRAST"]},
        "00081190": {"vr": "UR", "Value": [f"{url}/v2/studies/{STUDY_INSTANCE_UID}"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00100020": {"vr": "LO", "Value": ["PAT-0001"]},
        "00100030": {"vr": "DA", "Value": ["19840312"]},
        "0020000D": {"vr": "UI", "Value": [STUDY_INSTANCE_UID]},
        "00200010": {"vr": "SH", "Value": ["1"]},
        "00201206": {"vr": "IS", "Value": [1]},
        "00201208": {"vr": "IS", "Value": [1]},
    }


@dataclass(frozen=True)
class HealthService:
    """One data plane: its ARM resource id (the RBAC scope), its URL and the audiences its
    tokens may carry. ``path`` is the URL's path on the emulator (its stand-in host)."""

    kind: Literal["fhir", "dicom"]
    resource_id: str
    url: str
    path: str
    audiences: tuple[str, ...]

    @classmethod
    def of(cls, kind: Literal["fhir", "dicom"], base_url: str, resource_id: str) -> HealthService:
        parts = resource_id.rstrip("/").split("/")
        host = f"{parts[-3]}-{parts[-1]}"  # {workspace}-{service}
        path = f"{FHIR_PREFIX if kind == 'fhir' else DICOM_PREFIX}{host}"
        url = f"{base_url}{path}"
        audiences = (url, f"{url}/") if kind == "fhir" else (DICOM_AUDIENCE, f"{DICOM_AUDIENCE}/")
        return cls(kind, resource_id, url, path, audiences)


def _capability_statement(service: HealthService, authority: str, now: dt.datetime) -> Json:
    def resource(kind: str, params: Sequence[tuple[str, str]]) -> Json:
        return {
            "type": kind,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{kind}",
            "interaction": [{"code": c} for c in ("read", "vread", "search-type", "create", "update")],
            "versioning": "versioned",
            "searchParam": [{"name": n, "type": t} for n, t in params],
        }

    return {
        "resourceType": "CapabilityStatement",
        "url": f"{service.url}/metadata",
        "version": "1.0",
        "name": "FHIR Server for Azure",
        "status": "active",
        "experimental": False,
        "date": iso(now),
        "publisher": "Microsoft",
        "kind": "instance",
        "software": {"name": "Microsoft FHIR Server for Azure", "version": "4.0"},
        "implementation": {"description": "Azure Health Data Services FHIR service", "url": service.url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "token", "valueUri": f"{authority}/oauth2/v2.0/token"},
                                {"url": "authorize", "valueUri": f"{authority}/oauth2/v2.0/authorize"},
                            ],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                },
                "resource": [
                    resource("Patient", (("_id", "token"), ("identifier", "token"), ("name", "string"))),
                    resource("Observation", (("_id", "token"), ("subject", "reference"))),
                    resource("Encounter", (("_id", "token"), ("subject", "reference"))),
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "search-system"}],
            }
        ],
    }


def routes(
    identity: IdentityPlatform, current: Callable[[], ResourceManager], services: Sequence[HealthService]
) -> list[BaseRoute]:
    """Each service's routes under its ``path``; ``current`` gives the Resource Manager of the
    moment (whose role assignments decide)."""
    authority = f"{identity.base_url}/{identity.tenant_id}"

    def fhir_principal(service: HealthService, request: Request) -> Principal:
        try:
            principal = identity.verify(request, service.audiences)
        except TokenRejected:
            raise PlatformError(
                401,
                "login",
                "Authentication failed.",
                service="fhir",
                headers={
                    "WWW-Authenticate": f'Bearer authorization_uri="{authority}", '
                    f'resource_id="{service.url}", realm="{service.url}"'
                },
            ) from None
        if not current().data_permitted(principal.service_principal_id, FHIR_READ, service.resource_id):
            raise PlatformError(403, "forbidden", "Authorization failed.", service="fhir")
        return principal

    def dicom_principal(service: HealthService, request: Request) -> Principal:
        try:
            principal = identity.verify(request, service.audiences)
        except TokenRejected as rejected:
            challenge = "Bearer"
            if rejected.reason == "expired":
                exp = rejected.claims.get("exp")
                at = (
                    dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
                    if isinstance(exp, int | float)
                    else ""
                )
                challenge = f'Bearer error="invalid_token", error_description="The token expired at \'{at}\'"'
            elif rejected.reason == "audience":
                aud = rejected.claims.get("aud")
                challenge = (
                    f'Bearer error="invalid_token", error_description="The audience \'{aud}\' is invalid"'
                )
            elif rejected.reason == "invalid":
                challenge = 'Bearer error="invalid_token", error_description="The signature is invalid"'
            raise PlatformError(
                401, "Unauthorized", "", service="dicom", headers={"WWW-Authenticate": challenge}
            ) from None
        if not current().data_permitted(principal.service_principal_id, DICOM_READ, service.resource_id):
            raise PlatformError(403, "Forbidden", "Authorization failed.", service="dicom")
        return principal

    def fhir_routes(service: HealthService) -> list[BaseRoute]:
        async def metadata(request: Request) -> Response:
            body = _capability_statement(service, authority, current().clock.now())
            headers = service_headers("fhir", request_id_of(request))
            return JSONResponse(body, headers=headers, media_type=FHIR_JSON)

        async def patients(request: Request) -> Response:
            fhir_principal(service, request)
            rid = request_id_of(request)
            query = request.url.query
            bundle = {
                "resourceType": "Bundle",
                "id": rid,
                "meta": {"lastUpdated": iso(current().clock.now())},
                "type": "searchset",
                "link": [
                    {"relation": "self", "url": f"{service.url}/Patient" + (f"?{query}" if query else "")}
                ],
                "entry": [
                    {
                        "fullUrl": f"{service.url}/Patient/{patient['id']}",
                        "resource": patient,
                        "search": {"mode": "match"},
                    }
                    for patient in PATIENTS
                ],
            }
            return JSONResponse(bundle, headers=service_headers("fhir", rid), media_type=FHIR_JSON)

        return [
            Route(f"{service.path}/metadata", metadata, methods=["GET"]),
            Route(f"{service.path}/Patient", patients, methods=["GET"]),
        ]

    def dicom_routes(service: HealthService) -> list[BaseRoute]:
        async def studies(request: Request) -> Response:
            dicom_principal(service, request)
            headers = service_headers("dicom", request_id_of(request))
            return JSONResponse([_study(service.url)], headers=headers, media_type=DICOM_JSON)

        return [Route(f"{service.path}/v2/studies", studies, methods=["GET"])]

    out: list[BaseRoute] = []
    for service in services:
        out.extend(fhir_routes(service) if service.kind == "fhir" else dicom_routes(service))
    return out
