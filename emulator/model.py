"""Graph object shapes: every property a v1.0 read returns, with its default value.

Objects are stored sparse (only what was set) and completed from these defaults when they
are read, so that 100,000 applications fit in memory.
"""

from __future__ import annotations

import copy
from typing import Any

Json = dict[str, Any]

APPLICATION_DEFAULTS: Json = {
    "@odata.type": "#microsoft.graph.application",
    "id": None,
    "deletedDateTime": None,
    "appId": None,
    "applicationTemplateId": None,
    "disabledByMicrosoftStatus": None,
    "createdDateTime": None,
    "displayName": None,
    "description": None,
    "groupMembershipClaims": None,
    "identifierUris": [],
    "isDeviceOnlyAuthSupported": None,
    "isFallbackPublicClient": None,
    "nativeAuthenticationApisEnabled": None,
    "notes": None,
    "publisherDomain": "contoso.onmicrosoft.com",
    "serviceManagementReference": None,
    "signInAudience": "AzureADandPersonalMicrosoftAccount",
    "tags": [],
    "tokenEncryptionKeyId": None,
    "uniqueName": None,
    "samlMetadataUrl": None,
    "defaultRedirectUri": None,
    "certification": None,
    "optionalClaims": None,
    "servicePrincipalLockConfiguration": None,
    "requestSignatureVerification": None,
    "addIns": [],
    "api": {
        "acceptMappedClaims": None,
        "knownClientApplications": [],
        "requestedAccessTokenVersion": None,
        "oauth2PermissionScopes": [],
        "preAuthorizedApplications": [],
    },
    "appRoles": [],
    "info": {
        "logoUrl": None,
        "marketingUrl": None,
        "privacyStatementUrl": None,
        "supportUrl": None,
        "termsOfServiceUrl": None,
    },
    "keyCredentials": [],
    "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
    "passwordCredentials": [],
    "publicClient": {"redirectUris": []},
    "requiredResourceAccess": [],
    "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    "web": {
        "homePageUrl": None,
        "logoutUrl": None,
        "redirectUris": [],
        "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
        "redirectUriSettings": [],
    },
    "spa": {"redirectUris": []},
}

SERVICE_PRINCIPAL_DEFAULTS: Json = {
    "@odata.type": "#microsoft.graph.servicePrincipal",
    "id": None,
    "deletedDateTime": None,
    "accountEnabled": True,
    "alternativeNames": [],
    "appDisplayName": None,
    "appDescription": None,
    "appId": None,
    "applicationTemplateId": None,
    "appOwnerOrganizationId": None,
    "appRoleAssignmentRequired": False,
    "createdDateTime": None,
    "description": None,
    "disabledByMicrosoftStatus": None,
    "displayName": None,
    "homepage": None,
    "loginUrl": None,
    "logoutUrl": None,
    "notes": None,
    "notificationEmailAddresses": [],
    "preferredSingleSignOnMode": None,
    "preferredTokenSigningKeyThumbprint": None,
    "replyUrls": [],
    "servicePrincipalNames": [],
    "servicePrincipalType": "Application",
    "signInAudience": None,
    "tags": [],
    "tokenEncryptionKeyId": None,
    "samlSingleSignOnSettings": None,
    "addIns": [],
    "appRoles": [],
    "info": None,
    "keyCredentials": [],
    "oauth2PermissionScopes": [],
    "passwordCredentials": [],
    "resourceSpecificApplicationPermissions": [],
    "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
}

USER_DEFAULTS: Json = {
    "@odata.type": "#microsoft.graph.user",
    "id": None,
    "businessPhones": [],
    "displayName": None,
    "givenName": None,
    "jobTitle": None,
    "mail": None,
    "mobilePhone": None,
    "officeLocation": None,
    "preferredLanguage": None,
    "surname": None,
    "userPrincipalName": None,
}


def complete(defaults: Json, stored: Json) -> Json:
    """A full Graph object: the defaults overlaid with what is stored (private keys dropped)."""
    full = copy.deepcopy(defaults)
    for key, value in stored.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict) and isinstance(full.get(key), dict):
            full[key] = {**full[key], **copy.deepcopy(value)}
        else:
            full[key] = copy.deepcopy(value)
    return full
