"""The JSON Schemas integrators read, generated from the message models, never written by hand.

``python -m shared.messages.schemas`` (``make schemas``) writes them to ``schemas/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.messages.replies import RegistrationReply
from shared.messages.requests import REQUEST_ADAPTER
from shared.messages.rotation import RotationEvent, RotationMessage

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIRECTORY = Path(__file__).resolve().parents[2] / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of every message the service reads or writes, by file name."""
    request = REQUEST_ADAPTER.json_schema(by_alias=True, mode="validation")
    reply = RegistrationReply.model_json_schema(by_alias=True, mode="serialization")
    return {
        "registration-request.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            "title": "RegistrationRequest",
            "description": "A Service Bus message asking the service to register, rotate or decommission "
            "a Microsoft Entra client application. Discriminated on `action`.",
            **request,
        },
        "registration-reply.schema.json": {"$schema": _SCHEMA_DIALECT, **reply},
        "rotation-message.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            **RotationMessage.model_json_schema(by_alias=True, mode="serialization"),
        },
        "credential-event.schema.json": {
            "$schema": _SCHEMA_DIALECT,
            **RotationEvent.model_json_schema(by_alias=True, mode="serialization"),
        },
    }


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIRECTORY) -> list[Path]:
    """Write the JSON Schemas to `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(render_schema(schema), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_schemas():
        sys.stdout.write(f"{written}\n")
