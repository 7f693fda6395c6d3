"""Client assertions at the emulated token endpoint, through azure-identity: certificates attached
to an app with Graph (CertificateCredential, hand-built assertions in ClientAssertionCredential),
and workload identity federation with the emulator's test OIDC issuer."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential as SyncCertificateCredential
from azure.identity.aio import CertificateCredential, ClientAssertionCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.service_principal import ServicePrincipal

from emulator.launcher import RunningEmulator
from tests.emulator.graph_helpers import graph, upsert, upsert_app

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "repo:contoso/app:environment:prod"


class Certificate:
    """A self-signed RSA certificate with its private key, as a test would make one."""

    def __init__(
        self, name: str, *, starts_in: dt.timedelta = dt.timedelta(minutes=-5), days: int = 365
    ) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = dt.datetime.now(dt.UTC) + starts_in
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .sign(self.key, hashes.SHA256())
        )
        self.der = self.cert.public_bytes(serialization.Encoding.DER)

    def pem(self) -> bytes:
        """Private key and certificate, the PEM file CertificateCredential reads."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ) + self.cert.public_bytes(serialization.Encoding.PEM)

    def x5t_s256(self) -> str:
        return _b64url(hashlib.sha256(self.der).digest())

    def x5t(self) -> str:
        return _b64url(hashlib.sha1(self.der).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token_endpoint(s: dict[str, str]) -> str:
    return f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}/oauth2/v2.0/token"


def _assertion(
    cert: Certificate,
    client_id: str,
    audience: str,
    *,
    signer: rsa.RSAPrivateKey | None = None,
    algorithm: str = "PS256",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A certificate assertion as certificate-credentials documents it; keyword arguments
    replace claims (None removes one)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    header = {"x5t#S256": cert.x5t_s256()} if headers is None else headers
    return jwt.encode(body, signer or cert.key, algorithm=algorithm, headers=header)


async def _app(emulator: RunningEmulator, name: str, *certificates: Certificate) -> tuple[str, str]:
    """An application (object id, appId) with a service principal and these certificates, made
    by the admin through msgraph as a tenant administrator would."""
    async with graph(emulator, admin=True) as admin:
        app = await upsert_app(admin, name)
        await admin.service_principals_with_app_id(app.app_id or "").patch(
            ServicePrincipal(), request_configuration=upsert()
        )
        if certificates:
            await admin.applications.by_application_id(app.id or "").patch(
                Application(
                    key_credentials=[
                        KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=c.der)
                        for c in certificates
                    ]
                )
            )
    return app.id or "", app.app_id or ""


async def _trust(emulator: RunningEmulator, object_id: str, issuer: str, subject: str, name: str) -> None:
    async with graph(emulator, admin=True) as admin:
        await admin.applications.by_application_id(object_id).federated_identity_credentials.post(
            FederatedIdentityCredential(
                name=name, issuer=issuer, subject=subject, audiences=["api://AzureADTokenExchange"]
            )
        )


def _workload_token(emulator: RunningEmulator, **body: Any) -> str:
    minted: dict[str, Any] = emulator.admin.request("POST", "/_emulator/oidc/token", json=body).json()
    assert minted["issuer"] == emulator.settings["EMULATOR_OIDC_ISSUER"]
    return str(minted["token"])


def _assertion_credential(
    s: dict[str, str], client_id: str, func: Callable[[], str]
) -> ClientAssertionCredential:
    return ClientAssertionCredential(
        s["AZURE_TENANT_ID"],
        client_id,
        func,
        authority=s["AZURE_AUTHORITY_HOST"],
        connection_verify=s["PLATFORM_CA_FILE"],
    )


async def _exchange(s: dict[str, str], client_id: str, assertion: str) -> dict[str, Any]:
    """The claims of the Graph token ClientAssertionCredential gets for ``assertion``."""
    async with _assertion_credential(s, client_id, lambda: assertion) as cred:
        token = await cred.get_token(GRAPH_SCOPE)
    return _verified(s, token.token)


