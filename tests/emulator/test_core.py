"""The emulator's core: TLS with its own CA, the identity platform, the clock and faults,
seen through azure-identity and plain HTTPS clients."""

from __future__ import annotations

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError

from emulator.launcher import RunningEmulator
from tests.emulator.clients import credential


async def test_service_identity_gets_a_verifiable_graph_token_with_least_privilege_roles(
    emulator: RunningEmulator,
) -> None:
    s = emulator.settings
    async with credential(s, s["AZURE_CLIENT_ID"], s["AZURE_CLIENT_SECRET"]) as cred:
        token = await cred.get_token("https://graph.microsoft.com/.default")
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        config = http.get(
            f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}/v2.0/.well-known/openid-configuration"
        ).json()
        jwks = http.get(config["jwks_uri"]).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(
        token.token,
        key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=config["issuer"],
    )
    assert claims["appid"] == s["AZURE_CLIENT_ID"]
    assert claims["tid"] == s["AZURE_TENANT_ID"]
    assert sorted(claims["roles"]) == [
        "AppRoleAssignment.ReadWrite.All",
        "Application.ReadWrite.OwnedBy",
        "DelegatedPermissionGrant.ReadWrite.All",
    ]


async def test_wrong_secret_is_refused_with_the_platform_error(emulator: RunningEmulator) -> None:
    s = emulator.settings
    async with credential(s, s["AZURE_CLIENT_ID"], "not-the-secret") as cred:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await cred.get_token("https://graph.microsoft.com/.default")


def test_untrusted_ca_is_refused(emulator: RunningEmulator) -> None:
    with httpx.Client() as http, pytest.raises(httpx.ConnectError):
        http.get(emulator.settings["EMULATOR_URL"] + "/common/discovery/instance")


def test_clock_is_read_set_and_advanced(emulator: RunningEmulator) -> None:
    admin = emulator.admin
    assert admin.set_clock("2030-01-31T00:00:00Z").startswith("2030-01-31T00:00:00")
    assert admin.advance("P1M").startswith("2030-02-28T00:00:00")
    assert admin.advance("PT36H").startswith("2030-03-01T12:00:00")


def test_status_fault_on_the_nth_request_then_a_lost_response(emulator: RunningEmulator) -> None:
    s = emulator.settings
    url = f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}/discovery/v2.0/keys"
    emulator.admin.faults(
        [
            {"kind": "status", "status": 429, "retryAfter": 7, "path": "/keys$", "nth": 2},
            {"kind": "lost-response", "path": "/keys$", "nth": 3},
        ],
        seed=1,
    )
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        assert http.get(url).status_code == 200
        throttled = http.get(url)
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(url)
        assert http.get(url).status_code == 200
    log = emulator.admin.requests()
    assert [e["fault"] for e in log["entries"] if e["path"].endswith("/keys")] == [
        None,
        "status:429",
        "lost-response",
        None,
    ]
