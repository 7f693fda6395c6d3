"""Graph's write throttling as the emulator imitates it (emulator/throttling.py), checked over
HTTPS with httpx and msgraph-sdk: a token bucket per application+tenant, 429 with
``Retry-After`` and Graph's documented body when it is empty, ``x-ms-throttle-limit-percentage``
once more than 0.8 of it is used, ``x-ms-throttle-scope`` and ``x-ms-throttle-information`` on
the 429. The bucket refills so slowly here (10 writes per ~28 hours) that no figure depends on
how long the test takes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from emulator.launcher import RunningEmulator
from tests.emulator.clients import admin_credential, credential
from tests.emulator.graph_helpers import graph, odata_error

SLOW_BUCKET = {"kind": "write-quota", "service": "graph", "limit": 10, "windowSeconds": 100_000}


async def _token(emulator: RunningEmulator, *, admin: bool = False) -> str:
    cred = admin_credential(emulator.settings) if admin else credential(emulator.settings)
    try:
        return (await cred.get_token("https://graph.microsoft.com/.default")).token
    finally:
        await cred.close()


def _http(emulator: RunningEmulator, token: str) -> httpx.Client:
    s = emulator.settings
    return httpx.Client(
        base_url=s["GRAPH_BASE_URL"].rstrip("/"),
        verify=s["PLATFORM_CA_FILE"],
        headers={"Authorization": f"Bearer {token}"},
    )


def _create(http: httpx.Client, n: int) -> httpx.Response:
    return http.post(
        "/applications", json={"displayName": f"throttled-{n}", "signInAudience": "AzureADMyOrg"}
    )


async def test_writes_past_the_bucket_draw_429_with_graphs_headers_and_body(
    emulator: RunningEmulator,
) -> None:
    token = await _token(emulator)
    s = emulator.settings
    emulator.admin.faults([SLOW_BUCKET])
    with _http(emulator, token) as http:
        answers = [_create(http, n) for n in range(11)]
        read = http.get("/applications", params={"$top": "1"})

    assert [a.status_code for a in answers] == [201] * 10 + [429]
    percentages = [a.headers.get("x-ms-throttle-limit-percentage") for a in answers]
    assert percentages == [None] * 8 + ["0.90", "1.00", "1.10"]  # only above 0.8 of the limit
    throttled = answers[-1]
    assert int(throttled.headers["retry-after"]) >= 1
    assert throttled.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/Write/{s['AZURE_CLIENT_ID']}/{s['AZURE_TENANT_ID']}"
    )
    assert throttled.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    error = throttled.json()["error"]
    assert (error["code"], error["message"]) == ("TooManyRequests", "Please retry again later.")
    assert {k: error["innerError"][k] for k in ("code", "message", "status")} == {
        "code": "429",
        "message": "Please retry after",
        "status": "429",
    }
    assert error["innerError"]["request-id"] == throttled.headers["request-id"]
    assert "x-ms-throttle-scope" not in answers[9].headers  # only on a throttled answer
    # reads are still permitted while writes are throttled, and report the same usage
    assert read.status_code == 200
    assert read.headers["x-ms-throttle-limit-percentage"] == "1.10"


async def test_each_application_has_its_own_bucket(emulator: RunningEmulator) -> None:
    service, admin = await _token(emulator), await _token(emulator, admin=True)
    emulator.admin.faults([SLOW_BUCKET])
    with _http(emulator, service) as http:
        assert [_create(http, n).status_code for n in range(11)][-1] == 429
    with _http(emulator, admin) as http:
        other = _create(http, 99)
    assert other.status_code == 201
    assert "x-ms-throttle-limit-percentage" not in other.headers


async def test_throttled_writes_count_against_the_bucket(emulator: RunningEmulator) -> None:
    """Graph "continues to log resource usage while a client is being throttled": each 429
    raises the usage, up to 1.8 times the limit, and lengthens the wait."""
    token = await _token(emulator)
    emulator.admin.faults([SLOW_BUCKET])
    with _http(emulator, token) as http:
        answers = [_create(http, n) for n in range(20)]
    assert [a.headers["x-ms-throttle-limit-percentage"] for a in answers[10:]] == [
        "1.10",
        "1.20",
        "1.30",
        "1.40",
        "1.50",
        "1.60",
        "1.70",
        "1.80",
        "1.80",
        "1.80",
    ]
    waits = [int(a.headers["retry-after"]) for a in answers[10:]]
    assert waits == sorted(waits) and waits[0] < waits[-1]


async def test_msgraph_sdk_surfaces_the_429_with_its_headers(emulator: RunningEmulator) -> None:
    emulator.admin.faults([{**SLOW_BUCKET, "usedAtStart": 1.0}])
    no_retry: RequestConfiguration[Any] = RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])
    async with graph(emulator) as client:
        with pytest.raises(ODataError) as throttled:
            await client.applications.post(
                Application(display_name="sdk-throttled", sign_in_audience="AzureADMyOrg"),
                request_configuration=no_retry,
            )
    assert odata_error(throttled.value)[:2] == (429, "TooManyRequests")
    headers = {k.lower(): v for k, v in (throttled.value.response_headers or {}).items()}
    assert headers["x-ms-throttle-information"] in ("WriteLimitExceeded", ["WriteLimitExceeded"])
    assert "retry-after" in headers and "x-ms-throttle-limit-percentage" in headers
