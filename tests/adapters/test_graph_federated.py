"""The federated identity credentials gateway against the emulator: each method's documented
contract (returns, raises), through msgraph-sdk."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emulator.launcher import RunningEmulator
from shared.adapters.graph.applications import ApplicationsGateway
from shared.domain.errors import NotFound, PermanentError
from shared.domain.federated import AUDIENCE, FederatedCredential
from tests.adapters.tenant_objects import new_app

ISSUER = "https://token.actions.githubusercontent.com"


def credential(name: str, subject: str, description: str | None = "[managed]") -> FederatedCredential:
    return FederatedCredential(name, ISSUER, subject, description)


async def test_create_list_update_delete(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-fic")
    assert await applications.federated_credentials(app.object_id) == []

    made = await applications.create_federated_credential(app.object_id, credential("deploy-main", "main"))
    assert made.id is not None
    assert (made.name, made.issuer, made.subject, made.audiences) == (
        "deploy-main",
        ISSUER,
        "main",
        (AUDIENCE,),
    )
    assert await applications.federated_credentials(app.object_id) == [made]

    changed = replace(made, subject="release", description="[managed] release")
    await applications.update_federated_credential(app.object_id, changed)
    assert await applications.federated_credentials(app.object_id) == [changed]

    assert await applications.delete_federated_credential(app.object_id, made.id) is True
    assert await applications.delete_federated_credential(app.object_id, made.id) is False
    assert await applications.federated_credentials(app.object_id) == []


async def test_a_second_create_of_a_name_returns_the_credential_graph_holds(
    applications: ApplicationsGateway,
) -> None:
    app = await new_app(applications, "adapter-fic-twice")
    first = await applications.create_federated_credential(app.object_id, credential("deploy-main", "main"))
    again = await applications.create_federated_credential(app.object_id, credential("Deploy-Main", "other"))
    assert again == first  # as Graph holds it: the caller compares and updates
    assert len(await applications.federated_credentials(app.object_id)) == 1


async def test_another_credentials_issuer_and_subject_is_refused(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-fic-pair")
    await applications.create_federated_credential(app.object_id, credential("first", "main"))
    with pytest.raises(PermanentError) as refused:
        await applications.create_federated_credential(app.object_id, credential("second", "main"))
    assert refused.value.code == "Request_MultipleObjectsWithSameKeyValue"


async def test_an_update_of_a_missing_credential_is_not_found(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-fic-gone")
    with pytest.raises(NotFound):
        await applications.update_federated_credential(
            app.object_id, replace(credential("gone", "main"), id="00000000-0000-0000-0000-000000000001")
        )
