"""Each fault kind as msgraph-sdk meets it against Azure: throttling (kiota's RetryHandler
retries 429 three times, then gives up), a lost response whose effect happened, replication
lag after a create, the write quota, latency."""

from __future__ import annotations

import asyncio

import pytest
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal

from emulator.launcher import RunningEmulator
from tests.emulator.graph_helpers import graph, odata_error, upsert, upsert_app


def _faults(emulator: RunningEmulator, path_suffix: str) -> list[str | None]:
    return [e["fault"] for e in emulator.admin.requests()["entries"] if e["path"].endswith(path_suffix)]


async def test_throttling_is_retried_by_the_sdk_and_then_surfaces(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        emulator.admin.faults(
            [{"kind": "status", "status": 429, "retryAfter": 1, "path": "/v1.0/users$", "times": 1}]
        )
        emulator.admin.clear_requests()
        with pytest.raises(ODataError) as denied:  # retried past the 429, then the real answer
            await client.users.get()
        assert odata_error(denied.value)[0] == 403
        assert _faults(emulator, "/users") == ["status:429", None]

        emulator.admin.faults(
            [{"kind": "status", "status": 429, "retryAfter": 1, "path": "/v1.0/users$", "times": 5}]
        )
        emulator.admin.clear_requests()
        with pytest.raises(ODataError) as throttled:
            await client.users.get()
        assert odata_error(throttled.value)[:2] == (429, "TooManyRequests")
        assert _faults(emulator, "/users") == ["status:429"] * 4  # the first try and three retries


async def test_a_lost_add_password_response_still_added_the_secret(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "lossy")
        emulator.admin.faults([{"kind": "lost-response", "path": "/addPassword$", "nth": 1}])
        with pytest.raises(Exception) as lost:
            await client.applications.by_application_id(app.id or "").add_password.post(
                AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="lost"))
            )
        assert not isinstance(lost.value, ODataError)  # a transport error, no answer at all
        read = await client.applications.by_application_id(app.id or "").get()
        assert read is not None and [c.display_name for c in read.password_credentials or []] == ["lost"]


async def test_replication_lag_hides_a_new_application_from_dependent_calls(
    emulator: RunningEmulator,
) -> None:
    emulator.admin.faults([{"kind": "replication-lag", "ms": 1500}])
    async with graph(emulator) as client:
        created = await client.applications_with_unique_name("lagging").patch(
            Application(display_name="lagging", sign_in_audience="AzureADMyOrg"),
            request_configuration=upsert(),
        )
        assert created is not None and created.id
        with pytest.raises(ODataError) as unseen:
            await client.applications.by_application_id(created.id).get()
        assert odata_error(unseen.value)[:2] == (404, "Request_ResourceNotFound")
        with pytest.raises(ODataError) as no_backing:
            await client.service_principals.post(ServicePrincipal(app_id=created.app_id))
        status, _, message = odata_error(no_backing.value)
        assert status == 400 and message and "does not reference a valid application object" in message
        # the alternate key sees it: a retried upsert updates, it does not duplicate
        again = await client.applications_with_unique_name("lagging").patch(
            Application(display_name="lagging"), request_configuration=upsert()
        )
        assert again is None
        await asyncio.sleep(1.6)
        read = await client.applications.by_application_id(created.id).get()
        assert read is not None and read.unique_name == "lagging"
        assert await client.service_principals.post(ServicePrincipal(app_id=created.app_id)) is not None


async def test_write_quota_answers_429_with_retry_after(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        emulator.admin.faults([{"kind": "write-quota", "limit": 2, "windowSeconds": 1, "service": "graph"}])
        emulator.admin.clear_requests()
        for n in range(3):
            await client.applications.post(
                Application(display_name=f"quota-{n}", sign_in_audience="AzureADMyOrg")
            )
        log = [
            e
            for e in emulator.admin.requests()["entries"]
            if e["method"] == "POST" and e["path"] == "/v1.0/applications"
        ]
        assert [e["fault"] for e in log] == [None, None, "write-quota", None]
        assert log[2]["status"] == 429


async def test_latency_shows_in_the_request_log(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        emulator.admin.faults([{"kind": "latency", "ms": 300, "path": "/v1.0/applications$"}])
        emulator.admin.clear_requests()
        await client.applications.get()
        [entry] = [e for e in emulator.admin.requests()["entries"] if e["path"] == "/v1.0/applications"]
        assert entry["endMs"] - entry["startMs"] >= 300
