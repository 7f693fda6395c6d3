"""Error bodies as each emulated service writes them.

Graph: ``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
Key Vault: ``{"error": {"code", "message"}}``, plus ``"innererror": {"code"}`` when the
service names a finer cause (``ObjectIsDeletedButRecoverable``, ``SecretDisabled``).
Storage: XML ``<Error><Code/><Message/></Error>``, the code also in ``x-ms-error-code``.
Identity platform: OAuth2 ``error`` / ``error_description`` / ``error_codes``.
Resource Manager: ``{"error": {"code", "message"}}`` with ``x-ms-request-id`` and
``x-ms-correlation-request-id``.
FHIR service: an ``OperationOutcome`` (``application/fhir+json``) whose one issue has severity
``error``, the FHIR issue type as ``code`` (``login``, ``forbidden``, ``not-found`` ...) and the
message as ``diagnostics``.
DICOM service: the message as plain text, as the DICOM server's exception filter writes it
(an empty body for a 401, as ASP.NET's bearer challenge leaves it).
Service Bus (REST send): XML ``<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Literal
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Service = Literal["graph", "keyvault", "identity", "storage", "control", "arm", "fhir", "dicom", "servicebus"]

# The blob service's path prefix: the account, path-style as Azurite serves it (emulator.storage).
STORAGE_PREFIX = "/devstoreaccount1/"
# Resource Manager's paths (emulator.arm), and the FHIR and DICOM services' (emulator.healthdata):
# a path prefix stands for each service's own host.
ARM_PREFIX = "/subscriptions/"
FHIR_PREFIX = "/fhir/"
DICOM_PREFIX = "/dicom/"
# Key Vault's collections: secrets (emulator.keyvault), certificates and keys.
KEY_VAULT_PREFIXES = ("/secrets", "/deletedsecrets", "/certificates", "/deletedcertificates", "/keys")
# Service Bus's REST send, ``/{queue}/messages`` (emulator.servicebus.rest): the queue name
# stands where the namespace's host would.
SERVICE_BUS_PATH = re.compile(r"^/[^/]+/messages/?$")


class PlatformError(Exception):
    """Raised anywhere in a handler; rendered in the wire format of the service that raised it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        service: Service = "graph",
        headers: dict[str, str] | None = None,
        error_codes: list[int] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.service = service
        self.headers = headers or {}
        self.error_codes = error_codes or []
        self.inner_code = inner_code


def service_of(path: str) -> Service:
    if path.startswith("/v1.0") or path.startswith("/beta"):
        return "graph"
    if path.startswith(KEY_VAULT_PREFIXES):
        return "keyvault"
    if path.startswith("/_emulator"):
        return "control"
    if path.startswith(STORAGE_PREFIX):
        return "storage"
    if path.startswith(ARM_PREFIX):
        return "arm"
    if path.startswith(FHIR_PREFIX):
        return "fhir"
    if path.startswith(DICOM_PREFIX):
        return "dicom"
    if SERVICE_BUS_PATH.match(path):
        return "servicebus"
    return "identity"


def error_body(
    service: Service,
    status: int,
    code: str,
    message: str,
    request_id: str,
    client_request_id: str | None = None,
    error_codes: list[int] | None = None,
    inner_code: str | None = None,
) -> dict[str, Any]:
    if service in ("keyvault", "arm"):
        error: dict[str, Any] = {"code": code, "message": message}
        if inner_code:
            error["innererror"] = {"code": inner_code}
        return {"error": error}
    if service == "fhir":
        return operation_outcome(code, message, request_id)
    if service == "identity":
        now = dt.datetime.now(dt.UTC)
        return {
            "error": code,
            "error_description": f"{message}\r\nTrace ID: {request_id}\r\nCorrelation ID: "
            f"{client_request_id or request_id}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
            "error_codes": error_codes or [],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
            "trace_id": request_id,
            "correlation_id": client_request_id or request_id,
        }
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


def operation_outcome(code: str, diagnostics: str, request_id: str) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome with one error issue (``code``: a FHIR issue type)."""
    return {
        "resourceType": "OperationOutcome",
        "id": request_id,
        "meta": {"lastUpdated": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")},
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def service_headers(service: Service, request_id: str) -> dict[str, str]:
    """The request-id headers each service answers with."""
    if service in ("keyvault", "storage"):
        return {"x-ms-request-id": request_id}
    if service == "arm":
        return {"x-ms-request-id": request_id, "x-ms-correlation-request-id": request_id}
    if service == "fhir":
        return {"X-Request-Id": request_id}
    if service == "dicom":
        return {"x-ms-request-id": request_id}
    return {}


def request_id_of(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else str(uuid.uuid4())


def storage_error_xml(code: str, message: str, request_id: str) -> bytes:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    return (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>'
        f"{escape(code)}</Code><Message>{escape(message)}\nRequestId:{request_id}\nTime:{now}</Message></Error>"
    ).encode()


def servicebus_error_xml(status: int, detail: str) -> bytes:
    return f"<Error><Code>{status}</Code><Detail>{escape(detail)}</Detail></Error>".encode()


def render(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PlatformError)
    rid = request_id_of(request)
    if exc.service == "servicebus":
        return Response(
            servicebus_error_xml(exc.status, exc.message),
            status_code=exc.status,
            headers=exc.headers,
            media_type="application/xml; charset=utf-8",
        )
    if exc.service == "storage":
        xml = b"" if request.method == "HEAD" else storage_error_xml(exc.code, exc.message, rid)
        headers = {"x-ms-request-id": rid, "x-ms-error-code": exc.code, **exc.headers}
        return Response(xml, status_code=exc.status, headers=headers, media_type="application/xml")
    if exc.service == "dicom":
        text = b"" if request.method == "HEAD" or exc.status == 401 else exc.message.encode()
        headers = {"request-id": rid, **service_headers("dicom", rid), **exc.headers}
        return Response(text, status_code=exc.status, headers=headers, media_type="text/plain")
    body = error_body(
        exc.service,
        exc.status,
        exc.code,
        exc.message,
        rid,
        request.headers.get("client-request-id"),
        exc.error_codes,
        exc.inner_code,
    )
    headers = {"request-id": rid, **service_headers(exc.service, rid), **exc.headers}
    media_type = "application/fhir+json" if exc.service == "fhir" else None
    return JSONResponse(body, status_code=exc.status, headers=headers, media_type=media_type)
