"""OData through msgraph-sdk: the $filter forms the service uses, $select, and paging with
@odata.nextLink (msgraph's PageIterator) over thousands of applications."""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.service_principals.item.owned_objects.graph_application.graph_application_request_builder import (
    GraphApplicationRequestBuilder,
)
from msgraph_core.tasks.page_iterator import PageIterator

from emulator.launcher import RunningEmulator
from emulator.seed import GRAPH_APP_ID
from tests.emulator.graph_helpers import app_query, graph, odata_error, raw_pages, sp_query, upsert_app


async def test_filter_forms(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        tagged = await upsert_app(
            client, "tagged", display_name="O'Brien's app", tags=["ticket:42", "team:a"]
        )
        await upsert_app(client, "other", display_name="Other app", tags=["team:a"])

        async def names(flt: str) -> list[str]:
            found = await client.applications.get(app_query(filter=flt))
            assert found is not None
            return sorted(a.display_name or "" for a in found.value or [])

        assert await names("displayName eq 'O''Brien''s app'") == ["O'Brien's app"]
        assert await names("startswith(displayName,'o''brien')") == ["O'Brien's app"]
        assert await names("tags/any(t:t eq 'ticket:42')") == ["O'Brien's app"]
        assert await names("tags/any(t:t eq 'team:a') and startswith(displayName,'Other')") == ["Other app"]
        assert await names(f"appId eq '{tagged.app_id}'") == ["O'Brien's app"]
        assert await names("uniqueName eq 'other'") == ["Other app"]

        graph_sp = await client.service_principals.get(
            sp_query(filter="servicePrincipalNames/any(n:n eq 'https://graph.microsoft.com')")
        )
        assert graph_sp is not None and [sp.app_id for sp in graph_sp.value or []] == [GRAPH_APP_ID]

        for unsupported in (
            "passwordCredentials/any(p:p/keyId eq 'x')",
            "displayName ne 'x'",
            "endswith(displayName,'app')",
            "displayName eq 'unterminated",
        ):
            with pytest.raises(ODataError) as refused:
                await client.applications.get(app_query(filter=unsupported))
            assert odata_error(refused.value)[:2] == (400, "Request_UnsupportedQuery")


async def test_select_returns_only_what_was_asked(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        await upsert_app(client, "selected", notes="a note")
        found = await client.applications.get(
            app_query(filter="uniqueName eq 'selected'", select=["displayName", "notes"])
        )
        assert found is not None and found.value
        [app] = found.value
        assert (app.display_name, app.notes) == ("selected", "a note")
        assert app.id and app.app_id is None and app.password_credentials is None
        with pytest.raises(ODataError) as unknown:
            await client.applications.get(app_query(select=["noSuchProperty"]))
        assert odata_error(unknown.value)[0] == 400


async def test_paging_through_five_thousand_applications(emulator: RunningEmulator) -> None:
    emulator.admin.seed_applications(count=5000, prefix="bulk", tags=["bulk"], ownedByService=True)
    base = emulator.settings["EMULATOR_URL"] + "/v1.0/"
    async with graph(emulator) as client:
        first = client.applications.to_get_request_information(
            app_query(filter="tags/any(t:t eq 'bulk')", top=999, select=["displayName"])
        )
        seen: list[str] = []
        async for page in raw_pages(client, first):
            assert len(page["value"]) <= 999
            assert page.get("@odata.nextLink", base).startswith(base)
            seen.extend(a["id"] for a in page["value"])
        assert len(seen) == 5000 and len(set(seen)) == 5000

        # default page size 100; all applications (the two seeded identities too)
        default = await client.applications.get()
        assert default is not None and len(default.value or []) == 100 and default.odata_next_link
        everything = [
            a["id"]
            async for page in raw_pages(client, client.applications.to_get_request_information())
            for a in page["value"]
        ]
        assert len(everything) == 5002 and set(seen) <= set(everything)

        # what the service owns, through ownedObjects, paged the same way
        service = await client.service_principals_with_app_id(emulator.settings["AZURE_CLIENT_ID"]).get()
        assert service is not None and service.id
        owned_first = client.service_principals.by_service_principal_id(
            service.id
        ).owned_objects.graph_application.to_get_request_information(
            RequestConfiguration(
                query_parameters=GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
                    top=999, select=["id", "displayName"]
                )
            )
        )
        owned = [a["id"] async for page in raw_pages(client, owned_first) for a in page["value"]]
        assert len(owned) == 5000 and set(owned) == set(seen)


async def test_page_iterator_follows_next_links(emulator: RunningEmulator) -> None:
    emulator.admin.seed_applications(count=1200, prefix="iter", tags=["iter"])
    async with graph(emulator) as client:
        first = await client.applications.get(
            app_query(filter="tags/any(t:t eq 'iter')", top=500, select=["displayName"])
        )
        assert first is not None and first.odata_next_link
        seen: list[str] = []

        def collect(app: Application) -> bool:
            seen.append(app.id or "")
            return True

        await PageIterator(first, client.request_adapter).iterate(collect)
        assert len(seen) == 1200 and len(set(seen)) == 1200
