"""A client secret's life in the platform: issued with ``addPassword`` and stored as a new version
of the application's Key Vault secret.

The one rule: no credential outlives its only copy of the value. Registration and rotation both
issue secrets through ``issue_secret``, under the application's lease (shared.services.exclusive):
no other delivery acts on the application meanwhile, so nothing needs settling afterwards.
"""

from __future__ import annotations

import datetime as dt

from shared.domain import credentials as creds
from shared.domain import fencing, stored
from shared.domain.errors import PolicyViolation
from shared.domain.policy import RequestedSecret
from shared.domain.records import AppRecord, PasswordInfo, StoredVersion
from shared.messages.replies import ReplyCredential
from shared.services.dependencies import Dependencies
from shared.services.tasks import gather_all


async def ensure_secret(
    deps: Dependencies,
    app: AppRecord,
    created: bool,
    *,
    unique_name: str,
    request_id: str,
    requested_by: str,
    owner: str | None,
    secret: RequestedSecret,
) -> ReplyCredential:
    """The registration's secret: the stored one the unversioned secret resolves to if it is
    still valid, else a new one. Orphans of earlier attempts are removed first."""
    name = stored.secret_name(unique_name)
    if not created:
        versions, latest = await gather_all(deps.vault.versions(name), deps.vault.latest(name))
        plan = creds.plan_registration_secret(
            app.passwords,
            versions,
            latest,
            now=deps.now(),
            safety_age=deps.settings.rotation_safety_age.total_lower_bound(),
        )
        await gather_all(*(deps.applications.remove_password(app.object_id, k) for k in plan.remove))
        if plan.reuse is not None and plan.reuse.stored is not None:
            return reply_credential(plan.reuse.info, plan.reuse.stored)
    return await issue_secret(
        deps,
        app,
        unique_name=unique_name,
        origin=request_id,
        requested_by=requested_by,
        owner=owner,
        description=secret.description,
        start=secret.start,
        end=secret.end,
        lifetime=stored.lifetime_label(secret.start, secret.end),
    )


async def issue_secret(
    deps: Dependencies,
    app: AppRecord,
    *,
    unique_name: str,
    origin: str,
    requested_by: str,
    owner: str | None,
    description: str,
    start: dt.datetime,
    end: dt.datetime,
    lifetime: str,
) -> ReplyCredential:
    """addPassword, then store the value as a new version of the app's Key Vault secret.
    If the Key Vault write fails the credential is removed before the error propagates,
    so no credential outlives its only copy of the value."""
    graph, vault = deps.applications, deps.vault
    name = stored.secret_name(unique_name)
    try:
        new = await graph.add_password(app.object_id, stored.credential_name(description, origin), start, end)
    except PolicyViolation as error:
        raise PolicyViolation(error.code, error.message, field="credential") from None
    tags = stored.version_tags(
        key_id=new.info.key_id,
        app_id=app.app_id,
        unique_name=unique_name,
        origin=origin,
        lifetime=lifetime,
        service_tag=deps.settings.service_tag,
        requested_by=requested_by,
        owner=owner,
    )
    try:
        version = await vault.store(name, new.secret, tags=tags, not_before=start, expires_on=end)
    except Exception:
        # A lost response can hide a write that happened: removing the credential then would
        # leave the newest version (what the unversioned id resolves to) opening nothing.
        found = await stored_version(deps, name, new.info.key_id)
        if found is None:
            await _remove_unstored(deps, app, new.info.key_id)
            raise
        version = found
    except BaseException:
        await _remove_unstored(deps, app, new.info.key_id)
        raise
    return reply_credential(new.info, version)


async def _remove_unstored(deps: Dependencies, app: AppRecord, key_id: str) -> None:
    """Remove the credential just issued whose value was not stored. Safe even after this
    delivery lost its lease: the value never left this process, so nobody can be using it."""
    with fencing.unfenced():
        await deps.applications.remove_password(app.object_id, key_id)


async def stored_version(deps: Dependencies, name: str, key_id: str) -> StoredVersion | None:
    """The enabled version holding ``key_id``'s value, if the vault has one."""
    versions = await deps.vault.versions(name)
    return next((v for v in versions if v.enabled and v.key_id == key_id), None)


def reply_credential(info: PasswordInfo, version: StoredVersion) -> ReplyCredential:
    """What the reply says of a credential: its id, hint and validity, and where its value is."""
    return ReplyCredential(
        key_id=info.key_id,
        hint=info.hint,
        start_date_time=info.start,
        end_date_time=info.end,
        key_vault_secret_id=version.id,
    )
