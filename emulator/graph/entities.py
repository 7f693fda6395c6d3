"""The Graph types this emulator serves, with what ``$filter`` may say about each property
(after the property tables of learn.microsoft.com/graph/api/resources/*)."""

from __future__ import annotations

from emulator.graph.common import Json
from emulator.graph.odata import COLLECTION, EQ, STRING, EntityType
from emulator.model import APPLICATION_DEFAULTS, SERVICE_PRINCIPAL_DEFAULTS, USER_DEFAULTS

GRANT_DEFAULTS: Json = {
    "id": None,
    "clientId": None,
    "consentType": None,
    "principalId": None,
    "resourceId": None,
    "scope": None,
}
ASSIGNMENT_DEFAULTS: Json = {
    "id": None,
    "deletedDateTime": None,
    "appRoleId": None,
    "createdDateTime": None,
    "principalDisplayName": None,
    "principalId": None,
    "principalType": None,
    "resourceDisplayName": None,
    "resourceId": None,
}
FEDERATED_DEFAULTS: Json = {
    "id": None,
    "audiences": [],
    "description": None,
    "issuer": None,
    "name": None,
    "subject": None,
}

APPLICATION = EntityType(
    "application",
    APPLICATION_DEFAULTS,
    {
        "id": EQ,
        "appId": EQ,
        "uniqueName": EQ,
        "displayName": STRING,
        "signInAudience": EQ,
        "publisherDomain": EQ,
        "serviceManagementReference": EQ,
        "tags": COLLECTION,
        "identifierUris": COLLECTION,
    },
)
SERVICE_PRINCIPAL = EntityType(
    "servicePrincipal",
    SERVICE_PRINCIPAL_DEFAULTS,
    {
        "id": EQ,
        "appId": EQ,
        "displayName": STRING,
        "servicePrincipalType": EQ,
        "appOwnerOrganizationId": EQ,
        "servicePrincipalNames": COLLECTION,
        "tags": COLLECTION,
        "alternativeNames": COLLECTION,
    },
)
USER = EntityType(
    "user",
    USER_DEFAULTS,
    {
        "id": EQ,
        "displayName": STRING,
        "userPrincipalName": STRING,
        "mail": STRING,
        "givenName": STRING,
        "surname": STRING,
    },
)
GRANT = EntityType(
    "oAuth2PermissionGrant",
    GRANT_DEFAULTS,
    {"id": EQ, "clientId": EQ, "resourceId": EQ, "consentType": EQ, "principalId": EQ},
)
ASSIGNMENT = EntityType(
    "appRoleAssignment",
    ASSIGNMENT_DEFAULTS,
    {"id": EQ, "principalId": EQ, "resourceId": EQ, "appRoleId": EQ},
)
