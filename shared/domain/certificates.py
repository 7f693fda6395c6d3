"""Pure decisions about an application's certificates, over plain data, and the proof of
possession Graph's ``addKey`` and ``removeKey`` want.

The private key of every certificate the service issues is made by Key Vault and never leaves
it: a new certificate is *created in the vault first* (a new version of ``cert-{uniqueName}``),
then its public part is attached to the application's ``keyCredentials``. A key credential is
*managed* when its display name carries the service's marker (shared.domain.stored), and
*stored* when an enabled version of the app's Key Vault certificate has its thumbprint.

The invariants are the secrets' (docs/rotation.md): a managed application keeps a valid,
stored credential; a new key is attached and stored before an old one is retired, and the old
one goes only after the grace period; nobody else's key credential is touched; proofs are
signed in the vault by a key that is valid when it signs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.domain.planner import Plan, Policy, Step, rotate_at
from shared.domain.records import CertificateVersion, KeyInfo
from shared.domain.stored import ORIGIN, credential_name, origin_of

# Graph's proof of possession (application-rollkey-prooftoken): aud is this fixed id, iss the
# application's object id, and exp at most 10 minutes after nbf.
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
PROOF_LIFETIME = dt.timedelta(minutes=10)


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWT parts must be (Graph refuses ``=`` padding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_of(cer: bytes) -> str:
    """A certificate's SHA-1 thumbprint in upper-case hex, as the portal shows it."""
    return hashlib.sha1(cer).hexdigest().upper()  # noqa: S324 - the thumbprint is SHA-1 by definition


def thumbprint_from_identifier(custom_key_identifier: bytes | None) -> str:
    """The thumbprint Graph keeps as a key credential's ``customKeyIdentifier`` (raw bytes)."""
    return (custom_key_identifier or b"").hex().upper()


def proof_signing_input(object_id: str, cer: bytes, now: dt.datetime) -> bytes:
    """The header and claims of a proof of possession for ``object_id``'s ``addKey`` or
    ``removeKey``, to be signed (RS256) by the private key of the certificate ``cer``. Its time
    is the service's ``now``, which is the platform's."""
    header = {"alg": "RS256", "typ": "JWT", "x5t": b64url(hashlib.sha1(cer).digest())}  # noqa: S324
    nbf = int(now.timestamp())
    claims = {
        "aud": PROOF_AUDIENCE,
        "iss": object_id,
        "nbf": nbf,
        "iat": nbf,
        "exp": nbf + int(PROOF_LIFETIME.total_seconds()),
    }
    parts = (json.dumps(header, separators=(",", ":")), json.dumps(claims, separators=(",", ":")))
    return ".".join(b64url(p.encode()) for p in parts).encode("ascii")


MAX_KEY_DISPLAY_NAME = 90  # Graph shortens longer key credential names, which would cut the marker


def key_display_name(origin: str) -> str:
    """The display name of a key credential the service attaches: the marker, with the origin
    shortened to fit Graph's 90 characters (the vault version's tags keep the whole origin)."""
    room = MAX_KEY_DISPLAY_NAME - len(credential_name("certificate", ""))
    return credential_name("certificate", origin[:room])


def signed_token(signing_input: bytes, signature: bytes) -> str:
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


# -- the application's certificates, joined with the vault's versions --------------------------


@dataclass(frozen=True)
class CertificateKey:
    """A key credential joined with the enabled Key Vault version that holds its private key."""

    info: KeyInfo
    origin: str | None
    stored: CertificateVersion | None

    @property
    def key_id(self) -> str:
        return self.info.key_id

    @property
    def managed(self) -> bool:
        return self.origin is not None

    def valid_at(self, now: dt.datetime) -> bool:
        return self.info.start <= now < self.info.end


def join(keys: Iterable[KeyInfo], versions: Iterable[CertificateVersion]) -> list[CertificateKey]:
    enabled = {v.thumbprint: v for v in versions if v.enabled}
    return [
        CertificateKey(k, origin_of(k.display_name), enabled.get(k.thumbprint))
        for k in keys
        if k.usage == "Verify"
    ]


def signer(
    keys: Sequence[KeyInfo], versions: Sequence[CertificateVersion], now: dt.datetime
) -> CertificateVersion | None:
    """The vault version to sign a proof with: that of the newest managed key credential that
    is valid now, attached and whose vault version is enabled and valid. None: the application
    has no certificate the service can prove, and only an application update can add one."""
    usable = [
        k
        for k in join(keys, versions)
        if k.managed and k.valid_at(now) and k.stored and k.stored.valid_at(now)
    ]
    newest = max(usable, key=lambda k: (k.info.start, k.info.end), default=None)
    return None if newest is None else newest.stored


@dataclass(frozen=True)
class CertificatePlan:
    """What a registration does about the app's certificate: answer with the one in use,
    attach the vault's newest version (created by an attempt that stopped before attaching
    it), or create a new version and attach it."""

    reuse: CertificateKey | None = None
    attach: CertificateVersion | None = None

    @property
    def create(self) -> bool:
        return self.reuse is None and self.attach is None


