"""Application credentials as Entra checks them: password credentials (the secret is shown
once and kept apart in ``directory.secret_values``), the tenant's app-management policy (secret
lifetime, secrets allowed, certificate lifetime), the two-secret cap of apps open to personal
accounts, certificates (``keyCredentials``) with addKey's proof of possession, and federated
identity credentials."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from typing import Any

import jwt
from cryptography import x509

from emulator.clock import add_iso_duration, iso, parse_iso
from emulator.graph.common import Call, Json, bad_request
from emulator.seed import new_client_secret

PERSONAL_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
MAX_PERSONAL_PASSWORDS = 2
MAX_FEDERATED = 20
FEDERATED_AUDIENCES = frozenset(
    {
        "api://AzureADTokenExchange",
        "api://AzureADTokenExchangeUSGov",
        "api://AzureADTokenExchangeChina",
    }
)
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
MAX_PROOF_SECONDS = 600  # a proof's exp at most 10 minutes after its nbf (application-rollkey-prooftoken)
PASSWORD_FIELDS = frozenset(
    {"customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId", "secretText", "startDateTime"}
)
KEY_FIELDS = frozenset(
    {
        "customKeyIdentifier",
        "displayName",
        "endDateTime",
        "key",
        "keyId",
        "startDateTime",
        "type",
        "usage",
    }
)
FEDERATED_FIELDS = frozenset({"name", "issuer", "subject", "audiences", "description"})


def _time(value: Any, field: str) -> dt.datetime:
    try:
        return parse_iso(str(value))
    except ValueError:
        raise bad_request(f"Invalid value specified for property '{field}'.") from None


def _check_policy(call: Call, start: dt.datetime, end: dt.datetime) -> None:
    policy = call.platform.policy
    if not policy.get("secretsAllowed", True):
        raise bad_request(
            "Credential type not allowed as per assigned policy.",
            code="CredentialTypeNotAllowedAsPerAppPolicy",
        )
    lifetime = policy.get("maxSecretLifetime")
    if lifetime and end > add_iso_duration(start, str(lifetime)):
        raise bad_request(
            "Credential lifetime exceeds the max value allowed as per assigned policy.",
            code="CredentialInvalidLifetimeAsPerAppPolicy",
        )


def _check_key_policy(call: Call, start: dt.datetime, end: dt.datetime) -> None:
    """appManagementPolicy's keyCredentials restriction ``asymmetricKeyLifetime``: Entra answers
    a certificate that outlives it as it answers a long secret (the same code and text)."""
    lifetime = call.platform.policy.get("maxCertificateLifetime")
    if lifetime and end > add_iso_duration(start, str(lifetime)):
        raise bad_request(
            "Credential lifetime exceeds the max value allowed as per assigned policy.",
            code="CredentialInvalidLifetimeAsPerAppPolicy",
        )


def check_cap(app: Json, adding: int) -> None:
    if app.get("signInAudience") not in PERSONAL_AUDIENCES:
        return
    total = len(app.get("passwordCredentials", [])) + adding
    if total > MAX_PERSONAL_PASSWORDS:
        raise bad_request(
            f"Not allowed to add {total} passwords. You can only add a maximum of {MAX_PERSONAL_PASSWORDS} "
            "passwords.",
            code="TooManyAppPasswords",
        )


def new_password(call: Call, app: Json, requested: Json, secret: str | None = None) -> tuple[Json, str]:
    """A password credential for ``app`` (policy and cap checked, not yet stored) and its
    secret. Defaults: start now, end two years later."""
    unknown = set(requested) - PASSWORD_FIELDS - {"@odata.type"}
    if unknown:
        raise bad_request(f"Invalid property '{sorted(unknown)[0]}'.")
    now = call.platform.clock.now()
    start = _time(requested["startDateTime"], "startDateTime") if requested.get("startDateTime") else now
    end = (
        _time(requested["endDateTime"], "endDateTime")
        if requested.get("endDateTime")
        else add_iso_duration(start, "P2Y")
    )
    if end <= start:
        raise bad_request("Key credential end date is invalid.", code="InvalidKeyEndDate")
    _check_policy(call, start, end)
    secret = secret or new_client_secret()
    credential = {
        "customKeyIdentifier": None,
        "displayName": requested.get("displayName"),
        "endDateTime": iso(end),
        "hint": secret[:3],
        "keyId": str(uuid.uuid4()),
        "secretText": None,
        "startDateTime": iso(start),
    }
    return credential, secret


def add_password(call: Call, app: Json, requested: Json) -> Json:
    """addPassword: store the credential, return it with its secretText (the only time)."""
    check_cap(app, 1)
    credential, secret = new_password(call, app, requested)
    app.setdefault("passwordCredentials", []).append(credential)
    call.directory.secret_values[credential["keyId"]] = secret
    return {**credential, "secretText": secret}


def remove_password(call: Call, app: Json, key_id: Any) -> None:
    credentials = app.get("passwordCredentials", [])
    match = next((c for c in credentials if c["keyId"] == key_id), None)
    if match is None:
        raise bad_request(f"No password credential found with keyId '{key_id}'.")
    credentials.remove(match)
    value = call.directory.secret_values.pop(match["keyId"], None)
    if value is not None:
        call.platform.issued_secrets.add(value)


def replace_passwords(call: Call, app: Json, requested: Any) -> list[Json]:
    """``passwordCredentials`` in a POST or PATCH body: entries with a known keyId are kept,
    the others are new credentials (their ``secretText`` is the secret, else one is made),
    and the ones left out are removed."""
    if not isinstance(requested, list):
        raise bad_request("Invalid value specified for property 'passwordCredentials'.")
    existing = {c["keyId"]: c for c in app.get("passwordCredentials", [])}
    result: list[Json] = []
    new_secrets: dict[str, str] = {}
    check_cap({**app, "passwordCredentials": []}, len(requested))
    for entry in requested:
        if not isinstance(entry, dict):
            raise bad_request("Invalid value specified for property 'passwordCredentials'.")
        if entry.get("keyId") in existing:
            result.append(existing[entry["keyId"]])
            continue
        secret = entry.get("secretText")
        fields = {
            k: v for k, v in entry.items() if k not in ("secretText", "hint", "keyId", "customKeyIdentifier")
        }
        credential, value = new_password(call, app, fields, secret)
        result.append(credential)
        new_secrets[credential["keyId"]] = value
    for key_id in set(existing) - {c["keyId"] for c in result}:
        removed = call.directory.secret_values.pop(key_id, None)
        if removed is not None:
            call.platform.issued_secrets.add(removed)
    call.directory.secret_values.update(new_secrets)
    return result


# -- certificates ------------------------------------------------------------------------------


def _certificate(key: Any) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(str(key)))
    except ValueError:
        try:
            return x509.load_pem_x509_certificate(base64.b64decode(str(key)))
        except ValueError:
            raise bad_request(
                "Invalid certificate: Key value is invalid certificate", code="InvalidKeyValue"
            ) from None


def new_key(call: Call, requested: Any) -> Json:
    """A key credential (not yet stored), its lifetime checked against the tenant's policy."""
    if not isinstance(requested, dict):
        raise bad_request("Invalid value specified for property 'keyCredentials'.")
    unknown = set(requested) - KEY_FIELDS - {"@odata.type"}
    if unknown:
        raise bad_request(f"Invalid property '{sorted(unknown)[0]}'.")
    if requested.get("type") not in ("AsymmetricX509Cert", "X509CertAndPassword") or requested.get(
        "usage"
    ) not in (
        "Verify",
        "Sign",
    ):
        raise bad_request("Invalid value specified for property 'keyCredentials'.")
    cert = _certificate(requested.get("key"))
    thumbprint = hashlib.sha1(base64.b64decode(str(requested["key"]))).digest()  # noqa: S324 - x5t is SHA-1
    start = (
        _time(requested["startDateTime"], "startDateTime")
        if requested.get("startDateTime")
        else cert.not_valid_before_utc
    )
    end = (
        _time(requested["endDateTime"], "endDateTime")
        if requested.get("endDateTime")
        else cert.not_valid_after_utc
    )
    _check_key_policy(call, start, end)
    return {
        "customKeyIdentifier": base64.b64encode(thumbprint).decode(),
        "displayName": requested.get("displayName") or cert.subject.rfc4514_string(),
        "endDateTime": requested.get("endDateTime") or iso(cert.not_valid_after_utc),
        "key": requested["key"],
        "keyId": str(uuid.uuid4()),
        "startDateTime": requested.get("startDateTime") or iso(cert.not_valid_before_utc),
        "type": requested["type"],
        "usage": requested["usage"],
    }


