"""The reply: its wire form, and that it has no place for a secret value."""

import json

import pytest

from shared.messages.replies import (
    ConsentResult,
    FederatedCredentialResult,
    RegistrationReply,
    RemovedResources,
    ReplyApplication,
    ReplyCredential,
)
from shared.messages.replies import rejected as rejected_reply
from tests.messages.requests_fixtures import NOW, rejection, with_changes


def test_reply_serialises_in_camel_case() -> None:
    reply = RegistrationReply(
        request_id="SNOW-CHG0012345",
        status="succeeded",
        application=ReplyApplication(
            unique_name="dicom-ingest-prod",
            display_name="DICOM ingest (prod)",
            client_id="c",
            object_id="o",
            service_principal_id="s",
            tenant_id="t",
        ),
        credential=ReplyCredential(
            key_id="k",
            hint="abc",
            start_date_time=NOW,
            end_date_time=NOW,
            key_vault_secret_id="https://kv.vault.azure.net/secrets/dicom-ingest-prod/0123",
        ),
        consent=[ConsentResult(api="dicom", delegated=["user_impersonation"])],
        federated_credentials=[
            FederatedCredentialResult(
                name="deploy-main",
                issuer="https://token.actions.githubusercontent.com",
                subject="repo:contoso/app:ref:refs/heads/main",
                audiences=["api://AzureADTokenExchange"],
            )
        ],
    )
    document = json.loads(reply.model_dump_json())
    assert document == {
        "schemaVersion": 1,
        "requestId": "SNOW-CHG0012345",
        "requestedBy": None,
        "status": "succeeded",
        "application": {
            "uniqueName": "dicom-ingest-prod",
            "displayName": "DICOM ingest (prod)",
            "clientId": "c",
            "objectId": "o",
            "servicePrincipalId": "s",
            "tenantId": "t",
            "serviceManagementReference": None,
        },
        "credential": {
            "type": "secret",
            "keyId": "k",
            "hint": "abc",
            "startDateTime": "2026-01-15T09:30:00Z",
            "endDateTime": "2026-01-15T09:30:00Z",
            "keyVaultSecretId": "https://kv.vault.azure.net/secrets/dicom-ingest-prod/0123",
        },
        "consent": [{"api": "dicom", "delegated": ["user_impersonation"], "application": []}],
        "dataAccess": [],
        "federatedCredentials": [
            {
                "name": "deploy-main",
                "issuer": "https://token.actions.githubusercontent.com",
                "subject": "repo:contoso/app:ref:refs/heads/main",
                "audiences": ["api://AzureADTokenExchange"],
            }
        ],
        "removed": None,
        "errors": [],
    }
    assert RegistrationReply.model_validate_json(reply.model_dump_json()) == reply


def test_decommission_reply() -> None:
    reply = RegistrationReply(
        request_id="R1",
        status="succeeded",
        removed=RemovedResources(
            application=True, service_principal=True, key_vault_secret_versions_disabled=2
        ),
    )
    assert json.loads(reply.model_dump_json())["removed"] == {
        "application": True,
        "servicePrincipal": True,
        "keyVaultSecretVersionsDisabled": 2,
        "keyVaultCertificateVersionsDisabled": 0,
        "roleAssignments": 0,
    }


def test_rejected_reply() -> None:
    problem = rejection(with_changes("action", "nope"))
    reply = rejected_reply(problem.request_id, problem.errors)
    assert reply.status == "rejected"
    assert reply.request_id == "SNOW-CHG0012345"
    assert [e.field for e in reply.errors] == ["action"]


def test_reply_has_no_place_for_a_secret_value() -> None:
    with pytest.raises(ValueError):
        ReplyCredential(
            key_id="k",
            hint="abc",
            start_date_time=NOW,
            end_date_time=NOW,
            key_vault_secret_id="x",
            secret_text="oops",
        )  # type: ignore[call-arg]