async def _refusal(s: dict[str, str], client_id: str, assertion: str) -> tuple[int | None, int]:
    """(HTTP status, AADSTS code) of the token endpoint's refusal of ``assertion``."""
    async with _assertion_credential(s, client_id, lambda: assertion) as cred:
        with pytest.raises(ClientAuthenticationError) as refused:
            await cred.get_token(GRAPH_SCOPE)
    code = re.search(r"AADSTS(\d+)", str(refused.value.message))
    assert code is not None, refused.value.message
    return refused.value.status_code, int(code.group(1))


def _verified(s: dict[str, str], token: str) -> dict[str, Any]:
    """The claims of a tenant access token, verified with the tenant's published key."""
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        base = f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}"
        config = http.get(f"{base}/v2.0/.well-known/openid-configuration").json()
        jwks = http.get(config["jwks_uri"]).json()
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(jwks["keys"][0]).key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=config["issuer"],
    )
    return claims


# -- certificates -------------------------------------------------------------------------------


async def test_certificate_credential_gets_a_graph_token_for_the_app(emulator: RunningEmulator) -> None:
    s = emulator.settings
    cert = Certificate("cert-app")
    _, app_id = await _app(emulator, "cert-app", cert)
    async with CertificateCredential(  # its own assertion: PS256, x5t#S256, exp 30 minutes after nbf
        s["AZURE_TENANT_ID"],
        app_id,
        certificate_data=cert.pem(),
        authority=s["AZURE_AUTHORITY_HOST"],
        connection_verify=s["PLATFORM_CA_FILE"],
    ) as cred:
        token = await cred.get_token(GRAPH_SCOPE)
    claims = _verified(s, token.token)
    assert claims["appid"] == app_id and claims["tid"] == s["AZURE_TENANT_ID"]


@pytest.mark.parametrize("send_certificate_chain", [False, True], ids=["x5t-rs256", "x5t-s256-ps256-x5c"])
async def test_msal_certificate_assertions_with_and_without_the_chain(
    emulator: RunningEmulator, send_certificate_chain: bool
) -> None:
    s = emulator.settings
    cert = Certificate("msal-app")
    _, app_id = await _app(emulator, "msal-app", cert)

    def token() -> str:  # msal builds this assertion: RS256 + x5t, or PS256 + x5t#S256 + x5c
        with SyncCertificateCredential(
            s["AZURE_TENANT_ID"],
            app_id,
            certificate_data=cert.pem(),
            send_certificate_chain=send_certificate_chain,
            authority=s["AZURE_AUTHORITY_HOST"],
            connection_verify=s["PLATFORM_CA_FILE"],
            disable_instance_discovery=True,
        ) as cred:
            return cred.get_token(GRAPH_SCOPE).token

    assert _verified(s, await asyncio.to_thread(token))["appid"] == app_id


async def test_each_flaw_of_a_certificate_assertion_is_refused_with_its_code(
    emulator: RunningEmulator,
) -> None:
    s = emulator.settings
    cert, stranger = Certificate("flaws"), Certificate("not-on-the-app")
    _, app_id = await _app(emulator, "flaws", cert)
    endpoint = _token_endpoint(s)
    now = int(time.time())

    # accepted: the documented form, RS256 with the SHA-1 x5t, and a lifetime beyond 10 minutes
    # (Entra places no restriction on exp: certificate-credentials)
    assert (await _exchange(s, app_id, _assertion(cert, app_id, endpoint)))["appid"] == app_id
    rs256 = _assertion(cert, app_id, endpoint, algorithm="RS256", headers={"x5t": cert.x5t()})
    assert (await _exchange(s, app_id, rs256))["appid"] == app_id
    long_lived = _assertion(cert, app_id, endpoint, exp=now + 3600)
    assert (await _exchange(s, app_id, long_lived))["appid"] == app_id

    refusals = {
        "wrong audience": (_assertion(cert, app_id, "https://login.example/token"), (401, 700023)),
        "certificate not on the app": (
            _assertion(cert, app_id, endpoint, headers={"x5t#S256": stranger.x5t_s256()}),
            (401, 700027),
        ),
        "signed by another key": (_assertion(cert, app_id, endpoint, signer=stranger.key), (401, 700027)),
        "expired": (_assertion(cert, app_id, endpoint, nbf=now - 1200, exp=now - 600), (401, 700024)),
        "not yet valid": (_assertion(cert, app_id, endpoint, nbf=now + 600, exp=now + 1200), (401, 700024)),
        "sub is not iss": (_assertion(cert, app_id, endpoint, sub=str(uuid.uuid4())), (401, 50048)),
        "iss is another app": (_assertion(cert, app_id, endpoint, iss=str(uuid.uuid4())), (401, 700021)),
        "no thumbprint": (_assertion(cert, app_id, endpoint, headers={}), (401, 5002723)),
        "no aud": (_assertion(cert, app_id, endpoint, aud=None), (400, 90014)),
        "unsupported algorithm": (
            jwt.encode({"iss": app_id, "sub": app_id, "aud": endpoint, "exp": now + 600}, "k" * 32, "HS256"),
            (401, 5002738),
        ),
        "not a JWT": ("not-a-jwt", (400, 50027)),
    }
    for case, (assertion, expected) in refusals.items():
        assert await _refusal(s, app_id, assertion) == expected, case


