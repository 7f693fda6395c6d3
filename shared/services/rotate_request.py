"""Rotate on request: the registration queue's ``"action": "rotate"``, a new credential now,
however far its expiry, through the same planner as the timer (so it never pushes past
``MAX_CREDENTIALS`` and retires what is due)."""

from __future__ import annotations

import logging

from shared.domain import credentials as creds
from shared.domain import stored
from shared.domain.errors import NotFound, PermanentError, PolicyViolation
from shared.domain.planner import MAX_CREDENTIALS
from shared.domain.records import AppRecord
from shared.messages.replies import RegistrationReply, ReplyApplication, ReplyCredential
from shared.messages.requests import RotateRequest
from shared.services.decommission import not_managed
from shared.services.delivery import Delivery
from shared.services.dependencies import Dependencies
from shared.services.rotation import rotate
from shared.services.secrets import reply_credential

log = logging.getLogger(__name__)


async def rotate_on_request(
    deps: Dependencies, request: RotateRequest, delivery: Delivery
) -> RegistrationReply:
    """The reply to a rotate request. Raises a ``PermanentError`` naming the field for an
    application that does not exist, is not the service's, or has no room for a credential."""
    unique_name = request.application.unique_name
    app = await deps.applications.get_application_by_unique_name(unique_name)
    if app is None:
        raise NotFound(
            "not_found", "No application with this uniqueName exists.", field="application.uniqueName"
        )
    if deps.settings.service_tag not in app.tags:
        raise not_managed()
    outcome = await rotate(deps, app, delivery, force=True, origin=request.request_id, dry_run=False)
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
    current = outcome.app or app
    credential = outcome.issued or await _issued_earlier(deps, current, request.request_id)
    if credential is None:
        reasons = sorted({e.reason for e in outcome.events if e.action == "report"})
        policy = next((r for r in reasons if r.startswith("tenant-policy:")), None)
        if policy is not None:
            raise PolicyViolation(
                policy.split(":", 1)[1], "a tenant policy refused the new secret", "credential"
            )
        raise PermanentError(
            "credential_limit",
            f"The application already holds {MAX_CREDENTIALS} credentials this service may not remove.",
            field="application.uniqueName",
        )
    return RegistrationReply(
        request_id=request.request_id,
        status="succeeded",
        application=ReplyApplication(
            unique_name=unique_name,
            display_name=current.display_name or None,
            client_id=current.app_id,
            object_id=current.object_id,
            tenant_id=deps.settings.azure_tenant_id,
        ),
        credential=credential,
    )


async def _issued_earlier(deps: Dependencies, app: AppRecord, request_id: str) -> ReplyCredential | None:
    """A redelivered request whose rotation already happened: the credential it stored."""
    assert app.unique_name is not None
    versions = await deps.vault.versions(stored.secret_name(app.unique_name))
    now = deps.now()
    for credential in creds.join(app.passwords, versions):
        if credential.origin == request_id and credential.stored is not None and credential.valid_at(now):
            return reply_credential(credential.info, credential.stored)
    return None
