"""The registration workflows: register (create or converge), decommission.

One request's whole flow reads top to bottom here. Every step is idempotent, so a
redelivered message, or two copies of one processed at once, converge on one application,
one service principal, one set of grants and one stored secret:

1. resolve each API's service principal and its scope/role ids by name (reads only: a
   request naming an unknown API or permission is rejected before anything is written);
2. upsert the application by ``uniqueName`` (Graph's upsert, never a blind create);
3. in parallel: (a) upsert its service principal, then converge admin consent;
   (b) the secret: reuse the stored one, or addPassword then store the value in Key Vault
   (removing the credential again if the Key Vault write fails), then settle duplicates.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from shared import credentials as creds
from shared.contracts import (
    ConsentResult,
    DecommissionRequest,
    FieldError,
    RegisterRequest,
    RegistrationReply,
    RemovedResources,
    ReplyApplication,
    ReplyCredential,
    RequestedSecret,
    check_policy,
    is_microsoft_graph,
    requested_secret,
    resolve_api,
)
from shared.contracts import graph_permission_allowed as allowed_on_graph
from shared.durations import parse_duration
from shared.errors import PermanentError, PermissionDenied, PolicyViolation, ReplicationPending
from shared.graph import AppRecord, DesiredApplication, GraphGateway, ResourceAccess, ResourceApi
from shared.keyvault import KeyVaultGateway, StoredVersion, secret_name
from shared.settings import Settings
from shared.tasks import gather_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """Where this attempt stands in Service Bus's at-least-once delivery."""

    message_id: str
    delivery_count: int = 1

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1


@dataclass(frozen=True)
class ResolvedPermission:
    api: str
    resource: ResourceApi
    delegated: tuple[str, ...]
    application: tuple[str, ...]

    @property
    def scope_ids(self) -> tuple[str, ...]:
        return tuple(self.resource.scopes[name] for name in self.delegated)

    @property
    def role_ids(self) -> tuple[str, ...]:
        return tuple(self.resource.roles[name] for name in self.application)


