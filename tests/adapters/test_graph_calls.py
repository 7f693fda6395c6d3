"""``GraphCalls.json``: the calls the service sends straight to the httpx client under
msgraph-sdk, built by the SDK's request builders. What Graph receives (the emulator's request
log), what it answers as the service's errors, and where the token may go."""

from __future__ import annotations

import pytest
from kiota_abstractions.request_information import RequestInformation

from emulator.launcher import RunningEmulator
from shared.adapters.graph.applications import ApplicationsGateway
from shared.adapters.graph.calls import _decoded_parameter_names
from shared.adapters.graph.errors import GraphResponseError, odata_error
from shared.domain.errors import NotFound
from tests.adapters.tenant_objects import desired, new_app


def test_query_parameter_names_are_decoded_as_kiota_decodes_them() -> None:
    url = (
        "https://graph.example/v1.0/applications?%24select=id,tags&%24top=5&%24filter=a%2Db%20eq%20%27x%24%27"
    )
    assert _decoded_parameter_names(url) == (
        "https://graph.example/v1.0/applications?$select=id,tags&$top=5&$filter=a%2Db%20eq%20%27x%24%27"
    )
    assert _decoded_parameter_names("https://graph.example/v1.0/applications") == (
        "https://graph.example/v1.0/applications"
    )


def test_graph_error_bodies_become_status_code_message_and_retry_after() -> None:
    error = GraphResponseError.of(429, b'{"error": {"code": "TooManyRequests", "message": "slow down"}}', "7")
    assert odata_error(error) == (429, "TooManyRequests", "slow down", 7.0)
    assert odata_error(GraphResponseError.of(502, b"<html>bad gateway</html>", None)) == (502, "", "", None)


async def test_reads_and_writes_reach_graph_with_the_sdks_url_headers_and_body(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    emulator.admin.clear_requests()
    app = await new_app(applications, "adapter-json")
    read = await applications.get_application(app.object_id)

    assert read.object_id == app.object_id and read.unique_name == "adapter-json"
    log = [e for e in emulator.admin.requests()["entries"] if e["service"] == "graph"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v1.0/applications", 201),
        ("GET", f"/v1.0/applications/{app.object_id}", 200),
    ]


async def test_graph_errors_are_the_services_errors(applications: ApplicationsGateway) -> None:
    with pytest.raises(NotFound):
        await applications.get_application("00000000-0000-0000-0000-000000000000", dependent=False)
    await new_app(applications, "adapter-json-taken")
    assert await applications.create_application("adapter-json-taken", desired()) is None  # 400, taken


async def test_the_token_goes_to_graph_only(applications: ApplicationsGateway) -> None:
    request = RequestInformation()
    request.url_template = "https://elsewhere.example/v1.0/applications"
    with pytest.raises(ValueError, match="not a Graph URL"):
        await applications.calls.json(request)