def attachable(latest: CertificateVersion | None, keys: Sequence[KeyInfo], now: dt.datetime) -> bool:
    """Whether the vault's newest version is the service's, valid, and not on the app yet."""
    return (
        latest is not None
        and latest.valid_at(now)
        and origin_of_version(latest) is not None
        and all(k.thumbprint != latest.thumbprint for k in keys)
    )


def origin_of_version(version: CertificateVersion) -> str | None:
    """The origin tag of a version the service created; None for any other."""
    return version.tags.get(ORIGIN)


def plan_registration_certificate(
    keys: Sequence[KeyInfo],
    versions: Sequence[CertificateVersion],
    latest: CertificateVersion | None,
    *,
    now: dt.datetime,
) -> CertificatePlan:
    """Reuse the managed key credential of the vault's newest version if it is valid now;
    attach that version if it is not on the application yet; otherwise create a new one."""
    if latest is not None and latest.valid_at(now):
        for key in join(keys, versions):
            if key.managed and key.stored is not None and key.stored.version == latest.version:
                if key.valid_at(now):
                    return CertificatePlan(reuse=key)
    if attachable(latest, keys, now):
        return CertificatePlan(attach=latest)
    return CertificatePlan()


def _newer(key: CertificateKey) -> tuple[dt.datetime, dt.datetime]:
    return key.info.start, key.info.end


def _stored_since(key: CertificateKey) -> dt.datetime:
    created = key.stored.created_on if key.stored is not None else None
    return max(key.info.start, created) if created is not None else key.info.start


def plan_certificate_rotation(
    keys: Sequence[KeyInfo],
    versions: Sequence[CertificateVersion],
    latest: CertificateVersion | None,
    *,
    now: dt.datetime,
    policy: Policy,
    force: bool = False,
    may_rotate: bool = True,
    origin: str | None = None,
) -> Plan:
    """What to do about one application's certificates, given everything known about them.

    ``rotate`` carries in ``versions`` the vault version to attach when the newest one is not
    on the application yet (an attempt stopped between creating and attaching it); with none,
    a new version is created and attached. Keys are retired only once a newer stored key has
    served for the grace period (or they expired); a managed key whose private key is in no
    enabled version goes once older than the safety age; vault versions attached to nothing are
    disabled once older than the safety age, never the newest one.
    """
    credentials = join(keys, versions)
    managed = [c for c in credentials if c.managed]
    stored_valid = [c for c in managed if c.stored is not None and c.valid_at(now)]
    newest = max(stored_valid, key=_newer, default=None)
    reports = [Step("report", "unmanaged-credential", c.key_id) for c in credentials if not c.managed]
    on_app = {k.thumbprint for k in keys}

    removable: list[Step] = []
    for c in managed:
        if c is newest:
            continue
        if c.stored is None:
            if now - c.info.start >= policy.safety_age:
                removable.append(Step("cleanup", "not-stored", c.key_id))
            continue
        newer = [n for n in stored_valid if n is not c and _newer(n) > _newer(c)]
        if not newer:
            continue
        versions_of = (c.stored,) if latest is None or c.stored.version != latest.version else ()
        if not c.valid_at(now):
            removable.append(Step("retire", "expired", c.key_id, versions_of))
        elif any(now - _stored_since(n) >= policy.grace for n in newer):
            removable.append(Step("retire", "superseded", c.key_id, versions_of))

    latest_version = latest.version if latest is not None else None
    dangling = [
        Step("cleanup", "dangling-version", None, (v,))
        for v in versions
        if v.enabled
        and v.thumbprint not in on_app
        and v.version != latest_version
        and (v.created_on is None or now - v.created_on >= policy.safety_age)
    ]

    rotate = None
    if may_rotate:
        if force:
            done = origin is not None and any(
                c.stored is not None and origin_of_version(c.stored) == origin for c in stored_valid
            )
            rotate = None if done else Step("rotate", "requested")
        elif newest is None:
            rotate = Step("rotate", "expired" if any(c.stored for c in managed) else "not-stored")
        elif now >= rotate_at(newest.info, policy.window):
            rotate = Step("rotate", "expiring")
        if attachable(latest, keys, now):
            # Made by an attempt that stopped before attaching it (or by the vault itself):
            # attached rather than made again, for the reason it was made if that still holds.
            assert latest is not None
            rotate = Step("rotate", rotate.reason if rotate else "not-attached", None, (latest,))
    return Plan(rotate=rotate, after=(*removable, *dangling, *reports))


def triage_certificates(keys: Sequence[KeyInfo], *, now: dt.datetime, policy: Policy) -> Plan:
    """The scheduler's view of an application's certificates: Graph's key credentials only,
    every managed one assumed stored (the worker reads the vault and finds out)."""
    assumed = [
        CertificateVersion(
            id="",
            version=f"assumed-{k.key_id}",
            thumbprint=k.thumbprint,
            enabled=True,
            not_before=k.start,
            expires_on=k.end,
            created_on=k.start,
            tags={},
        )
        for k in keys
        if origin_of(k.display_name) is not None
    ]
    newest = max(assumed, key=lambda v: v.created_on or now, default=None)
    plan = plan_certificate_rotation(keys, assumed, newest, now=now, policy=policy)
    # Disabling the vault's versions is the worker's to decide: here they are only assumed.
    return Plan(rotate=plan.rotate, after=tuple(s for s in plan.after if s.reason != "dangling-version"))
