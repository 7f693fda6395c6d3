"""Federated identity credentials end to end: the real function entry point, real Service Bus
messages, the emulated tenant. Each test asserts what a user checks by reading Graph as the
administrator: which credentials the application holds, that hand-made ones are untouched,
that a refused request changed nothing, and that a workload token is exchanged for the app's."""

from __future__ import annotations

from typing import Any

from azure.identity.aio import ClientAssertionCredential

from emulator.launcher import RunningEmulator
from tests import harness
from tests.e2e.tenant import Tenant, claims
from tests.e2e.test_registration import graph_writes, sample, service_request

AUDIENCE = "api://AzureADTokenExchange"
GITHUB = "https://token.actions.githubusercontent.com"


def issuer(emulator: RunningEmulator) -> str:
    """The emulator's test OIDC issuer, the one FEDERATED_ISSUERS allows."""
    return (
        emulator.settings.get("EMULATOR_OIDC_ISSUER")
        or f"{emulator.settings['EMULATOR_URL']}/oidc/test-issuer"
    )


def entry(emulator: RunningEmulator, name: str, subject: str, **more: str) -> dict[str, str]:
    return {"name": name, "issuer": issuer(emulator), "subject": subject, **more}


def held(emulator: RunningEmulator, unique_name: str) -> dict[str, dict[str, Any]]:
    """The application's federated credentials by name, read as the administrator."""
    app = Tenant.read(emulator).app(unique_name)
    response = emulator.admin.graph("GET", f"/applications/{app['id']}/federatedIdentityCredentials")
    assert response.status_code == 200, response.text
    return {c["name"]: c for c in response.json()["value"]}


def add_by_hand(
    emulator: RunningEmulator, unique_name: str, name: str, subject: str, issuer_url: str
) -> None:
    """An administrator adds a federated credential in the portal (no mark in its description)."""
    app = Tenant.read(emulator).app(unique_name)
    response = emulator.admin.graph(
        "POST",
        f"/applications/{app['id']}/federatedIdentityCredentials",
        json={
            "name": name,
            "issuer": issuer_url,
            "subject": subject,
            "audiences": [AUDIENCE],
            "description": "added in the portal",
        },
    )
    assert response.status_code == 201, response.text


def federated_writes(emulator: RunningEmulator) -> list[dict[str, Any]]:
    return [e for e in graph_writes(emulator) if "federatedIdentityCredentials" in e["path"]]


def unchanged(
    emulator: RunningEmulator, before: dict[str, Any], credentials: dict[str, Any], name: str
) -> None:
    """Nothing changed since ``before`` (the emulator's snapshot) and ``credentials``, and no
    write reached Graph or Key Vault."""
    after = emulator.admin.snapshot()
    for part in (
        "applications",
        "servicePrincipals",
        "oauth2PermissionGrants",
        "appRoleAssignments",
        "vault",
    ):
        assert after[part] == before[part], part
    assert held(emulator, name) == credentials
    assert graph_writes(emulator) == []


def codes(reply: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in reply["errors"]]


async def test_two_credentials_then_converged_by_name(emulator: RunningEmulator) -> None:
    first = await harness.register(
        service_request(
            "fic-app",
            federatedCredentials=[
                entry(emulator, "deploy-main", "repo:contoso/app:ref:refs/heads/main", description="CI"),
                entry(emulator, "deploy-prod", "repo:contoso/app:environment:prod"),
            ],
        )
    )
    assert first["status"] == "succeeded", first["errors"]
    assert first["federatedCredentials"] == [
        {
            "name": "deploy-main",
            "issuer": issuer(emulator),
            "subject": "repo:contoso/app:ref:refs/heads/main",
            "audiences": [AUDIENCE],
        },
        {
            "name": "deploy-prod",
            "issuer": issuer(emulator),
            "subject": "repo:contoso/app:environment:prod",
            "audiences": [AUDIENCE],
        },
    ]
    made = held(emulator, "fic-app")
    assert set(made) == {"deploy-main", "deploy-prod"}
    assert made["deploy-main"]["audiences"] == [AUDIENCE]
    assert made["deploy-main"]["description"] == "[managed] CI"
    # An administrator adds one by hand; converge must leave it alone.
    add_by_hand(emulator, "fic-app", "portal-made", "repo:contoso/tools:ref:refs/heads/main", GITHUB)
    portal = held(emulator, "fic-app")["portal-made"]

    second = await harness.register(
        service_request(
            "fic-app",
            "SNOW-CHG0000002",
            federatedCredentials=[
                entry(emulator, "deploy-main", "repo:contoso/app:ref:refs/heads/release"),
                entry(emulator, "deploy-test", "repo:contoso/app:environment:test"),
            ],
        )
    )

    assert second["status"] == "succeeded", second["errors"]
    assert [(c["name"], c["subject"]) for c in second["federatedCredentials"]] == [
        ("deploy-main", "repo:contoso/app:ref:refs/heads/release"),
        ("deploy-test", "repo:contoso/app:environment:test"),
    ]
    now = held(emulator, "fic-app")
    assert set(now) == {"deploy-main", "deploy-test", "portal-made"}
    assert now["deploy-main"]["id"] == made["deploy-main"]["id"]  # updated in place, not re-created
    assert now["deploy-main"]["subject"] == "repo:contoso/app:ref:refs/heads/release"
    assert now["deploy-main"]["description"] == "[managed]"
    assert now["portal-made"] == portal
    assert second["application"]["clientId"] == first["application"]["clientId"]