async def test_a_certificate_outside_its_dates_on_the_emulator_clock_is_refused(
    emulator: RunningEmulator,
) -> None:
    s = emulator.settings
    current, future = Certificate("current", days=1), Certificate("future", starts_in=dt.timedelta(days=3))
    _, app_id = await _app(emulator, "dated", current, future)
    endpoint = _token_endpoint(s)
    assert (await _exchange(s, app_id, _assertion(current, app_id, endpoint)))["appid"] == app_id
    assert await _refusal(s, app_id, _assertion(future, app_id, endpoint)) == (401, 700027)

    emulator.admin.advance("P2D")  # the assertion's own times stay on real time
    async with _assertion_credential(s, app_id, lambda: _assertion(current, app_id, endpoint)) as cred:
        with pytest.raises(ClientAuthenticationError, match=r"AADSTS700027: .*The key used is expired"):
            await cred.get_token(GRAPH_SCOPE)
    emulator.admin.advance("P2D")
    assert (await _exchange(s, app_id, _assertion(future, app_id, endpoint)))["appid"] == app_id


async def test_a_secret_and_an_assertion_together_are_refused(emulator: RunningEmulator) -> None:
    s = emulator.settings
    cert = Certificate("both")
    _, app_id = await _app(emulator, "both", cert)
    form = {
        "grant_type": "client_credentials",
        "client_id": app_id,
        "scope": GRAPH_SCOPE,
        "client_secret": "any",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _assertion(cert, app_id, _token_endpoint(s)),
    }
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        both = http.post(_token_endpoint(s), data=form)
        form.pop("client_secret")
        form.pop("client_assertion_type")
        untyped = http.post(_token_endpoint(s), data=form)
    assert (both.status_code, both.json()["error"], both.json()["error_codes"]) == (
        400,
        "invalid_request",
        [90023],
    )
    assert (untyped.status_code, untyped.json()["error_codes"]) == (400, [900144])


# -- workload identity federation ---------------------------------------------------------------


async def test_a_workload_token_from_the_test_issuer_is_exchanged_for_the_apps_token(
    emulator: RunningEmulator,
) -> None:
    s = emulator.settings
    object_id, app_id = await _app(emulator, "federated")
    await _trust(emulator, object_id, s["EMULATOR_OIDC_ISSUER"], SUBJECT, "prod")
    workload = _workload_token(emulator, subject=SUBJECT)
    async with _assertion_credential(s, app_id, lambda: workload) as cred:
        token = await cred.get_token(GRAPH_SCOPE)
    claims = _verified(s, token.token)
    assert claims["appid"] == app_id and claims["tid"] == s["AZURE_TENANT_ID"]