def replace_keys(call: Call, app: Json, requested: Any) -> list[Json]:
    """``keyCredentials`` in a POST or PATCH body: entries with a known keyId are kept as they
    are (the policy is not applied to them again), the others are new credentials."""
    if not isinstance(requested, list):
        raise bad_request("Invalid value specified for property 'keyCredentials'.")
    existing = {c["keyId"]: c for c in app.get("keyCredentials", [])}
    return [
        existing[entry["keyId"]]
        if isinstance(entry, dict) and entry.get("keyId") in existing
        else new_key(call, entry)
        for entry in requested
    ]


def verify_proof(call: Call, app: Json, proof: Any) -> None:
    """addKey/removeKey: ``proof`` must be a JWT signed with the private key of one of the
    app's currently valid certificates, aud 00000002-0000-0000-c000-000000000000, iss the app's
    object id. An app without a valid certificate cannot pass: it must PATCH keyCredentials."""
    now = call.platform.clock.now()
    if not isinstance(proof, str) or not proof:
        raise bad_request("Proof of possession is missing or invalid.", code="Request_BadRequest")
    if "=" in proof:
        raise bad_request("Access token is missing or malformed.", code="Authentication_MissingOrMalformed")
    for credential in app.get("keyCredentials", []):
        if credential.get("usage") != "Verify":
            continue
        if not parse_iso(credential["startDateTime"]) <= now < parse_iso(credential["endDateTime"]):
            continue
        public_key = _certificate(credential["key"]).public_key()
        try:
            claims = jwt.decode(
                proof,
                public_key,  # type: ignore[arg-type]
                algorithms=["RS256", "PS256", "ES256"],
                audience=PROOF_AUDIENCE,
                # Its times are checked against the platform's clock, below.
                options={
                    "require": ["aud", "iss", "exp", "nbf"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            continue
        nbf, exp, moment = int(claims["nbf"]), int(claims["exp"]), now.timestamp()
        if claims.get("iss") == app["id"] and nbf <= moment < exp and exp - nbf <= MAX_PROOF_SECONDS:
            return
    raise bad_request("Proof of possession is missing or invalid.", code="Request_BadRequest")


# -- federated identity credentials -------------------------------------------------------------


def federated(app: Json, requested: Json, existing: Json | None = None) -> Json:
    unknown = set(requested) - FEDERATED_FIELDS - {"@odata.type", "id"}
    if unknown:
        raise bad_request(f"Invalid property '{sorted(unknown)[0]}'.")
    merged = {**(existing or {}), **{k: v for k, v in requested.items() if k in FEDERATED_FIELDS}}
    for field in ("name", "issuer", "subject"):
        if not isinstance(merged.get(field), str) or not merged[field]:
            raise bad_request(f"Property '{field}' is required.")
    audiences = merged.get("audiences")
    if not isinstance(audiences, list) or len(audiences) != 1 or audiences[0] not in FEDERATED_AUDIENCES:
        raise bad_request(
            "Invalid value specified for property 'audiences' of resource 'FederatedIdentityCredential'."
        )
    if existing is not None and merged["name"] != existing["name"]:
        raise bad_request("Property 'name' is read-only and cannot be changed.")
    others = [f for f in app.get("_federatedIdentityCredentials", []) if f is not existing]
    if existing is None and len(others) >= MAX_FEDERATED:
        raise bad_request(
            f"Maximum number of federated identity credentials ({MAX_FEDERATED}) reached for this application.",
            code="Request_BadRequest",
        )
    if any(f["name"].casefold() == merged["name"].casefold() for f in others):
        raise bad_request(
            "FederatedIdentityCredential with name " + merged["name"] + " already exists.",
            code="Request_MultipleObjectsWithSameKeyValue",
        )
    if any(f["issuer"] == merged["issuer"] and f["subject"] == merged["subject"] for f in others):
        raise bad_request(
            "FederatedIdentityCredential with the same issuer and subject already exists.",
            code="Request_MultipleObjectsWithSameKeyValue",
        )
    return {"id": (existing or {}).get("id") or str(uuid.uuid4()), "description": None, **merged}