async def test_swapped_subjects_converge(emulator: RunningEmulator) -> None:
    def request(request_id: str, a: str, b: str) -> dict[str, Any]:
        return service_request(
            "fic-swap",
            request_id,
            federatedCredentials=[entry(emulator, "one", a), entry(emulator, "two", b)],
        )

    assert (await harness.register(request("SNOW-CHG0000011", "s1", "s2")))["status"] == "succeeded"
    ids = {n: c["id"] for n, c in held(emulator, "fic-swap").items()}
    reply = await harness.register(request("SNOW-CHG0000012", "s2", "s1"))
    assert reply["status"] == "succeeded", reply["errors"]
    now = held(emulator, "fic-swap")
    assert {n: (c["id"], c["subject"]) for n, c in now.items()} == {
        "one": (ids["one"], "s2"),
        "two": (ids["two"], "s1"),
    }


async def test_redelivery_is_idempotent(emulator: RunningEmulator) -> None:
    body = service_request(
        "fic-redelivered",
        federatedCredentials=[entry(emulator, "deploy-main", "main"), entry(emulator, "deploy-prod", "prod")],
    )
    first = await harness.register(body, message_id="fic-1", delivery_count=1)
    made = held(emulator, "fic-redelivered")
    emulator.admin.clear_requests()

    again = await harness.register(body, message_id="fic-1", delivery_count=2)
    resent = await harness.register(body)  # the ticketing system sends the same request again

    assert first["status"] == "succeeded", first["errors"]
    assert again == first
    assert resent["federatedCredentials"] == first["federatedCredentials"]
    assert held(emulator, "fic-redelivered") == made
    assert federated_writes(emulator) == []


async def test_a_create_whose_answer_was_lost_is_not_doubled(emulator: RunningEmulator) -> None:
    # The first create takes effect, then the connection drops: the retry meets the name Graph
    # already holds, and the credential is read back instead of made twice.
    emulator.admin.faults(
        [
            {
                "kind": "lost-response",
                "service": "graph",
                "method": "POST",
                "path": "/federatedIdentityCredentials$",
                "nth": 1,
            }
        ]
    )
    body = service_request("fic-lost", federatedCredentials=[entry(emulator, "deploy-main", "main")])
    settled = await harness.settle(body)
    emulator.admin.clear_faults()

    assert settled.reply is not None and settled.reply["status"] == "succeeded", settled
    posts = [e for e in federated_writes(emulator) if e["method"] == "POST"]
    assert [e["status"] for e in posts] == [201, 400]  # the retry met the name Graph holds
    [credential] = held(emulator, "fic-lost").values()
    assert (credential["name"], credential["subject"], credential["description"]) == (
        "deploy-main",
        "main",
        "[managed]",
    )


async def test_21_credentials_are_refused_by_validation(emulator: RunningEmulator) -> None:
    entries = [entry(emulator, f"cred-{i:02d}", f"subject-{i}") for i in range(21)]
    reply = await harness.register(service_request("fic-too-many", federatedCredentials=entries))
    assert reply["status"] == "rejected"
    assert codes(reply) == [("federatedCredentials", "too_long")]
    assert Tenant.read(emulator).apps("fic-too-many") == []


