"""A certificate's life in the platform: created in Key Vault (its private key never leaves the
vault), its public part attached to the application, and later ones rotated in with a proof of
possession signed in the vault, the old ones retired after the grace period.

Creation comes first and attaching second, so a crash in between leaves a vault version that
is on no application; the next delivery (or the rotation worker) attaches that version instead
of making another one (shared.domain.certificates).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.domain import certificates as certs
from shared.domain import stored
from shared.domain.errors import PolicyViolation, TransientError
from shared.domain.planner import Step
from shared.domain.policy import RequestedCertificate
from shared.domain.records import AppRecord, CertificateVersion, KeyInfo, NewKey
from shared.messages.replies import ReplyCertificate
from shared.services.dependencies import Dependencies
from shared.services.tasks import gather_all

log = logging.getLogger(__name__)


async def ensure_certificate(
    deps: Dependencies,
    app: AppRecord,
    *,
    unique_name: str,
    origin: str,
    requested_by: str,
    owner: str | None,
    certificate: RequestedCertificate,
) -> ReplyCertificate:
    """The registration's certificate: the one in use if it is still valid, the vault's newest
    version if an earlier attempt made it and stopped before attaching it, else a new one."""
    name = stored.certificate_name(unique_name)
    mine, latest = await versions_of(deps, name, app.app_id)
    plan = certs.plan_registration_certificate(app.keys, mine, latest, now=deps.now())
    if plan.reuse is not None and plan.reuse.stored is not None:
        return reply_certificate(plan.reuse.info, plan.reuse.stored)
    version = plan.attach or await create_version(
        deps,
        app,
        name,
        certs_request=certificate,
        origin=origin,
        requested_by=requested_by,
        owner=owner,
    )
    key = await attach(deps, app, name, version, mine, origin=origin)
    return reply_certificate(key, version)


async def versions_of(
    deps: Dependencies, name: str, app_id: str
) -> tuple[list[CertificateVersion], CertificateVersion | None]:
    """The versions of certificate ``name`` made for application ``app_id``, and the vault's
    newest if it is one of them (an earlier, decommissioned application of the same uniqueName
    made the others)."""
    versions, latest = await gather_all(deps.certificates.versions(name), deps.certificates.latest(name))
    mine = [v for v in versions if v.tags.get(stored.APP_ID) == app_id]
    return mine, latest if latest is not None and latest.tags.get(stored.APP_ID) == app_id else None


async def create_version(
    deps: Dependencies,
    app: AppRecord,
    name: str,
    *,
    certs_request: RequestedCertificate,
    origin: str,
    requested_by: str,
    owner: str | None,
) -> CertificateVersion:
    """A new version of the app's Key Vault certificate, tagged as the service's."""
    assert app.unique_name is not None
    tags = stored.version_tags(
        key_id=None,
        app_id=app.app_id,
        unique_name=app.unique_name,
        origin=origin,
        lifetime=certs_request.lifetime,
        service_tag=deps.settings.service_tag,
        requested_by=requested_by,
        owner=owner,
    )
    tags[stored.EXPORTABLE] = str(certs_request.exportable).lower()
    tags[stored.SUBJECT] = certs_request.subject
    return await deps.certificates.create(name, certs_request, deps.settings.certificate_issuer, tags)


async def attach(
    deps: Dependencies,
    app: AppRecord,
    name: str,
    version: CertificateVersion,
    versions: Sequence[CertificateVersion],
    *,
    origin: str,
) -> KeyInfo:
    """Put ``version``'s public part on the application: ``addKey`` with a proof signed in the
    vault by a current certificate of the application, or, when it has none the service can
    sign with, an update of its key credentials that keeps the existing ones. A tenant policy
    refusing it disables the version (it would open nothing) and is raised."""
    if not version.cer:
        version = await deps.certificates.get(name, version.version)
    assert version.not_before is not None and version.expires_on is not None
    new = NewKey(
        display_name=certs.key_display_name(origin),
        cer=version.cer,
        thumbprint=version.thumbprint,
        start=version.not_before,
        end=version.expires_on,
    )
    signing = certs.signer(app.keys, versions, deps.now())
    try:
        if signing is not None:
            proof = await _proof(deps, name, app.object_id, signing)
            try:
                return await deps.keys.add_key(app.object_id, new, proof)
            except TransientError as error:
                if error.code != "LostResponse":
                    raise
        else:
            await deps.keys.add_key_by_update(app.object_id, new)
    except PolicyViolation as error:
        await deps.certificates.disable(name, version.version)
        raise PolicyViolation(error.code, error.message, field="credential") from None
    current = await deps.applications.get_application(app.object_id)
    found = next((k for k in current.keys if k.thumbprint == version.thumbprint), None)
    if found is None:
        raise TransientError(
            "KeyNotVisible", f"the certificate {version.thumbprint} is not on the application yet"
        )
    return found


async def _proof(deps: Dependencies, name: str, object_id: str, signing: CertificateVersion) -> str:
    """A proof of possession for ``object_id``, signed in the vault by ``signing``'s key (a
    version of certificate ``name``)."""
    if not signing.cer:
        signing = await deps.certificates.get(name, signing.version)
    data = certs.proof_signing_input(object_id, signing.cer, deps.now())
    signature = await deps.certificates.sign(signing.key_id, data)
    return certs.signed_token(data, signature)


async def remove_keys(deps: Dependencies, app: AppRecord, name: str, steps: Sequence[Step]) -> None:
    """Remove the key credentials ``steps`` name (with a proof signed by the newest current
    certificate), then disable their vault versions."""
    present = {k.key_id for k in app.keys}
    removed = [s.key_id for s in steps if s.action in ("retire", "cleanup") and s.key_id in present]
    if removed:
        versions = await deps.certificates.versions(name)
        keep = [k for k in app.keys if k.key_id not in removed]
        signing = certs.signer(keep, versions, deps.now())
        # One proof serves every removal of the pass: it is valid for ten minutes.
        proof = None if signing is None else await _proof(deps, name, app.object_id, signing)
        for key_id in removed:
            assert key_id is not None
            await deps.keys.remove_key(app.object_id, key_id, proof)
    await gather_all(*(deps.certificates.disable(name, v.version) for s in steps for v in s.versions))


def reply_certificate(key: KeyInfo, version: CertificateVersion) -> ReplyCertificate:
    """What the reply says of a certificate: its key credential, thumbprint, validity and where
    it is in Key Vault. Never key material."""
    return ReplyCertificate(
        key_id=key.key_id,
        thumbprint=version.thumbprint,
        start_date_time=key.start,
        end_date_time=key.end,
        key_vault_certificate_id=version.id,
        key_vault_key_id=version.key_id,
        exportable=version.tags.get(stored.EXPORTABLE) == "true",
    )


async def certificate_issued_by(deps: Dependencies, app: AppRecord, origin: str) -> ReplyCertificate | None:
    """The valid certificate ``origin`` (a request id) put on the application, if there is one."""
    assert app.unique_name is not None
    versions = await deps.certificates.versions(stored.certificate_name(app.unique_name))
    now = deps.now()
    issued = next(
        (
            k
            for k in certs.join(app.keys, versions)
            if k.managed
            and k.stored is not None
            and k.stored.tags.get(stored.ORIGIN) == origin
            and k.valid_at(now)
        ),
        None,
    )
    return None if issued is None or issued.stored is None else reply_certificate(issued.info, issued.stored)


async def disable_versions(deps: Dependencies, unique_name: str, app_id: str) -> int:
    """Disable every version of the application's Key Vault certificate (decommission, or the
    undo of a refused registration). Returns how many versions were the application's."""
    name = stored.certificate_name(unique_name)
    versions = [v for v in await deps.certificates.versions(name) if v.tags.get(stored.APP_ID) == app_id]
    await gather_all(*(deps.certificates.disable(name, v.version) for v in versions if v.enabled))
    return len(versions)