@dataclass
class Workflow:
    settings: Settings
    graph: GraphGateway
    vault: KeyVaultGateway
    service_principal_id: str | None = None  # the service identity's own SP (for rotation listing)
    # The time decisions are made at: the real time, or the emulator's when it runs on one.
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def now(self) -> dt.datetime:
        return self.clock()

    # -- register -------------------------------------------------------------------------

    async def register(self, request: RegisterRequest, delivery: Delivery) -> RegistrationReply:
        problems = check_policy(request, self.settings, self.now())
        if problems:
            return _rejected(request.request_id, problems)
        permissions, problems = await self._resolve(request)
        if problems:
            return _rejected(request.request_id, problems)

        unique_name = request.unique_name
        app, created = await self._upsert_application(request, permissions)
        secret = requested_secret(request, self.settings, self.now())
        consent_task = self._service_principal_and_consent(
            app, permissions, request.grant_admin_consent, created
        )
        if secret is None:
            sp_id, consent = await consent_task
            credential = None
        else:
            (sp_id, consent), credential = await gather_all(
                consent_task, self._ensure_secret(app, created, request, secret, delivery)
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
                tenant_id=self.settings.azure_tenant_id,
            ),
            credential=credential,
            consent=consent,
        )

    async def _resolve(self, request: RegisterRequest) -> tuple[list[ResolvedPermission], list[FieldError]]:
        """Each API's service principal, looked up concurrently; unknown names are errors."""
        references = [resolve_api(p.api, self.settings) or p.api for p in request.api_permissions]
        resources = await gather_all(*(self.graph.find_resource(ref) for ref in references))
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
            graph = is_microsoft_graph(resource.app_id)
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
                    elif graph and not allowed_on_graph(name, self.settings):
                        errors.append(
                            FieldError(
                                field=f"apiPermissions[{i}].{kind}[{j}]",
                                code="permission_not_allowed",
                                message="This Microsoft Graph permission is not on the service's allow-list.",
                            )
                        )
            resolved.append(
                ResolvedPermission(
                    permission.api, resource, tuple(permission.delegated), tuple(permission.application)
                )
            )
        return resolved, errors

    async def _upsert_application(
        self, request: RegisterRequest, permissions: Sequence[ResolvedPermission]
    ) -> tuple[AppRecord, bool]:
        application = request.application
        uris = application.redirect_uris
        secret = requested_secret(request, self.settings, self.now())
        tags = [self.settings.service_tag, f"request:{request.request_id}"]
        if secret is not None:
            tags.append(f"credential-lifetime:{_lifetime(secret)}")
        desired = DesiredApplication(
            display_name=application.display_name,
            tags=tuple(tags),
            notes=application.notes,
            web_redirect_uris=tuple(uris.web),
            public_client_redirect_uris=tuple(uris.public_client),
            spa_redirect_uris=tuple(uris.spa),
            is_fallback_public_client=application.client_type == "public",
            required_resource_access=_required_access(permissions),
        )
        try:
            return await self.graph.upsert_application(request.unique_name, desired)
        except PermissionDenied:
            raise PermissionDenied(
                "not_managed",
                "An application with this uniqueName exists and is not owned by this service, "
                "or the service lacks Application.ReadWrite.OwnedBy.",
                field="application.uniqueName",
            ) from None

    async def _service_principal_and_consent(
        self, app: AppRecord, permissions: Sequence[ResolvedPermission], consent: bool, created: bool
    ) -> tuple[str, list[ConsentResult]]:
        sp_id = await self.graph.upsert_service_principal(app.app_id)
        if not consent:
            return sp_id, []
        await gather_all(
            self._converge_delegated(sp_id, permissions, fresh=created),
            self._converge_application(sp_id, permissions, fresh=created),
        )
        return sp_id, [
            ConsentResult(api=p.api, delegated=list(p.delegated), application=list(p.application))
            for p in permissions
        ]

    async def _converge_delegated(
        self, sp_id: str, permissions: Sequence[ResolvedPermission], *, fresh: bool
    ) -> None:
        """One AllPrincipals grant per resource whose scope is exactly what the request asks."""
        existing = {} if fresh else {g.resource_id: g for g in await self.graph.grants_of(sp_id)}
        wanted = {p.resource.service_principal_id: p.delegated for p in permissions if p.delegated}
        steps = []
        for resource_id, scopes in wanted.items():
            grant = existing.get(resource_id)
            if grant is None:
                steps.append(self._create_grant(sp_id, resource_id, scopes))
            elif set(grant.scope.split()) != set(scopes):
                steps.append(self.graph.update_grant(grant.id, scopes))
        steps += [self.graph.delete_grant(g.id) for rid, g in existing.items() if rid not in wanted]
        await gather_all(*steps)

    async def _create_grant(self, sp_id: str, resource_id: str, scopes: Sequence[str]) -> None:
        try:
            await self.graph.create_grant(sp_id, resource_id, scopes)
        except PermanentError as error:
            # 409: a concurrent copy of this request created it first; converge that one.
            if error.code != "Request_MultipleObjectsWithSameKeyValue":
                raise
            grant = next((g for g in await self.graph.grants_of(sp_id) if g.resource_id == resource_id), None)
            if grant is None:
                raise ReplicationPending(error.code, "the existing grant is not readable yet") from None
            if set(grant.scope.split()) != set(scopes):
                await self.graph.update_grant(grant.id, scopes)

    async def _converge_application(
        self, sp_id: str, permissions: Sequence[ResolvedPermission], *, fresh: bool
    ) -> None:
        existing = [] if fresh else await self.graph.role_assignments_of(sp_id)
        wanted = {(p.resource.service_principal_id, role_id) for p in permissions for role_id in p.role_ids}
        have = {(a.resource_id, a.app_role_id): a for a in existing}
        steps = [self.graph.assign_role(sp_id, rid, role) for rid, role in wanted - have.keys()]
        steps += [
            self.graph.delete_role_assignment(sp_id, a.id) for key, a in have.items() if key not in wanted
        ]
        await gather_all(*steps)

    # -- the secret -----------------------------------------------------------------------

    async def _ensure_secret(
        self,
        app: AppRecord,
        created: bool,
        request: RegisterRequest,
        secret: RequestedSecret,
        delivery: Delivery,
    ) -> ReplyCredential:
        name = secret_name(request.unique_name)
        if not created:
            versions, latest = await gather_all(self.vault.versions(name), self.vault.latest(name))
            plan = creds.plan_registration_secret(
                app.passwords,
                versions,
                latest,
                request_id=request.request_id,
                redelivered=delivery.redelivered,
                now=self.now(),
                safety_age=self.settings.rotation_safety_age.total_lower_bound(),
            )
            await gather_all(*(self.graph.remove_password(app.object_id, k) for k in plan.remove))
            if plan.reuse is not None and plan.reuse.stored is not None:
                return _reply_credential(plan.reuse.info, plan.reuse.stored)
        return await self.issue_secret(
            app,
            unique_name=request.unique_name,
            origin=request.request_id,
            description=secret.description,
            start=secret.start,
            end=secret.end,
            lifetime=_lifetime(secret),
        )

    async def issue_secret(
        self,
        app: AppRecord,
        *,
        unique_name: str,
        origin: str,
        description: str,
        start: dt.datetime,
        end: dt.datetime,
        lifetime: str,
    ) -> ReplyCredential:
        """addPassword, then store the value as a new version of the app's Key Vault secret.
        If the Key Vault write fails the credential is removed before the error propagates,
        so no credential outlives its only copy of the value."""
        name = secret_name(unique_name)
        try:
            new = await self.graph.add_password(
                app.object_id, creds.credential_name(description, origin), start, end
            )
        except PolicyViolation as error:
            raise PolicyViolation(error.code, error.message, field="credential") from None
        tags = {
            "keyId": new.info.key_id,
            "appId": app.app_id,
            "uniqueName": unique_name,
            "origin": origin,
            "lifetime": lifetime,
            "managedBy": self.settings.service_tag.split(":", 1)[-1],
        }
        try:
            stored = await self.vault.store(name, new.secret, tags=tags, not_before=start, expires_on=end)
        except Exception:
            # A lost response can hide a write that happened: removing the credential then would
            # leave the newest version (what the unversioned id resolves to) opening nothing.
            found = await self._stored_version(name, new.info.key_id)
            if found is None:
                await self.graph.remove_password(app.object_id, new.info.key_id)
                raise
            stored = found
        except BaseException:
            await self.graph.remove_password(app.object_id, new.info.key_id)
            raise
        # Settle duplicates from a concurrent copy of this request (see credentials.settle_duplicates).
        current, versions, latest = await gather_all(
            self.graph.get_application(app.object_id), self.vault.versions(name), self.vault.latest(name)
        )
        settle = creds.settle_duplicates(
            current.passwords,
            versions,
            latest,
            mine=new.info.key_id,
            request_id=origin,
            now=self.now(),
            safety_age=self.settings.rotation_safety_age.total_lower_bound(),
        )
        await gather_all(
            *(self.graph.remove_password(app.object_id, k) for k in settle.remove),
            *(self.vault.disable(name, v.version) for v in settle.disable),
        )
        if settle.keep == new.info.key_id:
            return _reply_credential(new.info, stored)
        # Another copy's credential won, so it is the one the unversioned secret resolves to:
        # ``latest`` itself. The listing, read concurrently, may predate that copy's store.
        assert latest is not None and latest.key_id == settle.keep  # by settle_duplicates
        kept = next(p for p in current.passwords if p.key_id == settle.keep)
        return _reply_credential(kept, latest)

    async def _stored_version(self, name: str, key_id: str) -> StoredVersion | None:
        """The enabled version holding ``key_id``'s value, if the vault has one."""
        versions = await self.vault.versions(name)
        return next((v for v in versions if v.enabled and v.key_id == key_id), None)

    # -- decommission ---------------------------------------------------------------------

    async def decommission(self, request: DecommissionRequest, delivery: Delivery) -> RegistrationReply:
        unique_name = request.application.unique_name
        app = await self.graph.get_application_by_unique_name(unique_name)
        if app is not None and self.settings.service_tag not in app.tags:
            return _rejected(
                request.request_id,
                [
                    FieldError(
                        field="application.uniqueName",
                        code="not_managed",
                        message="This application was not registered by this service; it is left untouched.",
                    )
                ],
            )
        name = secret_name(unique_name)
        versions = await self.vault.versions(name)
        request_id = request.request_id
        if app is None:
            # Gone: deleted by an earlier delivery of this request if that one left its record
            # on the stored versions (below), else there was nothing to remove.
            record = next((v.tags for v in versions if v.tags.get("decommissionedBy") == request_id), None)
            removed = record is not None
            application = None
            if record is not None:
                application = ReplyApplication(
                    unique_name=unique_name,
                    display_name=record.get("displayName"),
                    client_id=record.get("appId", ""),
                    object_id=record.get("objectId", ""),
                    tenant_id=self.settings.azure_tenant_id,
                )
            await gather_all(*(self.vault.disable(name, v.version) for v in versions if v.enabled))
            return _decommissioned(request_id, application, removed, removed, len(versions))
        # Disable the stored values first, recording this request on them, so that a redelivery
        # after the deletion still knows what this request removed.
        await gather_all(
            *(
                self.vault.disable(name, v.version, _decommission_record(v.tags, request_id, app))
                for v in versions
                if v.enabled or v.tags.get("decommissionedBy") != request_id
            )
        )
        sp_removed = await self.graph.delete_service_principal_of(app.app_id)
        app_removed = await self.graph.delete_application(app.object_id)
        application = ReplyApplication(
            unique_name=unique_name,
            display_name=app.display_name,
            client_id=app.app_id,
            object_id=app.object_id,
            tenant_id=self.settings.azure_tenant_id,
        )
        return _decommissioned(request_id, application, app_removed, sp_removed, len(versions))