async def test_19_by_hand_and_2_requested_change_nothing(emulator: RunningEmulator) -> None:
    assert (await harness.register(service_request("fic-full")))["status"] == "succeeded"
    for i in range(19):
        add_by_hand(
            emulator, "fic-full", f"portal-{i:02d}", f"repo:contoso/tool-{i}:ref:refs/heads/main", GITHUB
        )
    before, credentials = emulator.admin.snapshot(), held(emulator, "fic-full")
    emulator.admin.clear_requests()

    reply = await harness.register(
        service_request(
            "fic-full",
            "SNOW-CHG0000003",
            federatedCredentials=[
                entry(emulator, "deploy-main", "main"),
                entry(emulator, "deploy-prod", "prod"),
            ],
        )
    )

    assert reply["status"] == "rejected"
    assert codes(reply) == [("federatedCredentials", "too_many")]
    unchanged(emulator, before, credentials, "fic-full")
    # one fits
    fits = await harness.register(
        service_request(
            "fic-full", "SNOW-CHG0000004", federatedCredentials=[entry(emulator, "deploy-main", "main")]
        )
    )
    assert fits["status"] == "succeeded", fits["errors"]
    assert len(held(emulator, "fic-full")) == 20


async def test_an_issuer_off_the_allow_list_is_refused_before_any_call(emulator: RunningEmulator) -> None:
    emulator.admin.clear_requests()
    reply = await harness.register(
        service_request(
            "fic-untrusted",
            federatedCredentials=[
                entry(emulator, "trusted", "main"),
                {"name": "untrusted", "issuer": GITHUB, "subject": "repo:contoso/app:ref:refs/heads/main"},
            ],
        )
    )
    assert reply["status"] == "rejected"
    assert codes(reply) == [("federatedCredentials[1].issuer", "issuer_not_allowed")]
    entries = emulator.admin.requests()["entries"]
    assert [e for e in entries if e["service"] in ("graph", "keyvault", "arm")] == []
    assert Tenant.read(emulator).apps("fic-untrusted") == []


async def test_a_hand_made_credential_with_a_requested_name_is_a_conflict(emulator: RunningEmulator) -> None:
    assert (await harness.register(service_request("fic-conflict")))["status"] == "succeeded"
    add_by_hand(emulator, "fic-conflict", "deploy-main", "repo:contoso/app:ref:refs/heads/main", GITHUB)
    before, credentials = emulator.admin.snapshot(), held(emulator, "fic-conflict")
    emulator.admin.clear_requests()

    reply = await harness.register(
        service_request(
            "fic-conflict",
            "SNOW-CHG0000005",
            federatedCredentials=[entry(emulator, "other", "other"), entry(emulator, "Deploy-Main", "main")],
        )
    )

    assert reply["status"] == "rejected"
    assert codes(reply) == [("federatedCredentials[1].name", "conflict")]
    unchanged(emulator, before, credentials, "fic-conflict")


async def test_a_hand_made_credentials_issuer_and_subject_is_a_conflict(emulator: RunningEmulator) -> None:
    assert (await harness.register(service_request("fic-pair")))["status"] == "succeeded"
    add_by_hand(emulator, "fic-pair", "portal-made", "main", issuer(emulator))
    before, credentials = emulator.admin.snapshot(), held(emulator, "fic-pair")
    emulator.admin.clear_requests()

    reply = await harness.register(
        service_request(
            "fic-pair", "SNOW-CHG0000006", federatedCredentials=[entry(emulator, "deploy-main", "main")]
        )
    )

    assert codes(reply) == [("federatedCredentials[0].subject", "conflict")]
    unchanged(emulator, before, credentials, "fic-pair")


async def test_a_public_client_is_refused(emulator: RunningEmulator) -> None:
    reply = await harness.register(
        sample("public-client", federatedCredentials=[entry(emulator, "deploy-main", "main")])
    )
    assert reply["status"] == "rejected"
    assert codes(reply) == [("federatedCredentials", "not_allowed_for_client_type")]
    assert Tenant.read(emulator).apps("dicom-viewer") == []


async def test_a_workload_token_is_exchanged_for_the_applications_token(emulator: RunningEmulator) -> None:
    subject = "repo:contoso/app:environment:prod"
    reply = await harness.register(
        service_request("fic-exchange", federatedCredentials=[entry(emulator, "deploy-prod", subject)])
    )
    assert reply["status"] == "succeeded", reply["errors"]
    client_id = reply["application"]["clientId"]

    def workload_token() -> str:
        # What the CI job's identity provider hands it: a token for the subject, from the issuer.
        minted = emulator.admin.request("POST", "/_emulator/oidc/token", json={"subject": subject}).json()
        assert minted["issuer"] == issuer(emulator)
        return str(minted["token"])

    settings = emulator.settings
    exchange = ClientAssertionCredential(
        settings["AZURE_TENANT_ID"],
        client_id,
        workload_token,
        authority=settings["AZURE_AUTHORITY_HOST"],
        connection_verify=settings["PLATFORM_CA_FILE"],
        disable_instance_discovery=True,
    )
    try:
        token = await exchange.get_token("https://graph.microsoft.com/.default")
    finally:
        await exchange.close()
    assert claims(token.token)["appid"] == client_id
