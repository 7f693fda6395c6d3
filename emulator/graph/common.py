"""What every Graph handler shares: the call being served, Graph's errors, JSON in and out."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.errors import PlatformError
from emulator.identity import Principal

if TYPE_CHECKING:
    from emulator.directory import Directory
    from emulator.platform import Platform

Json = dict[str, Any]


@dataclass
class Call:
    """One Graph request: who asked, what for, and the path's captured segments."""

    platform: Platform
    request: Request
    principal: Principal
    segments: dict[str, str]

    @property
    def directory(self) -> Directory:
        return self.platform.directory

    @property
    def caller(self) -> str:
        """The caller's service principal (the owner of what it creates)."""
        return self.principal.service_principal_id

    def context(self, fragment: str) -> str:
        return f"{self.platform.base_url}/v1.0/$metadata#{fragment}"

    async def body(self) -> Json:
        raw = await self.request.body()
        if not raw:
            raise bad_request("Empty Payload. JSON content expected.", code="BadRequest")
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("Unable to read JSON request payload.", code="BadRequest") from None
        if not isinstance(body, dict):
            raise bad_request("Unable to read JSON request payload.", code="BadRequest")
        return body


Handler = Callable[[Call], Awaitable[Response]]


def not_found(object_id: str) -> PlatformError:
    return PlatformError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def bad_request(message: str, code: str = "Request_BadRequest") -> PlatformError:
    return PlatformError(400, code, message)


def denied() -> PlatformError:
    return PlatformError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def invalid_reference() -> PlatformError:
    return bad_request("Not a valid reference update.")


def ok(body: Json, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def no_content() -> Response:
    return Response(status_code=204)


def check_properties(body: Json, allowed: Json, read_only: frozenset[str] = frozenset()) -> Json:
    """The writable properties of ``body``; an unknown one (also one level down, in a complex
    property) is refused as Graph refuses it, read-only ones are dropped."""
    writable: Json = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key not in allowed:
            raise bad_request(f"Invalid property '{key}'.")
        if key in read_only:
            continue
        default = allowed[key]
        if isinstance(default, dict):
            if value is not None and not isinstance(value, dict):
                raise bad_request(f"Invalid value specified for property '{key}'.")
            for inner in value or {}:
                if inner not in default and not inner.startswith("@odata."):
                    raise bad_request(f"Invalid property '{inner}'.")
            value = {k: v for k, v in (value or {}).items() if not k.startswith("@odata.")}
        elif isinstance(default, list) and not isinstance(value, list):
            raise bad_request(f"Invalid value specified for property '{key}'.")
        writable[key] = value
    return writable
