"""Key Vault keys: the data plane azure-keyvault-keys 4.11 talks to, for the keys behind
certificates (emulator.keyvault_certificates makes them, one version per certificate version).

``KeyStore`` holds each key's versions with their RSA private keys, which never leave the
emulator: a key bundle carries the public JWK only (``kid``, ``kty``, ``key_ops``, ``n``, ``e``),
so azure-keyvault-keys' ``CryptographyClient`` may verify locally but must sign here.
``routes`` puts get, sign and verify in front of it, in Key Vault's wire format and behind the
secrets' challenge, token and api-version checks (emulator.keyvault).

The quirks imitated:
- a disabled version answers every operation, get included, with 403 ``Forbidden`` /
  innererror ``KeyDisabled``, "Operation sign is not allowed on a disabled key."
- sign outside the version's ``nbf``..``exp`` is refused (about-certificates: "Operations outside
  the nbf and exp window are automatically disallowed"; the 403's text is this emulator's);
  verify is not.
- the digest must be as long as the algorithm's hash: 400 ``BadParameter`` "Invalid length of
  'value': 10 bytes. RS256 requires 32 bytes, encoded with base64url." (as Key Vault answers it,
  azure-sdk-for-js#12654).
- RS256/384/512 are PKCS#1 v1.5 (the DigestInfo built here); PS256/384/512 are RSASSA-PSS with
  MGF1 and a salt as long as the digest (RFC 7518 3.5, which Key Vault's algorithms follow).
- ``key_ops`` come from the certificate policy's ``key_usage`` (about-certificates, "Mapping X.509
  usage to key operations"); a missing operation is refused with 403 (this emulator's text).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.clock import Clock
from emulator.errors import PlatformError
from emulator.identity import VAULT_AUDIENCE
from emulator.keyvault import RECOVERABLE_DAYS, RECOVERY_LEVEL, _api_version, _bad, _body, _name, _reply

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

# JWS algorithm -> (hash, PSS?)
SIGNATURE_ALGORITHMS: dict[str, tuple[type[hashes.HashAlgorithm], bool]] = {
    "RS256": (hashes.SHA256, False),
    "RS384": (hashes.SHA384, False),
    "RS512": (hashes.SHA512, False),
    "PS256": (hashes.SHA256, True),
    "PS384": (hashes.SHA384, True),
    "PS512": (hashes.SHA512, True),
}


def _not_found(name_or_id: str) -> PlatformError:
    return PlatformError(
        404,
        "KeyNotFound",
        f"A key with (name/id) {name_or_id} was not found in this key vault. If you recently "
        "deleted this key you may be able to recover it using the correct recovery command. "
        "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        service="keyvault",
    )


def _forbidden(message: str, inner_code: str | None = None) -> PlatformError:
    return PlatformError(403, "Forbidden", message, service="keyvault", inner_code=inner_code)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(value: Any, field_name: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(f"The '{field_name}' parameter is required and must be base64url.")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise _bad(f"The '{field_name}' parameter is not valid base64url.") from None


def pkcs8_base64(private_key: rsa.RSAPrivateKey) -> str:
    """The private key as the base64 of its PKCS#8 DER: how the leak detector knows it."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


@dataclass(frozen=True)
class KeyVersion:
    version: str
    private_key: rsa.RSAPrivateKey = field(repr=False)  # never in an answer
    kty: str
    key_ops: tuple[str, ...]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class Key:
    name: str
    versions: list[KeyVersion] = field(default_factory=list)  # in creation order: the last is the latest
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_date is not None


