"""Register: create an application, or converge an existing one (same ``uniqueName``) to the request.

One request's whole flow reads top to bottom here. Every step is idempotent, so a
redelivered message, or two copies of one processed at once, converge on one application,
one service principal, one set of grants and one stored secret:

1. the policy, then each API's service principal and its scope/role ids by name (reads only:
   a request naming an unknown API or permission is rejected before anything is written);
2. upsert the application by ``uniqueName`` (Graph's upsert, never a blind create);
3. in parallel: (a) upsert its service principal, then converge admin consent
   (shared.services.consent); (b) the secret: reuse the stored one, or issue and store a new
   one (shared.services.secrets).
"""

from __future__ import annotations

import logging

from shared.domain import stored
from shared.domain.errors import PermissionDenied
from shared.domain.policy import (
    check_policy,
    permission_allowed,
    permission_not_allowed,
    requested_secret,
    resolve_api,
)
from shared.domain.records import AppRecord, DesiredApplication
from shared.messages.base import FieldError, RequestRejected
from shared.messages.replies import RegistrationReply, ReplyApplication
from shared.messages.requests import RegisterRequest
from shared.services.consent import ResolvedPermission, required_access, service_principal_and_consent
from shared.services.delivery import Delivery
from shared.services.dependencies import Dependencies
from shared.services.secrets import ensure_secret
from shared.services.tasks import gather_all

log = logging.getLogger(__name__)


async def register(deps: Dependencies, request: RegisterRequest, delivery: Delivery) -> RegistrationReply:
    """The reply to a register request. Raises ``RequestRejected`` or a ``PermanentError`` for
    a request that cannot succeed, a ``TransientError`` for one that may later."""
    settings = deps.settings
    problems = check_policy(request, settings.request_policy, deps.now())
    if problems:
        raise RequestRejected(problems, request.request_id)
    permissions = await _resolve(deps, request)

    unique_name = request.unique_name
    secret = requested_secret(request, settings.request_policy, deps.now())
    app, created = await _upsert_application(
        deps,
        request,
        permissions,
        lifetime=None if secret is None else stored.lifetime_label(secret.start, secret.end),
    )
    consent_task = service_principal_and_consent(deps, app, permissions, request.grant_admin_consent, created)
    if secret is None:
        sp_id, consent = await consent_task
        credential = None
    else:
        (sp_id, consent), credential = await gather_all(
            consent_task,
            ensure_secret(
                deps,
                app,
                created,
                unique_name=unique_name,
                request_id=request.request_id,
                secret=secret,
                delivery=delivery,
            ),
        )
    log.info(
        "registration.succeeded",
        extra={"requestId": request.request_id, "uniqueName": unique_name, "appId": app.app_id},
    )
    return RegistrationReply(
        request_id=request.request_id,
        status="succeeded",
        application=ReplyApplication(
            unique_name=unique_name,
            display_name=request.application.display_name,
            client_id=app.app_id,
            object_id=app.object_id,
            service_principal_id=sp_id,
            tenant_id=settings.azure_tenant_id,
        ),
        credential=credential,
        consent=consent,
    )


async def _resolve(deps: Dependencies, request: RegisterRequest) -> list[ResolvedPermission]:
    """Each API's service principal, looked up concurrently; raises ``RequestRejected`` naming
    each API or permission the tenant does not have, or the policy does not allow."""
    policy = deps.settings.request_policy
    references = [resolve_api(p.api, policy) or p.api for p in request.api_permissions]
    resources = await gather_all(*(deps.consent.find_resource(ref) for ref in references))
    resolved: list[ResolvedPermission] = []
    errors: list[FieldError] = []
    for i, (permission, resource) in enumerate(zip(request.api_permissions, resources, strict=True)):
        if resource is None:
            errors.append(
                FieldError(
                    field=f"apiPermissions[{i}].api",
                    code="api_not_found",
                    message="No service principal for this API exists in the tenant.",
                )
            )
            continue
        for kind, names, known in (
            ("delegated", permission.delegated, resource.scopes),
            ("application", permission.application, resource.roles),
        ):
            for j, name in enumerate(names):
                if name not in known:
                    errors.append(
                        FieldError(
                            field=f"apiPermissions[{i}].{kind}[{j}]",
                            code="permission_not_found",
                            message=f"The API has no {'scope' if kind == 'delegated' else 'app role'} "
                            "of this name.",
                        )
                    )
                elif not permission_allowed(resource.app_id, name, policy):
                    errors.append(permission_not_allowed(i, kind, j))
        resolved.append(
            ResolvedPermission(
                permission.api, resource, tuple(permission.delegated), tuple(permission.application)
            )
        )
    if errors:
        raise RequestRejected(errors, request.request_id)
    return resolved


async def _upsert_application(
    deps: Dependencies,
    request: RegisterRequest,
    permissions: list[ResolvedPermission],
    *,
    lifetime: str | None,
) -> tuple[AppRecord, bool]:
    application = request.application
    uris = application.redirect_uris
    desired = DesiredApplication(
        display_name=application.display_name,
        tags=stored.application_tags(deps.settings.service_tag, request.request_id, lifetime),
        notes=application.notes,
        web_redirect_uris=tuple(uris.web),
        public_client_redirect_uris=tuple(uris.public_client),
        spa_redirect_uris=tuple(uris.spa),
        is_fallback_public_client=application.client_type == "public",
        required_resource_access=required_access(permissions),
    )
    try:
        return await deps.applications.upsert_application(request.unique_name, desired)
    except PermissionDenied:
        raise PermissionDenied(
            "not_managed",
            "An application with this uniqueName exists and is not owned by this service, "
            "or the service lacks Application.ReadWrite.OwnedBy.",
            field="application.uniqueName",
        ) from None
