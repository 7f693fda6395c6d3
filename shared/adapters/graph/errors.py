"""Graph's errors as the service's: status, OData code and message to a shared.domain.errors
type, and which errors mean "an object created moments ago has not replicated yet"."""

from __future__ import annotations

from shared.domain.errors import (
    NotFound,
    PermanentError,
    PermissionDenied,
    PolicyViolation,
    ReplicationPending,
    TransientError,
)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
POLICY_CODES = frozenset(
    {"CredentialInvalidLifetimeAsPerAppPolicy", "CredentialTypeNotAllowedAsPerAppPolicy"}
)
# Messages Graph answers while an object created moments ago replicates (platform-facts.md).
REPLICATION_MESSAGES = (
    "does not reference a valid application object",
    "does not exist or one of its queried reference-property objects are not present",
    "backing application",
    "not a valid reference update",
)


class GraphResponseError(Exception):
    """Graph's error answer to a request the service sent itself (GraphCalls.json): its status,
    OData code and message, and Retry-After. Graph's error bodies carry no secret."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @classmethod
    def of(cls, status: int, body: bytes, retry_after: str | None) -> GraphResponseError:
        import json

        code = message = ""
        try:
            error = json.loads(body).get("error") or {}
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
        except (ValueError, AttributeError):
            pass
        return cls(status, code, message, _seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def odata_error(error: BaseException) -> tuple[int, str, str, float | None] | None:
    """(status, code, message, Retry-After seconds) of a Graph error, or None."""
    from kiota_abstractions.api_error import APIError

    if isinstance(error, GraphResponseError):
        return error.status, error.code, error.message, error.retry_after
    if not isinstance(error, APIError):
        return None
    status = error.response_status_code or 0
    code, message = "", str(getattr(error, "message", "") or "")
    main = getattr(getattr(error, "error", None), "code", None)
    if main is not None:
        code = str(main)
        message = str(getattr(error.error, "message", "") or message)  # type: ignore[attr-defined]
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    retry_after = headers.get("retry-after")
    seconds: float | None = None
    if retry_after:
        value = retry_after[0] if isinstance(retry_after, list | tuple) else retry_after
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
    return status, code, message, seconds


def is_transport(error: BaseException) -> bool:
    import httpx

    return isinstance(error, httpx.TransportError)


def is_auth_failure(error: BaseException) -> bool:
    from azure.core.exceptions import ClientAuthenticationError

    return isinstance(error, ClientAuthenticationError)


def is_replication_error(status: int, code: str, message: str) -> bool:
    lowered = message.lower()
    return (status == 404 and code == "Request_ResourceNotFound") or (
        status in (400, 403, 404) and any(text in lowered for text in REPLICATION_MESSAGES)
    )


def classify(status: int, code: str, message: str, what: str, dependent: bool = False) -> Exception:
    """A Graph error answered to ``what`` as a shared.domain.errors exception. A 404 is replication
    lag only for a call that depends on an object just created; otherwise it is not found."""
    detail = f"{what}: Graph answered {status} {code}: {message}"
    if status in RETRYABLE_STATUS:
        return TransientError("GraphUnavailable", detail)
    if code in POLICY_CODES:
        return PolicyViolation(code, detail, field="credential")
    if status == 403 or code == "Authorization_RequestDenied":
        return PermissionDenied("Authorization_RequestDenied", detail)
    if dependent and is_replication_error(status, code, message):
        return ReplicationPending(code or "ReplicationPending", detail)
    if status == 404:
        return NotFound(code or "NotFound", detail)
    if status == 401:
        return TransientError("Unauthenticated", detail)
    return PermanentError(code or f"Graph{status}", detail)


# -- the gateway ------------------------------------------------------------------------------
