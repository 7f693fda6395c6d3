"""Rotate on request: the registration queue's ``"action": "rotate"``, a new credential now,
however far its expiry, through the same planner as the timer (so it never pushes past
``MAX_CREDENTIALS`` and retires what is due)."""

from __future__ import annotations

import datetime as dt
import logging

from shared.domain import credentials as creds
from shared.domain import stored
from shared.domain.errors import NotFound, PermanentError, PolicyViolation, TransientError
from shared.domain.planner import MAX_CREDENTIALS, expects_secret, rotated_within
from shared.domain.records import AppRecord, StoredVersion
from shared.messages.replies import RegistrationReply, ReplyApplication, ReplyCertificate, ReplyCredential
from shared.messages.requests import RotateRequest
from shared.services.certificates import certificate_issued_by
from shared.services.dependencies import Dependencies
from shared.services.ownership import ensure_owned
from shared.services.rotation import Outcome, rotate
from shared.services.secrets import reply_credential

log = logging.getLogger(__name__)


async def rotate_on_request(deps: Dependencies, request: RotateRequest) -> RegistrationReply:
    """The reply to a rotate request. Raises a ``PermanentError`` naming the field for an
    application that does not exist, is not the service's, or has no room for a credential."""
    unique_name = request.application.unique_name
    app = await deps.applications.get_application_by_unique_name(unique_name)
    if app is None:
        raise NotFound(
            "not_found", "No application with this uniqueName exists.", field="application.uniqueName"
        )
    ensure_owned(app, deps.settings.service_tag, request.application.service_management_reference)
    if stored.credential_type_tag(app.tags) == stored.CERTIFICATE:
        return await _rotate_certificate(deps, request, app)
    if not expects_secret(app, deps.settings.service_tag):
        # A public client holds no secret (register refuses one): nor does rotate give it one.
        raise PermanentError(
            "no_secret",
            "This application was registered without a secret; rotate issues none.",
            field="application.uniqueName",
        )
    versions = await deps.vault.versions(stored.secret_name(unique_name))
    now = deps.now()
    mine = _issued_by(app, versions, request.request_id, now)
    in_grace = rotated_within(app.passwords, versions, now, deps.settings.rotation_policy.grace)
    if mine is None and in_grace is not None and in_grace.stored is not None:
        # A rotation's grace period is running (another ticket's, or the timer's): its new
        # credential is the answer. A flood of rotate tickets never retires, through make-room,
        # the credential consumers read a moment before.
        log.info("rotation.in_grace", extra={"requestId": request.request_id, "keyId": in_grace.key_id})
        return _succeeded(deps, request, app, reply_credential(in_grace.info, in_grace.stored))
    outcome = await rotate(
        deps,
        app,
        force=True,
        origin=request.request_id,
        requested_by=request.requested_by,
        dry_run=False,
    )
    for e in outcome.events:
        log.info(
            "rotation.event",
            extra={
                "requestId": request.request_id,
                "action": e.action,
                "reason": e.reason,
                "keyId": e.key_id,
            },
        )
    latest_app = outcome.app or app
    credential = outcome.issued or await _issued_earlier(deps, latest_app, request.request_id)
    if credential is None:
        _refused_by_policy(outcome)
        raise PermanentError(
            "credential_limit",
            f"The application already holds {MAX_CREDENTIALS} credentials this service may not remove.",
            field="application.uniqueName",
        )
    return _succeeded(deps, request, latest_app, credential)


async def _rotate_certificate(
    deps: Dependencies, request: RotateRequest, app: AppRecord
) -> RegistrationReply:
    """A new certificate now, attached before anything is retired; a redelivery answers with
    the one this request made."""
    outcome = await rotate(
        deps, app, force=True, origin=request.request_id, requested_by=request.requested_by, dry_run=False
    )
    latest_app = outcome.app or app
    credential = outcome.issued or await certificate_issued_by(deps, latest_app, request.request_id)
    if credential is None:
        _refused_by_policy(outcome)
        raise TransientError("CertificateNotAttached", "the new certificate is not on the application yet")
    return _succeeded(deps, request, latest_app, credential)


def _refused_by_policy(outcome: Outcome) -> None:
    """Raise the tenant policy's refusal of the new credential, if that is why there is none."""
    reasons = sorted({e.reason for e in outcome.events if e.action == "report"})
    policy = next((r for r in reasons if r.startswith("tenant-policy:")), None)
    if policy is not None:
        raise PolicyViolation(
            policy.split(":", 1)[1], "a tenant policy refused the new credential", "credential"
        )


def _succeeded(
    deps: Dependencies,
    request: RotateRequest,
    app: AppRecord,
    credential: ReplyCredential | ReplyCertificate,
) -> RegistrationReply:
    return RegistrationReply(
        request_id=request.request_id,
        requested_by=request.requested_by,
        status="succeeded",
        application=ReplyApplication(
            unique_name=request.application.unique_name,
            display_name=app.display_name or None,
            client_id=app.app_id,
            object_id=app.object_id,
            tenant_id=deps.settings.azure_tenant_id,
            service_management_reference=app.service_management_reference,
        ),
        credential=credential,
    )


async def _issued_earlier(deps: Dependencies, app: AppRecord, request_id: str) -> ReplyCredential | None:
    """A redelivered request whose rotation already happened: the credential it stored."""
    assert app.unique_name is not None
    versions = await deps.vault.versions(stored.secret_name(app.unique_name))
    credential = _issued_by(app, versions, request_id, deps.now())
    return (
        None
        if credential is None or credential.stored is None
        else reply_credential(credential.info, credential.stored)
    )


def _issued_by(
    app: AppRecord, versions: list[StoredVersion], request_id: str, now: dt.datetime
) -> creds.Credential | None:
    return next(
        (
            c
            for c in creds.join(app.passwords, versions)
            if c.origin == request_id and c.stored is not None and c.valid_at(now)
        ),
        None,
    )
