"""Helpers for the Graph conformance tests: an msgraph client per test (its credential
closed after), and the request configurations the service itself uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph import GraphServiceClient
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)

from emulator.launcher import RunningEmulator
from tests.emulator.clients import admin_credential, credential, graph_client


@asynccontextmanager
async def graph(emulator: RunningEmulator, *, admin: bool = False) -> AsyncIterator[GraphServiceClient]:
    """msgraph as the service identity (least privilege) or as the admin."""
    s = emulator.settings
    cred = admin_credential(s) if admin else credential(s)
    client = graph_client(s, cred)
    try:
        yield client
    finally:
        http = client.request_adapter._http_client  # type: ignore[attr-defined]
        # msgraph-core's AsyncGraphTransport does not pass aclose() on to the transport it wraps
        await http._transport.transport.aclose()
        await http.aclose()
        await cred.close()


def upsert() -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", "create-if-missing")
    return config


def app_query(**params: Any) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(**params)
    )


def sp_query(**params: Any) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
            **params
        )
    )


async def upsert_app(client: GraphServiceClient, unique_name: str, **props: Any) -> Application:
    """Graph's idempotent create, then a GET (a 204 carries no body)."""
    body = Application(
        display_name=props.pop("display_name", unique_name), sign_in_audience="AzureADMyOrg", **props
    )
    created = await client.applications_with_unique_name(unique_name).patch(
        body, request_configuration=upsert()
    )
    if created is not None:
        return created
    found = await client.applications_with_unique_name(unique_name).get()
    assert found is not None
    return found


def odata_error(exc: BaseException) -> tuple[int | None, str | None, str | None]:
    assert isinstance(exc, ODataError), repr(exc)
    return (
        exc.response_status_code,
        exc.error.code if exc.error else None,
        exc.error.message if exc.error else None,
    )


async def raw_pages(client: GraphServiceClient, first: RequestInformation) -> AsyncIterator[dict[str, Any]]:
    """Follow @odata.nextLink with msgraph's request builders and adapter (auth, middleware,
    error mapping) but read each page as JSON: msgraph's model parsing costs ~3 ms an object
    (Entity.get_field_deserializers), too slow for thousands of them in a test."""
    info = first
    while True:
        raw = await client.request_adapter.send_primitive_async(
            info, "bytes", {"XXX": ODataError.create_from_discriminator_value}
        )
        body: dict[str, Any] = json.loads(raw)
        yield body
        link = body.get("@odata.nextLink")
        if not link:
            return
        info = client.applications.with_url(link).to_get_request_information()
