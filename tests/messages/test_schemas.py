"""The JSON Schemas: committed as generated, and describing the contract."""

from shared.messages.schemas import json_schemas, render_schema
from tests.messages.requests_fixtures import ROOT


def test_committed_schemas_match_the_models() -> None:
    for name, schema in json_schemas().items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == render_schema(schema), f"schemas/{name} is stale: run `make schemas`"


def test_schemas_describe_the_contract() -> None:
    schemas = json_schemas()
    request = schemas["registration-request.schema.json"]
    assert request["discriminator"]["propertyName"] == "action"
    register_schema = request["$defs"]["RegisterRequest"]
    assert register_schema["additionalProperties"] is False
    assert {
        "schemaVersion",
        "requestId",
        "action",
        "requestedBy",
        "application",
        "apiPermissions",
        "grantAdminConsent",
        "credential",
        "dataAccess",
        "federatedCredentials",
    } == set(register_schema["properties"])
    assert set(request["$defs"]["RedirectUris"]["properties"]) == {"web", "publicClient", "spa"}
    for application in ("RegisterApplication", "ApplicationRef"):
        assert "serviceManagementReference" in request["$defs"][application]["required"]
    reply = schemas["registration-reply.schema.json"]
    assert set(reply["properties"]) == {
        "schemaVersion",
        "requestId",
        "requestedBy",
        "status",
        "application",
        "credential",
        "consent",
        "removed",
        "dataAccess",
        "federatedCredentials",
        "errors",
    }
