"""Applications through msgraph-sdk: upsert by uniqueName, password credentials and what
they authenticate, ownership under Application.ReadWrite.OwnedBy, tenant policy, validation."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal

from emulator.launcher import RunningEmulator
from tests.emulator.clients import credential
from tests.emulator.graph_helpers import app_query, graph, odata_error, upsert, upsert_app


async def _token_for(emulator: RunningEmulator, app_id: str, secret: str) -> str:
    async with credential(emulator.settings, app_id, secret) as cred:
        return (await cred.get_token("https://graph.microsoft.com/.default")).token


async def test_upsert_by_unique_name_creates_once_then_updates(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        name = f"ticket-{uuid.uuid4()}"
        body = Application(display_name="first", sign_in_audience="AzureADMyOrg")
        created = await client.applications_with_unique_name(name).patch(body, request_configuration=upsert())
        assert created is not None and created.unique_name == name and created.app_id
        again = await client.applications_with_unique_name(name).patch(
            Application(display_name="second"), request_configuration=upsert()
        )
        assert again is None  # 204: updated, no body
        found = await client.applications.get(
            request_configuration=app_query(filter=f"uniqueName eq '{name}'")
        )
        assert found is not None and found.value is not None
        assert [(a.id, a.display_name) for a in found.value] == [(created.id, "second")]
        # the service identity owns what it created
        owned = await client.service_principals.by_service_principal_id(
            _service_sp(emulator)
        ).owned_objects.graph_application.get()
        assert owned is not None and created.id in {a.id for a in owned.value or []}


def _service_sp(emulator: RunningEmulator) -> str:
    snapshot = emulator.admin.snapshot()
    app_id = emulator.settings["AZURE_CLIENT_ID"]
    return next(sp["id"] for sp in snapshot["servicePrincipals"] if sp["appId"] == app_id)


async def test_upsert_without_prefer_is_404_and_unique_name_is_immutable(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        with pytest.raises(ODataError) as missing:
            await client.applications_with_unique_name("never-created").patch(Application(display_name="x"))
        assert odata_error(missing.value)[:2] == (404, "Request_ResourceNotFound")
        with pytest.raises(ODataError) as nameless:
            await client.applications_with_unique_name("nameless").patch(
                Application(sign_in_audience="AzureADMyOrg"), request_configuration=upsert()
            )
        assert odata_error(nameless.value)[0] == 400
        app = await upsert_app(client, "immutable-name")
        with pytest.raises(ODataError) as renamed:
            await client.applications.by_application_id(app.id or "").patch(Application(unique_name="other"))
        assert odata_error(renamed.value)[0] == 400


async def test_add_password_shows_the_secret_once_and_it_authenticates_until_removed(
    emulator: RunningEmulator,
) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "secret-holder")
        await client.service_principals_with_app_id(app.app_id).patch(
            ServicePrincipal(), request_configuration=upsert()
        )
        added = await client.applications.by_application_id(app.id or "").add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="rotation-1"))
        )
        assert added is not None and added.secret_text and added.key_id
        assert added.hint == added.secret_text[:3]
        assert added.end_date_time and added.start_date_time
        assert (added.end_date_time - added.start_date_time).days in (730, 731)
        read = await client.applications.by_application_id(app.id or "").get()
        assert read is not None and read.password_credentials is not None
        [stored] = read.password_credentials
        assert stored.secret_text is None and stored.hint == added.hint and stored.key_id == added.key_id

        assert await _token_for(emulator, app.app_id or "", added.secret_text)
        await client.applications.by_application_id(app.id or "").remove_password.post(
            RemovePasswordPostRequestBody(key_id=added.key_id)
        )
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await _token_for(emulator, app.app_id or "", added.secret_text)
        with pytest.raises(ODataError) as unknown:
            await client.applications.by_application_id(app.id or "").remove_password.post(
                RemovePasswordPostRequestBody(key_id=uuid.uuid4())
            )
        assert odata_error(unknown.value)[0] == 400


async def test_a_secret_expires_on_the_emulator_clock(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "expiring")
        await client.service_principals_with_app_id(app.app_id).patch(
            ServicePrincipal(), request_configuration=upsert()
        )
        added = await client.applications.by_application_id(app.id or "").add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="short"))
        )
        assert added is not None and added.secret_text
    assert await _token_for(emulator, app.app_id or "", added.secret_text)
    emulator.admin.advance("P2Y")
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000222"):
        await _token_for(emulator, app.app_id or "", added.secret_text)


async def test_owned_by_reads_but_cannot_touch_an_app_it_does_not_own(emulator: RunningEmulator) -> None:
    async with graph(emulator, admin=True) as admin:
        foreign = await upsert_app(admin, "admins-app")
    async with graph(emulator) as client:
        item = client.applications.by_application_id(foreign.id or "")
        assert (await item.get()) is not None  # OwnedBy may read all applications
        attempts = [
            item.add_password.post(AddPasswordPostRequestBody(password_credential=PasswordCredential())),
            item.patch(Application(notes="mine now")),
            item.delete(),
            client.applications_with_unique_name("admins-app").patch(
                Application(display_name="taken"), request_configuration=upsert()
            ),
        ]
        for attempt in attempts:
            with pytest.raises(ODataError) as denied:
                await attempt
            status, code, message = odata_error(denied.value)
            assert (status, code) == (403, "Authorization_RequestDenied")
            assert message == "Insufficient privileges to complete the operation."


async def test_tenant_policy_refuses_long_or_any_secrets(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "policy-bound")
        add = client.applications.by_application_id(app.id or "").add_password
        emulator.admin.policy(maxSecretLifetime="P90D", secretsAllowed=True)
        with pytest.raises(ODataError) as too_long:
            await add.post(AddPasswordPostRequestBody(password_credential=PasswordCredential()))
        assert odata_error(too_long.value)[:2] == (400, "CredentialInvalidLifetimeAsPerAppPolicy")
        now = emulator.admin.now()
        from emulator.clock import add_iso_duration, parse_iso

        start = parse_iso(now)
        ok = await add.post(
            AddPasswordPostRequestBody(
                password_credential=PasswordCredential(
                    start_date_time=start, end_date_time=add_iso_duration(start, "P90D")
                )
            )
        )
        assert ok is not None and ok.secret_text
        emulator.admin.policy(maxSecretLifetime=None, secretsAllowed=False)
        with pytest.raises(ODataError) as forbidden:
            await add.post(AddPasswordPostRequestBody(password_credential=PasswordCredential()))
        assert odata_error(forbidden.value)[:2] == (400, "CredentialTypeNotAllowedAsPerAppPolicy")


async def test_apps_open_to_personal_accounts_hold_at_most_two_secrets(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        personal = await client.applications.post(Application(display_name="personal"))
        assert personal is not None and personal.sign_in_audience == "AzureADandPersonalMicrosoftAccount"
        add = client.applications.by_application_id(personal.id or "").add_password
        for _ in range(2):
            await add.post(AddPasswordPostRequestBody(password_credential=PasswordCredential()))
        with pytest.raises(ODataError) as capped:
            await add.post(AddPasswordPostRequestBody(password_credential=PasswordCredential()))
        assert odata_error(capped.value)[:2] == (400, "TooManyAppPasswords")
        org = await upsert_app(client, "org-only")
        for _ in range(4):
            await client.applications.by_application_id(org.id or "").add_password.post(
                AddPasswordPostRequestBody(password_credential=PasswordCredential())
            )


async def test_unknown_property_and_missing_token(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        body = Application(display_name="extra", additional_data={"notAProperty": 1})
        with pytest.raises(ODataError) as invalid:
            await client.applications.post(body)
        assert odata_error(invalid.value) == (400, "Request_BadRequest", "Invalid property 'notAProperty'.")
    import httpx

    s = emulator.settings
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        response = http.get(f"{s['GRAPH_BASE_URL']}/applications")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_deleting_an_app_deletes_its_service_principal(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "short-lived")
        sp = await client.service_principals_with_app_id(app.app_id).patch(
            ServicePrincipal(), request_configuration=upsert()
        )
        assert sp is not None
        await client.applications.by_application_id(app.id or "").delete()
        for gone in (
            client.applications.by_application_id(app.id or "").get(),
            client.service_principals.by_service_principal_id(sp.id or "").get(),
        ):
            with pytest.raises(ODataError) as missing:
                await gone
            assert odata_error(missing.value)[:2] == (404, "Request_ResourceNotFound")


async def test_federated_identity_credentials(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "federated")
        fics = client.applications.by_application_id(app.id or "").federated_identity_credentials

        def fic(n: int, audience: str = "api://AzureADTokenExchange") -> FederatedIdentityCredential:
            return FederatedIdentityCredential(
                name=f"gh-{n}",
                issuer="https://token.actions.githubusercontent.com",
                subject=f"repo:o/r:env:{n}",
                audiences=[audience],
            )

        with pytest.raises(ODataError) as wrong_audience:
            await fics.post(fic(0, "api://elsewhere"))
        assert odata_error(wrong_audience.value)[0] == 400
        for n in range(20):
            assert (await fics.post(fic(n))) is not None
        with pytest.raises(ODataError) as too_many:
            await fics.post(fic(20))
        assert odata_error(too_many.value)[0] == 400
        listed = await fics.get()
        assert listed is not None and len(listed.value or []) == 20
        first = (listed.value or [])[0]
        await fics.by_federated_identity_credential_id(first.id or "").delete()
        assert (await fics.post(fic(20))) is not None


async def test_config_without_select_returns_every_documented_property(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app = await upsert_app(client, "complete")
        selected = await client.applications.by_application_id(app.id or "").get(
            RequestConfiguration(
                query_parameters=type(
                    client.applications.by_application_id("x")
                ).ApplicationItemRequestBuilderGetQueryParameters(select=["displayName"])
            )
        )
        assert selected is not None and selected.display_name == "complete" and selected.app_id is None
        assert app.web is not None and app.web.redirect_uris == []
