"""The seeded tenant: Microsoft's first-party resources the service asks permissions of,
a few users, the service's own identity (least privilege) and an admin identity for tests;
and the seeded Azure subscription (``seed_azure``): resource group ``rg-health`` with a Health
Data Services workspace ``healthws``, its FHIR service ``fhir01`` and DICOM service
``dicom01``; the service identity holds Role Based Access Control Administrator on the
workspace, constrained to the nine FHIR and DICOM data roles, and the admin identity holds
Owner on the subscription.

App role and scope ids of Microsoft Graph are the documented ones
(learn.microsoft.com/graph/permissions-reference); the service resolves ids by name at run
time, as it must against a real tenant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulator.arm import (
    HEALTH_DATA_ROLES,
    OWNER,
    RBAC_ADMINISTRATOR,
    Condition,
    ResourceManager,
    constrained_delegation_condition,
)
from emulator.clock import iso
from emulator.directory import Directory, Json
from emulator.errors import PlatformError

if TYPE_CHECKING:
    from emulator.keyvault import Vault

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
HEALTHCARE_APIS_APP_ID = "4f6778d8-5aef-43dc-a1ff-b073724b9495"
DICOM_RESOURCE = "https://dicom.healthcareapis.azure.com"
# An API besides Graph with an application permission: Exchange Online's full_access_as_app
# (every mailbox, no user), the kind of app role a ticket must never obtain unasked.
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EXCHANGE_APP_ROLES = {"full_access_as_app": "dc890d15-9560-4a4c-9b7f-a736ec74ec40"}

# Microsoft Graph application permissions (app roles): value -> documented id
GRAPH_APP_ROLES = {
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "DelegatedPermissionGrant.ReadWrite.All": "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    "RoleManagement.ReadWrite.Directory": "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "User.ReadWrite.All": "741f803b-c850-494e-b5df-cde7c675a1ca",
}
# Microsoft Graph delegated permissions (scopes): value -> documented id
GRAPH_SCOPES = {
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    "User.Read.All": "a154be20-db9c-4678-8ab7-66f6cc099a59",
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "Directory.AccessAsUser.All": "0e263e50-5827-48a4-b97c-d940288653c7",
}

# The least-privilege set the service runs with (issue 3).
SERVICE_ROLES = (
    "Application.ReadWrite.OwnedBy",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
)
ADMIN_ROLES = (
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
)

_NS = uuid.UUID("6f1c1d0e-6a43-4d0c-9d55-6b0e0e6a7a10")


def stable_id(name: str) -> str:
    """Deterministic ids for seeded objects, so that a reset tenant looks the same."""
    return str(uuid.uuid5(_NS, name))


@dataclass(frozen=True)
class Identity:
    app_id: str
    secret: str
    object_id: str
    service_principal_id: str


@dataclass(frozen=True)
class Seeded:
    service: Identity
    admin: Identity


def _scope(value: str, scope_id: str, description: str) -> Json:
    return {
        "adminConsentDescription": description,
        "adminConsentDisplayName": description,
        "id": scope_id,
        "isEnabled": True,
        "type": "Admin",
        "userConsentDescription": description,
        "userConsentDisplayName": description,
        "value": value,
    }


def _role(value: str, role_id: str) -> Json:
    return {
        "allowedMemberTypes": ["Application"],
        "description": value,
        "displayName": value,
        "id": role_id,
        "isEnabled": True,
        "origin": "Application",
        "value": value,
    }


def _resource_sp(
    directory: Directory, app_id: str, name: str, names: list[str], scopes: list[Json], roles: list[Json]
) -> Json:
    sp: Json = {
        "id": stable_id(f"sp:{app_id}"),
        "appId": app_id,
        "displayName": name,
        "appDisplayName": name,
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",  # Microsoft Services
        "servicePrincipalNames": [app_id, *names],
        "oauth2PermissionScopes": scopes,
        "appRoles": roles,
        "createdDateTime": iso(directory.clock.now()),
    }
    directory.service_principals[sp["id"]] = sp
    directory.sp_by_app_id[app_id] = sp["id"]
    return sp


def _client(directory: Directory, name: str, secret: str, roles: tuple[str, ...], graph_sp: Json) -> Identity:
    now = directory.clock.now()
    app_id, object_id, sp_id = stable_id(f"app:{name}"), stable_id(f"obj:{name}"), stable_id(f"spobj:{name}")
    key_id = stable_id(f"key:{name}")
    directory.applications[object_id] = {
        "id": object_id,
        "appId": app_id,
        "displayName": name,
        "signInAudience": "AzureADMyOrg",
        "createdDateTime": iso(now),
        "passwordCredentials": [
            {
                "customKeyIdentifier": None,
                "displayName": "seeded",
                "endDateTime": iso(now + dt.timedelta(days=365 * 100)),
                "hint": secret[:3],
                "keyId": key_id,
                "secretText": None,
                "startDateTime": iso(now - dt.timedelta(days=1)),
            }
        ],
    }
    directory.app_by_app_id[app_id] = object_id
    directory.secret_values[key_id] = secret
    directory.service_principals[sp_id] = {
        "id": sp_id,
        "appId": app_id,
        "displayName": name,
        "appDisplayName": name,
        "appOwnerOrganizationId": directory.tenant_id,
        "servicePrincipalNames": [app_id],
        "signInAudience": "AzureADMyOrg",
        "createdDateTime": iso(now),
    }
    directory.sp_by_app_id[app_id] = sp_id
    for role in roles:
        assignment_id = stable_id(f"assignment:{name}:{role}")
        directory.app_role_assignments[assignment_id] = {
            "id": assignment_id,
            "appRoleId": GRAPH_APP_ROLES[role],
            "createdDateTime": iso(now),
            "deletedDateTime": None,
            "principalDisplayName": name,
            "principalId": sp_id,
            "principalType": "ServicePrincipal",
            "resourceDisplayName": graph_sp["displayName"],
            "resourceId": graph_sp["id"],
        }
    return Identity(app_id, secret, object_id, sp_id)


def new_client_secret() -> str:
    """A secret shaped like Entra's: 40 characters."""
    return secrets.token_urlsafe(30)


