"""Requests as the message tests build them: the documented example, changed one field at a
time, parsed or refused; and the request policy of a service configured with some settings."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.domain.policy import RequestPolicy
from shared.messages.base import RequestRejected
from shared.messages.parsing import parse_request
from shared.messages.requests import RegisterRequest
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.json"))
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

VALID: dict[str, Any] = {
    "schemaVersion": 1,
    "requestId": "SNOW-CHG0012345",
    "action": "register",
    "requestedBy": "alice@contoso.com",
    "application": {
        "serviceManagementReference": "CI0001001 DICOM ingest",
        "uniqueName": "dicom-ingest-prod",
        "displayName": "DICOM ingest (prod)",
        "clientType": "service",
        "redirectUris": {"web": [], "publicClient": [], "spa": []},
        "notes": "free text",
    },
    "apiPermissions": [
        {"api": "azure-healthcare-apis", "delegated": ["user_impersonation"], "application": []},
        {"api": "dicom", "delegated": ["user_impersonation"]},
    ],
    "grantAdminConsent": True,
    "credential": {"type": "secret", "description": "ingest job", "lifetime": "P6M"},
}


def settings(**values: str) -> RequestPolicy:
    """The request policy of a service configured with ``values``."""
    return Settings(
        **{"AZURE_TENANT_ID": "contoso.onmicrosoft.com", "KEY_VAULT_URL": "https://kv.vault.azure.net"}
        | values
    ).request_policy


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def with_changes(path: str, value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    """A copy of `base` with the value at a dotted path set (`...` removes it)."""
    document = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if value is ...:
        del target[last]
    else:
        target[int(last) if isinstance(target, list) else last] = value
    return document


def rejection(document: object) -> RequestRejected:
    raw = document if isinstance(document, bytes) else body(document)
    with pytest.raises(RequestRejected) as caught:
        parse_request(raw)
    return caught.value


def fields(document: object) -> list[str]:
    return [error.field for error in rejection(document).errors]


def register(document: dict[str, Any]) -> RegisterRequest:
    request = parse_request(body(document))
    assert isinstance(request, RegisterRequest)
    return request


def confidential_with(uris: dict[str, list[str]]) -> dict[str, Any]:
    return with_changes(
        "application.redirectUris", uris, with_changes("application.clientType", "confidential")
    )


def public_with(uris: dict[str, list[str]]) -> dict[str, Any]:
    document = with_changes("application.clientType", "public", with_changes("credential", {"type": "none"}))
    return with_changes("application.redirectUris", uris, document)
