"""Register: create an application, or converge an existing one (same ``uniqueName``) to the request.

One request's whole flow reads top to bottom here. Every step is idempotent, so a
redelivered message, or two copies of one processed at once, converge on one application,
one service principal, one set of grants and one stored secret:

1. the policy (``check``, no I/O), then, while the application's lease is taken
   (``prepare``, reads only), each API's service principal and its scope/role ids by name (a
   request naming an unknown API or permission is rejected before anything is written) and the
   application of its uniqueName;
2. under the lease: an existing application is read again, its ownership and its federated
   credentials checked (shared.services.federated: a conflict with one made by hand, or more
   than 20, is rejected before anything is written), and updated; a new one is created only if
   its uniqueName is still free (``_write_application``);
3. in parallel: (a) upsert its service principal, then converge admin consent
   (shared.services.consent); (b) the secret: reuse the stored one, or issue and store a new
   one (shared.services.secrets); (c) the federated credentials, converged by name
   (shared.services.federated).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

from shared.domain import stored
from shared.domain.data_access import data_access_problems
from shared.domain.errors import PermanentError, PermissionDenied, ReplicationPending, TransientError
from shared.domain.federated import FederatedPlan, federated_problems
from shared.domain.policy import (
    RequestedCertificate,
    RequestedSecret,
    RequestPolicy,
    check_policy,
    requested_certificate,
    requested_secret,
    resolve_api,
    resolved_problems,
)
from shared.domain.records import AppRecord, DesiredApplication, ResourceApi
from shared.messages.base import FieldError, RequestRejected
from shared.messages.replies import (
    ConsentResult,
    DataAccessResult,
    FederatedCredentialResult,
    RegistrationReply,
    ReplyApplication,
    ReplyCertificate,
    ReplyCredential,
)
from shared.messages.requests import ApiPermission, RegisterRequest
from shared.services.certificates import disable_versions, ensure_certificate
from shared.services.consent import ResolvedPermission, converge_consent, required_access
from shared.services.data_access import converge_data_access, data_roles_of, remove_data_access
from shared.services.delivery import problem_of
from shared.services.dependencies import Dependencies
from shared.services.federated import converge_federated, plan_federated_credentials
from shared.services.ownership import ensure_owned, not_managed
from shared.services.secrets import ensure_secret
from shared.services.tasks import gather_all

log = logging.getLogger(__name__)


def _new_delivery() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Prepared:
    """What a registration learns before its lease is held: each API's permission ids, and
    the application of its uniqueName as it was then (``prepare``); or the application it
    created then (``create_early``)."""

    permissions: list[ResolvedPermission]
    existing: AppRecord | None
    early: AppRecord | None = None  # created by this delivery before its lease was held
    taken: bool = False  # the early create found the uniqueName taken
    # This delivery, as its writes tag the application (shared.domain.stored.DELIVERY_TAG).
    delivery: str = field(default_factory=_new_delivery)


def check(deps: Dependencies, request: RegisterRequest) -> None:
    """The request against the policies, before any I/O. Raises ``RequestRejected``."""
    settings = deps.settings
    problems = check_policy(request, settings.request_policy, deps.now())
    problems += data_access_problems(request, settings.data_access_policy)
    problems += federated_problems(request, settings.federated_issuers)
    if problems:
        raise RequestRejected(problems, request.request_id)


async def prepare(deps: Dependencies, request: RegisterRequest) -> Prepared:
    """The reads that need no lease, side by side (shared.services.requests runs them while
    the lease is taken). Raises ``RequestRejected`` naming an unknown API or permission."""
    permissions, existing = await gather_all(
        _resolve(deps, request), _read_application(deps, request.unique_name)
    )
    return Prepared(permissions, existing)


def create_early(deps: Dependencies, request: RegisterRequest) -> Awaitable[Prepared] | None:
    """The application created at once, beside the lease's acquire rather than after it, when
    nothing read could reject the request: every API and permission it names is kept by this
    process (shared.adapters.graph.consent) and allowed, this process has not seen its
    uniqueName taken, and its credential is a secret or none (a certificate takes longer than
    the lease anyway). None: read first (``prepare``).

    The create needs no lease: ``POST /applications`` with a uniqueName changes nothing when
    the name is taken (``taken``), so it can touch no application but the one it makes. What
    the lease protects is what follows: ``register`` trusts the creation only once it holds
    the lease and has confirmed that no other delivery wrote the application in between."""
    if requested_certificate(request) is not None or deps.applications.known_to_exist(request.unique_name):
        return None
    permissions = _kept_permissions(deps, request)
    if permissions is None:
        return None
    prepared = Prepared(permissions, None)
    secret = requested_secret(request, deps.settings.request_policy, deps.now())
    desired = _desired_of(deps, request, permissions, prepared.delivery, secret=secret, certificate=None)

    async def create() -> Prepared:
        app = await deps.applications.create_application(request.unique_name, desired)
        return dataclasses.replace(prepared, early=app, taken=app is None)

    return create()


async def register(
    deps: Dependencies, request: RegisterRequest, prepared: Prepared | None = None, *, waited: bool = False
) -> RegistrationReply:
    """The reply to a register request, under the application's lease. ``prepared``: what
    ``prepare`` read (or ``create_early`` made), perhaps before the lease was taken (else it is
    read now); ``waited``: the lease was held by another delivery when first asked for. Raises
    ``RequestRejected`` or a ``PermanentError`` for a request that cannot succeed, a
    ``TransientError`` for one that may later."""
    settings = deps.settings
    if prepared is None:
        check(deps, request)
        prepared = await prepare(deps, request)
    permissions = prepared.permissions
    unique_name = request.unique_name
    secret = requested_secret(request, settings.request_policy, deps.now())
    certificate = requested_certificate(request)
    desired = _desired_of(
        deps, request, permissions, prepared.delivery, secret=secret, certificate=certificate
    )
    written = await _write_application(deps, request, prepared, desired, waited)
    app, created, existing, federated = written.app, written.created, written.existing, written.federated
    steps: list[Awaitable[Any]] = [
        _service_principal_and_access(deps, request, app, permissions, created, written.service_principal_id)
    ]
    if secret is not None:
        steps.append(
            ensure_secret(
                deps,
                app,
                created,
                unique_name=unique_name,
                request_id=request.request_id,
                requested_by=request.requested_by,
                owner=request.application.service_management_reference,
                secret=secret,
            )
        )
    if certificate is not None:
        steps.append(
            ensure_certificate(
                deps,
                app,
                unique_name=unique_name,
                origin=request.request_id,
                requested_by=request.requested_by,
                owner=request.application.service_management_reference,
                certificate=certificate,
            )
        )
    # Beside them, the federated credentials (shared.services.federated), and the check of an
    # early creation (``_confirm``).
    federated_step = converge_federated(deps, request, app, created, federated, existing)
    confirm_step = (
        deps.applications.get_application(app.object_id) if written.unconfirmed else asyncio.sleep(0)
    )
    # Every step runs to its end (as gather_all), so that what is left behind is known.
    *results, federated_result, confirmation = await asyncio.gather(
        *steps, federated_step, confirm_step, return_exceptions=True
    )
    if written.unconfirmed:
        _confirm(confirmation, prepared.delivery, request.request_id)
    failures = [r for r in (*results, federated_result) if isinstance(r, BaseException)]
    if failures:
        await _after_failure(deps, request, app, created, results, failures, federated_result)
    sp_id, consent, data_access = cast(tuple[str, list[ConsentResult], list[DataAccessResult]], results[0])
    credential = cast(ReplyCredential | ReplyCertificate, results[1]) if len(results) > 1 else None
    log.info(
        "registration.succeeded",
        extra={
            "requestId": request.request_id,
            "requestedBy": request.requested_by,
            "uniqueName": unique_name,
            "appId": app.app_id,
        },
    )
    return RegistrationReply(
        request_id=request.request_id,
        requested_by=request.requested_by,
        status="succeeded",
        application=ReplyApplication(
            unique_name=unique_name,
            display_name=request.application.display_name,
            client_id=app.app_id,
            object_id=app.object_id,
            service_principal_id=sp_id,
            tenant_id=settings.azure_tenant_id,
            service_management_reference=request.application.service_management_reference,
        ),
        credential=credential,
        consent=consent,
        data_access=data_access,
        federated_credentials=cast(list[FederatedCredentialResult], federated_result),
    )


def _confirm(read: object, delivery: str, request_id: str) -> None:
    """An application this delivery created before its lease was held is its own only if no
    other delivery wrote it before the lease was: read under the lease, its tags still name
    this delivery (every registration writes them before it adds a credential) and it holds no
    credential but this request's (a rotation adds one without touching the tags, and names it
    after itself). Otherwise nothing is undone and nothing is replied: the delivery is retried,
    and converges it as an existing one.

    Raises ``TransientError`` (``ConcurrentDelivery``)."""
    if (
        isinstance(read, AppRecord)
        and stored.delivery_tag(read.tags) == delivery
        and all(stored.origin_of(p.display_name) == request_id for p in read.passwords)
        and not read.keys
    ):
        return
    if isinstance(read, TransientError):
        raise read
    log.warning("registration.concurrent_delivery", extra={"objectId": getattr(read, "object_id", None)})
    raise TransientError(
        "ConcurrentDelivery",
        "another delivery wrote the application this one created before its lease was held; "
        "this one is retried, and converges it",
    )


async def _service_principal_and_access(
    deps: Dependencies,
    request: RegisterRequest,
    app: AppRecord,
    permissions: list[ResolvedPermission],
    created: bool,
    sp_id: str | None,
) -> tuple[str, list[ConsentResult], list[DataAccessResult]]:
    """Upsert the app's service principal (unless ``sp_id`` says it was), then converge its
    consent and its data roles side by side (shared.services.consent, shared.services.data_access)."""
    if sp_id is None:
        sp_id = await deps.applications.upsert_service_principal(app.app_id)
    consent, data_access = await gather_all(
        converge_consent(deps, sp_id, permissions, request.grant_admin_consent, created),
        converge_data_access(deps, request, sp_id, created),
    )
    return sp_id, consent, data_access


async def _after_failure(
    deps: Dependencies,
    request: RegisterRequest,
    app: AppRecord,
    created: bool,
    results: list[Any],
    failures: list[BaseException],
    federated_result: object,
) -> NoReturn:
    """A step failed after the application was written. A transient failure is raised for
    redelivery, which converges. A permanent one (a tenant policy refusing the secret, a
    permission the service lacks) would fail again: an application this delivery created is
    removed again, with its service principal, consent and any stored value; an existing one
    is left converged, and the rejection says exactly what changed."""
    permanent = next((f for f in failures if isinstance(f, PermanentError)), None)
    if permanent is None:
        raise failures[0]
    problem = problem_of(permanent)
    if created:
        await _remove_created(deps, app, request.unique_name)
        problem = problem.model_copy(
            update={
                "message": f"{problem.message} Nothing was left behind: the application this request "
                "created was deleted again."
            }
        )
        raise RequestRejected([problem], request.request_id)
    changed = [
        "its properties (display name, notes, redirect URIs, required permissions, tags, owner reference)"
    ]
    if not isinstance(results[0], BaseException):
        changed.append("its service principal, consent and data roles")
    if len(results) > 1 and not isinstance(results[1], BaseException):
        changed.append("its credential (the one the reply of a successful request would name)")
    if not isinstance(federated_result, BaseException):
        changed.append("its federated credentials")
    raise RequestRejected(
        [
            problem,
            FieldError(
                field="application",
                code="changed_before_failure",
                message="Before the failure, the existing application was converged to this request: "
                + "; ".join(changed)
                + ".",
            ),
        ],
        request.request_id,
    )


async def _remove_created(deps: Dependencies, app: AppRecord, unique_name: str) -> None:
    """Undo a creation: disable the values and certificates stored for this application and
    remove its data roles, then delete its service principal (with its consent) and the
    application (with its credentials)."""
    name = stored.secret_name(unique_name)
    versions, assignments = await gather_all(deps.vault.versions(name), data_roles_of(deps, app))
    await gather_all(
        disable_versions(deps, unique_name, app.app_id),
        *(
            deps.vault.disable(name, v.version)
            for v in versions
            if v.enabled and v.tags.get(stored.APP_ID) == app.app_id
        ),
        remove_data_access(deps, assignments),
    )
    await deps.applications.delete_service_principal_of(app.app_id)
    await deps.applications.delete_application(app.object_id)


async def _resolve(deps: Dependencies, request: RegisterRequest) -> list[ResolvedPermission]:
    """Each API's service principal, looked up concurrently (reads only). Raises
    ``RequestRejected`` naming each API or permission the tenant does not have, or the
    policy does not allow, before anything is written."""
    policy = deps.settings.request_policy
    references = [resolve_api(p.api, policy) or p.api for p in request.api_permissions]
    found = await gather_all(*(deps.consent.find_resource(ref) for ref in references))
    # The process keeps resource APIs a while (shared.adapters.graph.consent): before naming
    # an API or a permission as missing, read that API again.
    stale = [i for i, (p, r) in enumerate(zip(request.api_permissions, found, strict=True)) if _lacks(p, r)]
    if stale:
        again = await gather_all(*(deps.consent.find_resource(references[i], fresh=True) for i in stale))
        for i, resource in zip(stale, again, strict=True):
            found[i] = resource
    return _resolved(request, found, policy)


def _kept_permissions(deps: Dependencies, request: RegisterRequest) -> list[ResolvedPermission] | None:
    """The request's permissions from the resource APIs this process keeps, without a request;
    None unless every API and permission is kept, and allowed."""
    policy = deps.settings.request_policy
    found = [deps.consent.kept_resource(resolve_api(p.api, policy) or p.api) for p in request.api_permissions]
    if any(_lacks(p, r) for p, r in zip(request.api_permissions, found, strict=True)):
        return None
    try:
        return _resolved(request, found, policy)
    except RequestRejected:
        return None


def _resolved(
    request: RegisterRequest, found: list[ResourceApi | None], policy: RequestPolicy
) -> list[ResolvedPermission]:
    """Each permission with its API's ids. Raises ``RequestRejected`` naming each API or
    permission the tenant does not have, or the policy does not allow."""
    errors: list[FieldError] = []
    for i, (permission, resource) in enumerate(zip(request.api_permissions, found, strict=True)):
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
            errors.extend(
                FieldError(
                    field=f"apiPermissions[{i}].{kind}[{j}]",
                    code="permission_not_found",
                    message=f"The API has no {'scope' if kind == 'delegated' else 'app role'} of this name.",
                )
                for j, name in enumerate(names)
                if name not in known
            )
    if errors:
        raise RequestRejected(errors, request.request_id)
    resources = [r for r in found if r is not None]
    problems = resolved_problems(request.api_permissions, resources, policy)
    if problems:
        raise RequestRejected(problems, request.request_id)
    return [
        ResolvedPermission(p.api, r, tuple(p.delegated), tuple(p.application))
        for p, r in zip(request.api_permissions, resources, strict=True)
    ]


def _lacks(permission: ApiPermission, resource: ResourceApi | None) -> bool:
    """Whether ``resource`` lacks the API or any permission ``permission`` names."""
    return (
        resource is None
        or any(name not in resource.scopes for name in permission.delegated)
        or any(name not in resource.roles for name in permission.application)
    )


def _desired_of(
    deps: Dependencies,
    request: RegisterRequest,
    permissions: list[ResolvedPermission],
    delivery: str,
    *,
    secret: RequestedSecret | None,
    certificate: RequestedCertificate | None,
) -> DesiredApplication:
    """The application's properties as ``request`` asks for them (its ``secret`` or
    ``certificate``, as ``requested_secret`` and ``requested_certificate`` give them), written
    by ``delivery``."""
    lifetime = None if secret is None else stored.lifetime_label(secret.start, secret.end)
    application = request.application
    uris = application.redirect_uris
    return DesiredApplication(
        display_name=application.display_name,
        tags=stored.application_tags(
            deps.settings.service_tag,
            request.request_id,
            request.requested_by,
            lifetime if certificate is None else certificate.lifetime,
            "secret" if certificate is None else stored.CERTIFICATE,
            delivery,
        ),
        notes=application.notes,
        web_redirect_uris=tuple(uris.web),
        public_client_redirect_uris=tuple(uris.public_client),
        spa_redirect_uris=tuple(uris.spa),
        is_fallback_public_client=application.client_type == "public",
        required_resource_access=required_access(permissions),
        service_management_reference=application.service_management_reference,
    )


@dataclass(frozen=True)
class _Written:
    """The application as ``_write_application`` left it."""

    app: AppRecord
    created: bool
    existing: AppRecord | None  # as read under the lease; None: this request created it
    federated: FederatedPlan  # for ``existing``
    service_principal_id: str | None = None  # upserted beside an existing application's update
    unconfirmed: bool = False  # created before the lease was held: ``register`` confirms it


async def _write_application(
    deps: Dependencies,
    request: RegisterRequest,
    prepared: Prepared,
    desired: DesiredApplication,
    waited: bool,
) -> _Written:
    """Create the application, or converge the existing one.

    What ``prepare`` read may predate the lease. An application it found is read again now,
    when no other delivery can change it, and its ownership checked. One it did not find is
    created only if its uniqueName is still free (never an upsert, which would converge an
    application made meanwhile without the ownership check); if it is taken, it is read and
    checked like any existing one. An existing application's service principal is upserted
    beside its update (it needs the application to exist, which it does).

    An application ``create_early`` made is this delivery's if the lease was free at once
    (``register`` confirms that nobody wrote it in between); if another delivery held the
    lease meanwhile, it is read and checked like any existing one."""
    if prepared.early is not None and not waited:
        federated = await plan_federated_credentials(deps, request, None)
        return _Written(prepared.early, True, None, federated, unconfirmed=True)
    existing = prepared.existing
    if existing is not None:
        existing, federated = await _ensure_may_converge(deps, request, seen=existing)
    elif prepared.early is not None or prepared.taken:
        existing, federated = await _ensure_may_converge(deps, request, dependent=True)
    if existing is None:
        federated = await plan_federated_credentials(deps, request, None)
        app = await deps.applications.create_application(request.unique_name, desired)
        if app is not None:
            return _Written(app, True, None, federated)
        existing, federated = await _ensure_may_converge(deps, request, dependent=True)
        if existing is None:
            raise ReplicationPending(
                "Request_ResourceNotFound", f"application {request.unique_name} is taken but not readable yet"
            )
    updated, sp_id = await asyncio.gather(
        deps.applications.update_application(existing, desired),
        deps.applications.upsert_service_principal(existing.app_id),
        return_exceptions=True,
    )
    if isinstance(updated, PermissionDenied):
        raise not_managed()
    if isinstance(updated, BaseException):
        raise updated
    # A service principal that failed here is upserted again, and its failure reported, with
    # the consent it is for (``_service_principal_and_access``).
    return _Written(updated, False, existing, federated, None if isinstance(sp_id, BaseException) else sp_id)


async def _read_application(
    deps: Dependencies, unique_name: str, dependent: bool = False
) -> AppRecord | None:
    try:
        return await deps.applications.get_application_by_unique_name(unique_name, dependent=dependent)
    except PermissionDenied:
        raise not_managed() from None


async def _ensure_may_converge(
    deps: Dependencies, request: RegisterRequest, dependent: bool = False, seen: AppRecord | None = None
) -> tuple[AppRecord | None, FederatedPlan]:
    """Under the lease, before the first write: an existing application of this uniqueName
    must be the service's and belong to the request's serviceManagementReference
    (shared.services.ownership), and its federated credentials must leave room for the
    request's (shared.services.federated). Returns the application (None: there is none) and
    the plan for its federated credentials. ``seen``: the application read before the lease,
    whose federated credentials are read beside it (they are the same application's if its
    object id is unchanged; otherwise they are read again)."""
    if seen is None:
        existing, current = await _read_application(deps, request.unique_name, dependent), None
    else:
        read, listed = await asyncio.gather(
            _read_application(deps, request.unique_name, dependent),
            deps.applications.federated_credentials(seen.object_id),  # a 404: deleted meanwhile
            return_exceptions=True,
        )
        if isinstance(read, BaseException):
            raise read
        existing = read
        same = existing is not None and existing.object_id == seen.object_id
        current = listed if same and not isinstance(listed, BaseException) else None
    if existing is not None:
        ensure_owned(existing, deps.settings.service_tag, request.application.service_management_reference)
    return existing, await plan_federated_credentials(deps, request, existing, current)