def seed(directory: Directory, service_secret: str, admin_secret: str) -> Seeded:
    """Fill an empty directory with the seeded tenant. The two identities' secrets are given,
    so that a reset tenant keeps the credentials written to settings.env."""
    graph_sp = _resource_sp(
        directory,
        GRAPH_APP_ID,
        "Microsoft Graph",
        ["https://graph.microsoft.com", "https://graph.microsoft.com/", "https://canary.graph.microsoft.com"],
        [_scope(v, i, f"Microsoft Graph delegated permission {v}") for v, i in GRAPH_SCOPES.items()],
        [_role(v, i) for v, i in GRAPH_APP_ROLES.items()],
    )
    _resource_sp(
        directory,
        HEALTHCARE_APIS_APP_ID,
        "Azure Healthcare APIs",
        ["https://azurehealthcareapis.com"],
        [
            _scope(
                "user_impersonation",
                stable_id("scope:healthcare:user_impersonation"),
                "Access Azure Healthcare APIs",
            )
        ],
        [],
    )
    _resource_sp(
        directory,
        stable_id("app:dicom"),
        "Azure API for DICOM",
        [DICOM_RESOURCE],
        [
            _scope(
                "user_impersonation", stable_id("scope:dicom:user_impersonation"), "Access the DICOM service"
            ),
            _scope("Dicom.ReadWrite", stable_id("scope:dicom:Dicom.ReadWrite"), "Read and write DICOM data"),
        ],
        [],
    )
    _resource_sp(
        directory,
        EXCHANGE_APP_ID,
        "Office 365 Exchange Online",
        ["https://outlook.office365.com", "https://outlook.office.com"],
        [],
        [_role(v, i) for v, i in EXCHANGE_APP_ROLES.items()],
    )
    for given, surname in (("Alice", "Admin"), ("Bob", "Builder"), ("Carol", "Clinician")):
        user_id = stable_id(f"user:{given}")
        upn = f"{given.lower()}@contoso.onmicrosoft.com"
        directory.users[user_id] = {
            "id": user_id,
            "displayName": f"{given} {surname}",
            "givenName": given,
            "surname": surname,
            "mail": upn,
            "userPrincipalName": upn,
        }
    service = _client(directory, "entra-app-registration-service", service_secret, SERVICE_ROLES, graph_sp)
    admin = _client(directory, "emulator-admin", admin_secret, ADMIN_ROLES, graph_sp)
    return Seeded(service=service, admin=admin)


# -- the Azure subscription ------------------------------------------------------------------------

SUBSCRIPTION_ID = stable_id("subscription:health")
RESOURCE_GROUP = "rg-health"
HEALTH_WORKSPACE = "healthws"
FHIR_SERVICE = "fhir01"
DICOM_SERVICE = "dicom01"


@dataclass(frozen=True)
class AzureSeed:
    """The seeded resources' ids and the seeded role assignments' names."""

    subscription: str
    resource_group: str
    workspace: str
    fhir: str
    dicom: str
    service_assignment: str
    admin_assignment: str