async def test_each_mismatch_of_a_workload_token_is_refused_with_its_code(emulator: RunningEmulator) -> None:
    s = emulator.settings
    untrusting = await _app(emulator, "no-federation")
    object_id, app_id = await _app(emulator, "federated-flaws")
    await _trust(emulator, object_id, s["EMULATOR_OIDC_ISSUER"], SUBJECT, "prod")
    await _trust(emulator, object_id, GITHUB_ISSUER, SUBJECT, "github")
    issuer_kid = jwt.get_unverified_header(_workload_token(emulator, subject=SUBJECT))["kid"]
    now = int(time.time())
    forged_claims: dict[str, Any] = {
        "iss": s["EMULATOR_OIDC_ISSUER"],
        "sub": SUBJECT,
        "aud": "api://AzureADTokenExchange",
        "exp": now + 600,
    }
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert await _refusal(s, untrusting[1], _workload_token(emulator, subject=SUBJECT)) == (401, 70025)
    refusals = {
        "subject": (_workload_token(emulator, subject="repo:contoso/app:environment:dev"), (401, 700213)),
        "subject case": (_workload_token(emulator, subject=SUBJECT.upper()), (401, 700213)),
        "audience": (_workload_token(emulator, subject=SUBJECT, audience="api://elsewhere"), (401, 700212)),
        "untrusted issuer": (
            _workload_token(emulator, subject=SUBJECT, claims={"iss": "https://issuer.example"}),
            (401, 700211),
        ),
        "issuer out of reach": (
            _workload_token(emulator, subject=SUBJECT, claims={"iss": GITHUB_ISSUER}),
            (400, 90061),
        ),
        "expired": (
            _workload_token(emulator, subject=SUBJECT, claims={"nbf": now - 1200, "exp": now - 600}),
            (401, 700024),
        ),
        "signed by another key": (
            jwt.encode(forged_claims, other_key, algorithm="RS256", headers={"kid": issuer_kid}),
            (400, 50027),
        ),
        "key not in the issuer's JWKS": (
            jwt.encode(forged_claims, other_key, algorithm="RS256", headers={"kid": "unknown"}),
            (401, 7000272),
        ),
    }
    for case, (assertion, expected) in refusals.items():
        assert await _refusal(s, app_id, assertion) == expected, case
    # the audience may be one of several, as Kubernetes projects them
    both = _workload_token(
        emulator, subject=SUBJECT, audience=["api://elsewhere", "api://AzureADTokenExchange"]
    )
    assert (await _exchange(s, app_id, both))["appid"] == app_id


def test_the_test_issuer_publishes_discovery_and_its_own_key(emulator: RunningEmulator) -> None:
    s = emulator.settings
    issuer = s["EMULATOR_OIDC_ISSUER"]
    token = _workload_token(
        emulator, subject=SUBJECT, lifetimeSeconds=120, claims={"job_workflow_ref": "ci.yml"}
    )
    with httpx.Client(verify=s["PLATFORM_CA_FILE"]) as http:
        config = http.get(f"{issuer}/.well-known/openid-configuration").json()
        jwks = http.get(config["jwks_uri"]).json()
        tenant_jwks = http.get(
            f"{s['AZURE_AUTHORITY_HOST']}/{s['AZURE_TENANT_ID']}/discovery/v2.0/keys"
        ).json()
    assert config["issuer"] == issuer and config["jwks_uri"] == f"{issuer}/keys"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"response_types_supported", "subject_types_supported", "claims_supported"} <= set(config)
    assert {k["kid"] for k in jwks["keys"]}.isdisjoint(k["kid"] for k in tenant_jwks["keys"])
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="api://AzureADTokenExchange", issuer=issuer
    )
    assert claims["sub"] == SUBJECT and claims["job_workflow_ref"] == "ci.yml"
    assert claims["exp"] - claims["nbf"] == 120 and claims["jti"]


def test_only_the_admin_mints_workload_tokens(emulator: RunningEmulator) -> None:
    s = emulator.settings
    with httpx.Client(base_url=s["EMULATOR_URL"], verify=s["PLATFORM_CA_FILE"]) as http:
        service_token = http.post(
            f"/{s['AZURE_TENANT_ID']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": s["AZURE_CLIENT_ID"],
                "client_secret": s["AZURE_CLIENT_SECRET"],
                "scope": GRAPH_SCOPE,
            },
        ).json()["access_token"]
        denied = http.post(
            "/_emulator/oidc/token",
            json={"subject": SUBJECT},
            headers={"Authorization": f"Bearer {service_token}"},
        )
    assert denied.status_code == 403
    with pytest.raises(httpx.HTTPStatusError) as bad:
        emulator.admin.request(
            "POST", "/_emulator/oidc/token", json={"subject": SUBJECT, "lifetimeSeconds": 0}
        )
    assert bad.value.response.status_code == 400