def _decommission_record(tags: Mapping[str, str], request_id: str, app: AppRecord) -> dict[str, str]:
    """A stored version's tags plus what a redelivered decommission needs to answer alike."""
    return {
        **tags,
        "decommissionedBy": request_id,
        "objectId": app.object_id,
        "displayName": app.display_name,
    }


def _decommissioned(
    request_id: str, application: ReplyApplication | None, app_removed: bool, sp_removed: bool, versions: int
) -> RegistrationReply:
    return RegistrationReply(
        request_id=request_id,
        status="succeeded",
        application=application,
        removed=RemovedResources(
            application=app_removed, service_principal=sp_removed, key_vault_secret_versions_disabled=versions
        ),
    )


def _rejected(request_id: str, errors: list[FieldError]) -> RegistrationReply:
    return RegistrationReply(request_id=request_id, status="rejected", errors=errors)


def rejection_for(request_id: str | None, error: PermanentError) -> RegistrationReply:
    """A permanent platform error as a rejected reply naming the field it concerns."""
    return RegistrationReply(
        request_id=request_id,
        status="rejected",
        errors=[FieldError(field=error.field or "request", code=error.code, message=error.message)],
    )


def _lifetime(secret: RequestedSecret) -> str:
    """The secret's lifetime as an ISO duration, recorded so that rotation issues the same."""
    for months in (3, 6, 12, 24):  # the portal's choices, in calendar months
        if parse_duration(f"P{months}M").add_to(secret.start) == secret.end:
            return f"P{months}M"
    return f"P{max((secret.end - secret.start).days, 1)}D"


def _required_access(permissions: Sequence[ResolvedPermission]) -> tuple[ResourceAccess, ...]:
    return tuple(
        ResourceAccess(resource_app_id=p.resource.app_id, scope_ids=p.scope_ids, role_ids=p.role_ids)
        for p in permissions
    )


def _reply_credential(info: creds.PasswordInfo, stored: StoredVersion) -> ReplyCredential:
    return ReplyCredential(
        key_id=info.key_id,
        hint=info.hint,
        start_date_time=info.start,
        end_date_time=info.end,
        key_vault_secret_id=stored.id,
    )


__all__ = ["Delivery", "Workflow", "rejection_for"]