def seed_azure(arm: ResourceManager, seeded: Seeded) -> AzureSeed:
    """Fill an empty Resource Manager: the scopes, and the two identities' role assignments."""
    subscription = arm.add_scope(f"/subscriptions/{arm.subscription_id}")
    group = arm.add_scope(f"{subscription}/resourceGroups/{RESOURCE_GROUP}")
    workspace = arm.add_scope(f"{group}/providers/Microsoft.HealthcareApis/workspaces/{HEALTH_WORKSPACE}")
    fhir = arm.add_scope(f"{workspace}/fhirservices/{FHIR_SERVICE}")
    dicom = arm.add_scope(f"{workspace}/dicomservices/{DICOM_SERVICE}")
    service_assignment = stable_id("roleassignment:service:rbac-administrator")
    arm.put(
        scope=workspace,
        name=service_assignment,
        role_id=RBAC_ADMINISTRATOR,
        principal_id=seeded.service.service_principal_id,
        principal_type="ServicePrincipal",
        caller=None,
        description="The service may assign and remove only the FHIR and DICOM data roles.",
        condition=Condition.parse(constrained_delegation_condition(HEALTH_DATA_ROLES)),
        condition_version="2.0",
    )
    admin_assignment = stable_id("roleassignment:admin:owner")
    arm.put(
        scope=subscription,
        name=admin_assignment,
        role_id=OWNER,
        principal_id=seeded.admin.service_principal_id,
        principal_type="ServicePrincipal",
        caller=None,
    )
    return AzureSeed(subscription, group, workspace, fhir, dicom, service_assignment, admin_assignment)


# -- copies of a registered application, for scale benchmarks ----------------------------------


def clone_application(directory: Directory, vault: Vault, template: str, names: Sequence[str]) -> int:
    """Copies of the application whose uniqueName is ``template``, one per name in ``names``:
    exactly what the service's registration wrote for it, in bulk. The application (tags,
    passwordCredentials, every other property), its service principal, their owners and the
    Key Vault secret ``app-{uniqueName}`` with all its versions are copied; every id (object
    ids, appId, each credential's keyId, version ids) is new, and each credential gets a new
    value, its ``hint`` and its vault versions following. Wherever the template's uniqueName,
    ids or keyIds appear in a string (displayName, tags, version tags), the copy's stand
    instead; times are the template's. Returns how many were made.

    Refused (``ValueError``): a template that is missing, has certificates, federated
    credentials or consent (not copied), or a name already taken."""
    object_id = directory.app_by_unique_name.get(template.casefold())
    if object_id is None:
        raise ValueError(f"no application with uniqueName {template}")
    app = directory.applications[object_id]
    if app.get("keyCredentials") or app.get("federatedIdentityCredentials"):
        raise ValueError("a template with certificates or federated credentials is not copied")
    sp_id = directory.sp_by_app_id.get(app["appId"])
    consent = [
        *((g["clientId"], g["resourceId"]) for g in directory.oauth2_permission_grants.values()),
        *((a["principalId"], a["resourceId"]) for a in directory.app_role_assignments.values()),
    ]
    if sp_id is not None and any(sp_id in pair for pair in consent):
        raise ValueError("a template with consent is not copied")
    taken = [n for n in names if n.casefold() in directory.app_by_unique_name]
    if taken:
        raise ValueError(f"uniqueName {taken[0]} is taken")
    secret_name = f"app-{app['uniqueName']}"
    try:
        source_secret, _ = vault.properties(secret_name)
        source_versions = list(source_secret.versions)
    except PlatformError:
        source_versions = []
    for name in names:
        swap = {app["uniqueName"]: name, object_id: str(uuid.uuid4()), app["appId"]: str(uuid.uuid4())}
        if sp_id is not None:
            swap[sp_id] = str(uuid.uuid4())
        values: dict[str, str] = {}
        for credential in app.get("passwordCredentials", []):
            swap[credential["keyId"]] = new_key_id = str(uuid.uuid4())
            values[new_key_id] = new_client_secret()
        copy = _swapped(app, swap)
        for credential in copy.get("passwordCredentials", []):
            credential["hint"] = values[credential["keyId"]][:3]
        directory.secret_values.update(values)
        directory.add_application(copy, None, 0)
        for owner in directory.owners.get(object_id, []):
            directory.add_owner(copy["id"], owner)
        if sp_id is not None:
            sp_copy = directory.add_service_principal(
                _swapped(directory.service_principals[sp_id], swap), None, 0
            )
            for owner in directory.owners.get(sp_id, []):
                directory.add_owner(sp_copy["id"], owner)
        if source_versions:
            versions = []
            for v in source_versions:
                tags = _swapped(v.tags, swap) if v.tags is not None else None
                key_id = (tags or {}).get("keyId")
                value = values.get(key_id or "") or new_client_secret()
                versions.append(dataclasses.replace(v, version=uuid.uuid4().hex, value=value, tags=tags))
            vault.insert(f"app-{name}", versions)
    return len(names)


def _swapped(value: Any, swap: dict[str, str]) -> Any:
    """``value`` (JSON) copied, with each key of ``swap`` replaced by its value inside every string."""
    if isinstance(value, str):
        for old, new in swap.items():
            if old in value:
                value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _swapped(v, swap) for k, v in value.items()}
    if isinstance(value, list):
        return [_swapped(v, swap) for v in value]
    return value