class KeyStore:
    """The vault's keys (all of them a certificate's, hence ``managed``), on the emulator clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._keys: dict[str, Key] = {}  # by lower-cased name

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _purge_due(self) -> None:
        now = self._now()
        for name, key in list(self._keys.items()):
            if key.scheduled_purge_date is not None and key.scheduled_purge_date <= now:
                del self._keys[name]

    def _live(self, name: str) -> Key:
        self._purge_due()
        key = self._keys.get(name.lower())
        if key is None or key.is_deleted:
            raise _not_found(name)
        return key

    def add(
        self,
        name: str,
        version: str,
        private_key: rsa.RSAPrivateKey,
        *,
        kty: str,
        key_ops: tuple[str, ...],
        enabled: bool,
        nbf: int,
        exp: int,
    ) -> None:
        """A certificate version's key: same name, same version, the certificate's attributes."""
        self._purge_due()
        key = self._keys.setdefault(name.lower(), Key(name))
        now = self._now()
        key.versions.append(KeyVersion(version, private_key, kty, key_ops, enabled, nbf, exp, now, now))

    def properties(self, name: str, version: str = "") -> tuple[Key, KeyVersion]:
        key = self._live(name)
        if not version:
            return key, key.versions[-1]
        found = next((v for v in key.versions if v.version == version), None)
        if found is None:
            raise _not_found(f"{name}/{version}")
        return key, found

    def usable(self, name: str, version: str, operation: str) -> tuple[Key, KeyVersion]:
        """The version, refused while disabled (every operation, get included)."""
        key, found = self.properties(name, version)
        if not found.enabled:
            raise _forbidden(f"Operation {operation} is not allowed on a disabled key.", "KeyDisabled")
        return key, found

    def private_key(self, name: str) -> rsa.RSAPrivateKey | None:
        """The latest version's private key, for a certificate policy's ``reuse_key`` (internal)."""
        key = self._keys.get(name.lower())
        return key.versions[-1].private_key if key and key.versions else None

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        key, found = self.properties(name, version)
        key.versions[key.versions.index(found)] = dataclasses.replace(
            found, enabled=enabled, updated=self._now()
        )

    # -- cryptography ---------------------------------------------------------------------

    def sign(self, name: str, version: str, algorithm: str, digest: bytes) -> tuple[Key, KeyVersion, bytes]:
        key, found = self.usable(name, version, "sign")
        hash_type, pss = _algorithm(algorithm, digest)
        now = self._now()
        if (found.nbf is not None and now < found.nbf) or (found.exp is not None and now >= found.exp):
            raise _forbidden("Operation sign is not allowed outside the key's validity period (nbf, exp).")
        if "sign" not in found.key_ops:
            raise _forbidden("Operation sign is not permitted on this key.")
        hash_algorithm = hash_type()
        scheme = _padding(hash_algorithm, pss)
        return key, found, found.private_key.sign(digest, scheme, utils.Prehashed(hash_algorithm))

    def verify(self, name: str, version: str, algorithm: str, digest: bytes, signature: bytes) -> bool:
        _, found = self.usable(name, version, "verify")
        hash_type, pss = _algorithm(algorithm, digest)
        if "verify" not in found.key_ops:
            raise _forbidden("Operation verify is not permitted on this key.")
        hash_algorithm = hash_type()
        try:
            found.private_key.public_key().verify(
                signature, digest, _padding(hash_algorithm, pss), utils.Prehashed(hash_algorithm)
            )
        except InvalidSignature:
            return False
        return True

    # -- soft delete, with the certificate --------------------------------------------------

    def delete(self, name: str, deleted_date: int, scheduled_purge_date: int) -> None:
        key = self._keys.get(name.lower())
        if key is not None:
            key.deleted_date, key.scheduled_purge_date = deleted_date, scheduled_purge_date

    def recover(self, name: str) -> None:
        key = self._keys.get(name.lower())
        if key is not None:
            key.deleted_date = key.scheduled_purge_date = None

    def purge(self, name: str) -> None:
        self._keys.pop(name.lower(), None)


def _algorithm(algorithm: Any, digest: bytes) -> tuple[type[hashes.HashAlgorithm], bool]:
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise _bad(f"Invalid algorithm for an RSA key: {algorithm}.")
    hash_type, pss = SIGNATURE_ALGORITHMS[algorithm]
    expected = hash_type.digest_size
    if len(digest) != expected:
        raise _bad(
            f"Invalid length of 'value': {len(digest)} bytes. {algorithm} requires {expected} bytes, "
            "encoded with base64url."
        )
    return hash_type, pss


def _padding(hash_algorithm: hashes.HashAlgorithm, pss: bool) -> padding.AsymmetricPadding:
    if pss:
        return padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
    return padding.PKCS1v15()


# -- wire format --------------------------------------------------------------------------


def _bundle(vault_url: str, key: Key, v: KeyVersion) -> dict[str, Any]:
    """KeyBundle: the public JWK only, and ``managed`` (every key here is a certificate's)."""
    numbers = v.private_key.public_key().public_numbers()
    attributes: dict[str, Any] = {"enabled": v.enabled}
    if v.nbf is not None:
        attributes["nbf"] = v.nbf
    if v.exp is not None:
        attributes["exp"] = v.exp
    attributes.update(
        created=v.created, updated=v.updated, recoveryLevel=RECOVERY_LEVEL, recoverableDays=RECOVERABLE_DAYS
    )
    return {
        "key": {
            "kid": f"{vault_url}/keys/{key.name}/{v.version}",
            "kty": v.kty,
            "key_ops": list(v.key_ops),
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        },
        "attributes": attributes,
        "managed": True,
    }


Handler = Callable[[Request, KeyStore], Awaitable[Response]]


def routes(
    vault_url: str, identity: IdentityPlatform, current_keys: Callable[[], KeyStore]
) -> list[BaseRoute]:
    """get, sign and verify at ``vault_url``; ``current_keys`` gives the keys of the moment."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            identity.authenticate(request, (VAULT_AUDIENCE,))
            _api_version(request)
            return await handler(request, current_keys())

        return run

    async def get_key(request: Request, keys: KeyStore) -> Response:
        key, version = keys.usable(_name(request), request.path_params.get("version", ""), "get")
        return _reply(request, _bundle(vault_url, key, version))

    async def sign(request: Request, keys: KeyStore) -> Response:
        body = await _body(request)
        key, version, signature = keys.sign(
            _name(request),
            request.path_params["version"],
            str(body.get("alg")),
            _unb64url(body.get("value"), "value"),
        )
        return _reply(
            request, {"kid": f"{vault_url}/keys/{key.name}/{version.version}", "value": b64url(signature)}
        )

    async def verify(request: Request, keys: KeyStore) -> Response:
        body = await _body(request)
        valid = keys.verify(
            _name(request),
            request.path_params["version"],
            str(body.get("alg")),
            _unb64url(body.get("digest"), "digest"),
            _unb64url(body.get("value"), "value"),
        )
        return _reply(request, {"value": valid})

    return [
        Route("/keys/{name}", endpoint(get_key), methods=["GET"]),
        # the SDK asks for the latest version as /keys/{name}/ (an empty version)
        Route("/keys/{name}/", endpoint(get_key), methods=["GET"]),
        Route("/keys/{name}/{version}", endpoint(get_key), methods=["GET"]),
        Route("/keys/{name}/{version}/sign", endpoint(sign), methods=["POST"]),
        Route("/keys/{name}/{version}/verify", endpoint(verify), methods=["POST"]),
    ]
