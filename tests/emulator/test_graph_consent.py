"""Service principals and admin consent through msgraph-sdk, as the least-privilege service
identity: SP upsert by appId, app role assignments (which then show in the client's token),
delegated permission grants."""

from __future__ import annotations

import uuid

import jwt
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.oauth2_permission_grants.oauth2_permission_grants_request_builder import (
    Oauth2PermissionGrantsRequestBuilder,
)

from emulator.launcher import RunningEmulator
from emulator.seed import GRAPH_APP_ID
from tests.emulator.clients import credential
from tests.emulator.graph_helpers import graph, odata_error, sp_query, upsert, upsert_app


async def _graph_sp(client: GraphServiceClient) -> ServicePrincipal:
    found = await client.service_principals.get(sp_query(filter=f"appId eq '{GRAPH_APP_ID}'"))
    assert found is not None and found.value
    return found.value[0]


async def _client_sp(client: GraphServiceClient, name: str) -> tuple[str, ServicePrincipal]:
    app = await upsert_app(client, name)
    created = await client.service_principals_with_app_id(app.app_id).patch(
        ServicePrincipal(), request_configuration=upsert()
    )
    assert created is not None and created.app_id == app.app_id
    again = await client.service_principals_with_app_id(app.app_id).patch(
        ServicePrincipal(notes="upserted twice"), request_configuration=upsert()
    )
    assert again is None
    sp = await client.service_principals_with_app_id(app.app_id).get()
    assert sp is not None and sp.id == created.id and sp.notes == "upserted twice"
    return app.id or "", sp


async def test_service_principal_needs_a_backing_application(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        missing = str(uuid.uuid4())
        with pytest.raises(ODataError) as refused:
            await client.service_principals.post(ServicePrincipal(app_id=missing))
        status, _, message = odata_error(refused.value)
        assert status == 400
        assert (
            message
            == f"The appId '{missing}' of the service principal does not reference a valid application object."
        )


async def test_app_role_assignment_is_granted_listed_and_revoked(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        app_object_id, sp = await _client_sp(client, "daemon")
        resource = await _graph_sp(client)
        role = next(r for r in resource.app_roles or [] if r.value == "User.Read.All")
        assigned_to = client.service_principals.by_service_principal_id(
            resource.id or ""
        ).app_role_assigned_to
        assignment = await assigned_to.post(
            AppRoleAssignment(
                principal_id=uuid.UUID(sp.id), resource_id=uuid.UUID(resource.id), app_role_id=role.id
            )
        )
        assert assignment is not None and assignment.id and assignment.principal_type == "ServicePrincipal"
        listed = await assigned_to.get()
        assert listed is not None and assignment.id in {a.id for a in listed.value or []}
        held = await client.service_principals.by_service_principal_id(sp.id or "").app_role_assignments.get()
        assert held is not None and [a.app_role_id for a in held.value or []] == [role.id]

        # the client's next token carries the role
        added = await client.applications.by_application_id(app_object_id).add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential())
        )
        assert added is not None and added.secret_text
        async with credential(emulator.settings, sp.app_id, added.secret_text) as cred:
            token = await cred.get_token("https://graph.microsoft.com/.default")
        assert jwt.decode(token.token, options={"verify_signature": False})["roles"] == ["User.Read.All"]

        with pytest.raises(ODataError) as unknown_role:
            await assigned_to.post(
                AppRoleAssignment(
                    principal_id=uuid.UUID(sp.id),
                    resource_id=uuid.UUID(resource.id),
                    app_role_id=uuid.uuid4(),
                )
            )
        assert odata_error(unknown_role.value)[0] == 400
        await assigned_to.by_app_role_assignment_id(assignment.id).delete()
        listed = await assigned_to.get()
        assert listed is not None and assignment.id not in {a.id for a in listed.value or []}


async def test_delegated_grant_is_created_once_patched_and_deleted(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        _, sp = await _client_sp(client, "web-client")
        resource = await _graph_sp(client)
        grant = OAuth2PermissionGrant(
            client_id=sp.id, consent_type="AllPrincipals", resource_id=resource.id, scope="User.Read"
        )
        created = await client.oauth2_permission_grants.post(grant)
        assert created is not None and created.id and created.scope == "User.Read"
        with pytest.raises(ODataError) as duplicate:
            await client.oauth2_permission_grants.post(grant)
        assert odata_error(duplicate.value)[:2] == (409, "Request_MultipleObjectsWithSameKeyValue")

        by_client = RequestConfiguration(
            query_parameters=Oauth2PermissionGrantsRequestBuilder.Oauth2PermissionGrantsRequestBuilderGetQueryParameters(
                filter=f"clientId eq '{sp.id}' and resourceId eq '{resource.id}'"
            )
        )
        listed = await client.oauth2_permission_grants.get(by_client)
        assert listed is not None and [g.id for g in listed.value or []] == [created.id]

        item = client.oauth2_permission_grants.by_o_auth2_permission_grant_id(created.id)
        assert await item.patch(OAuth2PermissionGrant(scope="User.Read openid profile")) is None
        read = await item.get()
        assert read is not None and read.scope == "User.Read openid profile"
        await item.delete()
        listed = await client.oauth2_permission_grants.get(by_client)
        assert listed is not None and listed.value == []


async def test_service_identity_cannot_read_users_but_admin_can(emulator: RunningEmulator) -> None:
    async with graph(emulator) as client:
        with pytest.raises(ODataError) as denied:
            await client.users.get()
        assert odata_error(denied.value)[:2] == (403, "Authorization_RequestDenied")
    async with graph(emulator, admin=True) as admin:
        users = await admin.users.get()
        assert users is not None and len(users.value or []) == 3
        alice = await admin.users.by_user_id("alice@contoso.onmicrosoft.com").get()
        assert alice is not None and alice.display_name == "Alice Admin"
