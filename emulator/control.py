"""The control plane for tests, under ``/_emulator/``: admin identity only.

reset, snapshot, the clock, bulk seeding, the request log, fault rules, the tenant's
app-management policy, the secret values issued (for the leak detector), the blob leases, every
Azure role assignment (live and deleted), the data planes' RBAC propagation delay, the
Service Bus queues (counts, settings, every message, expiring every lock at once), and workload
tokens from the test OIDC issuer.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emulator.clock import add_iso_duration, iso, parse_iso
from emulator.errors import PlatformError
from emulator.identity import GRAPH_AUDIENCES
from emulator.model import APPLICATION_DEFAULTS, SERVICE_PRINCIPAL_DEFAULTS, complete
from emulator.oidc import DEFAULT_LIFETIME_SECONDS, TOKEN_EXCHANGE_AUDIENCE
from emulator.seed import clone_application

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from emulator.platform import Platform


def _bad(message: str) -> PlatformError:
    return PlatformError(400, "BadRequest", message, service="control")


class ControlPlane:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def routes(self) -> list[Route]:
        return [
            Route("/_emulator/reset", self.reset, methods=["POST"]),
            Route("/_emulator/snapshot", self.snapshot, methods=["GET"]),
            Route("/_emulator/clock", self.clock, methods=["GET", "PUT"]),
            Route("/_emulator/clock/advance", self.advance, methods=["POST"]),
            Route("/_emulator/seed/applications", self.seed_applications, methods=["POST"]),
            Route("/_emulator/seed/copies", self.seed_copies, methods=["POST"]),
            Route("/_emulator/requests", self.requests, methods=["GET", "DELETE"]),
            Route("/_emulator/faults", self.faults, methods=["GET", "PUT", "POST", "DELETE"]),
            Route("/_emulator/policy", self.policy, methods=["GET", "PUT"]),
            Route("/_emulator/secrets", self.secrets, methods=["GET"]),
            Route("/_emulator/leases", self.leases, methods=["GET"]),
            Route("/_emulator/role-assignments", self.role_assignments, methods=["GET"]),
            Route("/_emulator/rbac", self.rbac, methods=["GET", "PUT"]),
            Route("/_emulator/servicebus/queues", self.servicebus_queues, methods=["GET"]),
            Route("/_emulator/servicebus/queues/{name}", self.servicebus_queue, methods=["GET", "PUT"]),
            Route(
                "/_emulator/servicebus/queues/{name}/expire-locks",
                self.servicebus_expire_locks,
                methods=["POST"],
            ),
            Route("/_emulator/servicebus/queues/{name}/messages", self.servicebus_messages, methods=["GET"]),
            Route("/_emulator/oidc/token", self.oidc_token, methods=["POST"]),
        ]

    def _admin(self, request: Request) -> None:
        principal = self.platform.identity.authenticate(request, GRAPH_AUDIENCES)
        if principal.app_id != self.platform.seeded.admin.app_id:
            raise PlatformError(
                403,
                "Authorization_RequestDenied",
                "The control plane is for the admin identity.",
                service="control",
            )

    async def _json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _bad("body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("body must be a JSON object")
        return body

    async def reset(self, request: Request) -> Response:
        self._admin(request)
        self.platform.reset()
        return Response(status_code=204)

    async def snapshot(self, request: Request) -> Response:
        """The whole tenant and vault as JSON, streamed object by object."""
        self._admin(request)
        directory = self.platform.directory

        def dumped(objects: Any, defaults: dict[str, Any] | None) -> Any:
            first = True
            for obj in list(objects):
                yield ("" if first else ",") + json.dumps(complete(defaults, obj) if defaults else obj)
                first = False

        async def body() -> AsyncIterator[str]:
            yield json.dumps(
                {
                    "clock": iso(self.platform.clock.now()),
                    "tenantId": self.platform.tenant_id,
                    "policy": self.platform.policy,
                }
            )[:-1]
            for name, objects, defaults in (
                ("applications", directory.applications.values(), APPLICATION_DEFAULTS),
                ("servicePrincipals", directory.service_principals.values(), SERVICE_PRINCIPAL_DEFAULTS),
                ("oauth2PermissionGrants", directory.oauth2_permission_grants.values(), None),
                ("appRoleAssignments", directory.app_role_assignments.values(), None),
                ("users", directory.users.values(), None),
            ):
                yield f', "{name}": ['
                for chunk in dumped(objects, defaults):
                    yield chunk
                yield "]"
            yield ', "owners": ' + json.dumps(directory.owners)
            yield ', "certificates": ' + json.dumps(self.platform.certificates.snapshot())
            yield ', "vault": ' + json.dumps(self.platform.vault.snapshot()) + "}"

        return StreamingResponse(body(), media_type="application/json")

    async def clock(self, request: Request) -> JSONResponse:
        self._admin(request)
        if request.method == "PUT":
            body = await self._json(request)
            try:
                self.platform.clock.set(parse_iso(str(body["now"])))
            except (KeyError, ValueError) as exc:
                raise _bad(f"expected {{'now': <ISO-8601 time with zone>}}: {exc}") from None
            self.platform.servicebus.changed()  # scheduled messages and locks follow the clock
        return JSONResponse({"now": iso(self.platform.clock.now())})

    async def advance(self, request: Request) -> JSONResponse:
        self._admin(request)
        body = await self._json(request)
        try:
            now = self.platform.clock.advance(str(body["duration"]))
        except (KeyError, ValueError) as exc:
            raise _bad(f"expected {{'duration': <ISO-8601 duration>}}: {exc}") from None
        self.platform.servicebus.changed()
        return JSONResponse({"now": iso(now)})

    async def seed_applications(self, request: Request) -> JSONResponse:
        """Create ``count`` applications (and service principals) at once, for scale tests.
        ``ownedByService`` makes the service identity their owner; ``tags`` tags them;
        ``passwordEndDateTime`` gives each one password credential ending then."""
        self._admin(request)
        body = await self._json(request)
        count = int(body.get("count", 0))
        if not 0 < count <= 200_000:
            raise _bad("count must be 1..200000")
        prefix = str(body.get("prefix", "seeded"))
        tags = list(body.get("tags", []))
        owner = self.platform.seeded.service.service_principal_id if body.get("ownedByService") else None
        with_sp = bool(body.get("servicePrincipals", False))
        password_end = body.get("passwordEndDateTime")
        directory = self.platform.directory
        now = iso(self.platform.clock.now())
        start = len(directory.applications)
        for n in range(count):
            object_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
            app: dict[str, Any] = {
                "id": object_id,
                "appId": app_id,
                "displayName": f"{prefix}-{start + n:06d}",
                "createdDateTime": now,
                "signInAudience": "AzureADMyOrg",
            }
            if tags:
                app["tags"] = tags
            if password_end:
                app["passwordCredentials"] = [
                    {
                        "customKeyIdentifier": None,
                        "displayName": "seeded",
                        "endDateTime": password_end,
                        "hint": "see",
                        "keyId": str(uuid.uuid4()),
                        "secretText": None,
                        "startDateTime": now,
                    }
                ]
            directory.applications[object_id] = app
            directory.app_by_app_id[app_id] = object_id
            if owner:
                directory.add_owner(object_id, owner)
            if with_sp:
                sp_id = str(uuid.uuid4())
                directory.service_principals[sp_id] = {
                    "id": sp_id,
                    "appId": app_id,
                    "displayName": app["displayName"],
                    "createdDateTime": now,
                }
                directory.sp_by_app_id[app_id] = sp_id
                if owner:
                    directory.add_owner(sp_id, owner)
        return JSONResponse({"created": count, "applications": len(directory.applications)}, status_code=201)

    async def seed_copies(self, request: Request) -> JSONResponse:
        """Copies of an application the service registered, for scale tests:
        ``{"from": uniqueName, "names": [uniqueName, ...]}`` (emulator.seed.clone_application:
        the application, its service principal, their owners and its Key Vault secret's
        versions, with new ids, keyIds and values)."""
        self._admin(request)
        body = await self._json(request)
        names = body.get("names")
        if (
            not isinstance(names, list)
            or not 0 < len(names) <= 200_000
            or not all(isinstance(n, str) for n in names)
        ):
            raise _bad("names must be a list of 1..200000 uniqueNames")
        try:
            made = clone_application(
                self.platform.directory, self.platform.vault, str(body.get("from")), names
            )
        except ValueError as error:
            raise _bad(str(error)) from None
        return JSONResponse(
            {"created": made, "applications": len(self.platform.directory.applications)}, status_code=201
        )

    async def requests(self, request: Request) -> Response:
        self._admin(request)
        faults = self.platform.faults
        if request.method == "DELETE":
            faults.clear_log()
            return Response(status_code=204)
        since = int(request.query_params.get("since", "0"))
        entries = [asdict(e) for e in list(faults.log) if e.seq > since]
        return JSONResponse(
            {
                "entries": entries,
                "counts": dict(faults.counts),
                "lastSeq": faults.seq,
                # startMs/endMs count from this moment of the host's monotonic clock (seconds),
                # which every process on the machine shares: a benchmark places its own
                # moments among the requests with it.
                "epochMonotonic": faults.epoch,
            }
        )

    async def faults(self, request: Request) -> Response:
        self._admin(request)
        faults = self.platform.faults
        if request.method == "DELETE":
            faults.configure([])
            return Response(status_code=204)
        if request.method in ("PUT", "POST"):
            body = await self._json(request)
            try:
                faults.configure(
                    list(body.get("rules", [])), seed=body.get("seed"), replace=request.method == "PUT"
                )
            except (TypeError, ValueError) as exc:
                raise _bad(f"invalid fault rule: {exc}") from None
        return JSONResponse({"seed": faults.seed, "rules": [r.describe() for r in faults.rules]})

    async def policy(self, request: Request) -> JSONResponse:
        self._admin(request)
        if request.method == "PUT":
            body = await self._json(request)
            unknown = set(body) - {"maxSecretLifetime", "secretsAllowed", "maxCertificateLifetime"}
            if unknown:
                raise _bad(f"unknown policy fields {sorted(unknown)}")
            for field in ("maxSecretLifetime", "maxCertificateLifetime"):
                if body.get(field) is not None:
                    try:
                        add_iso_duration(dt.datetime.now(dt.UTC), str(body[field]))
                    except ValueError as exc:
                        raise _bad(f"{field}: {exc}") from None
            self.platform.policy = {
                "maxSecretLifetime": body.get("maxSecretLifetime"),
                "secretsAllowed": bool(body.get("secretsAllowed", True)),
                # appManagementPolicy keyCredentials restriction asymmetricKeyLifetime
                "maxCertificateLifetime": body.get("maxCertificateLifetime"),
            }
        return JSONResponse(self.platform.policy)

    async def secrets(self, request: Request) -> JSONResponse:
        """Every secret value the emulator issued or stored, for the leak detector, and every
        private key it generated for a certificate (the base64 of its PKCS#8 DER)."""
        self._admin(request)
        values = (
            self.platform.issued_secrets
            | set(self.platform.directory.secret_values.values())
            | set(self.platform.vault.issued_values())
            | set(self.platform.certificates.issued_values())
        )
        return JSONResponse({"values": sorted(values)})

    async def leases(self, request: Request) -> JSONResponse:
        """Every blob's lease: {"container/blob": {"state", "until"}} on the emulator clock."""
        self._admin(request)
        return JSONResponse(self.platform.storage.leases())

    async def role_assignments(self, request: Request) -> JSONResponse:
        """Every Azure role assignment: ``value`` as ARM returns them, ``deleted`` with their
        ``deletedOn`` (the data planes honour them until the propagation delay has passed)."""
        self._admin(request)
        return JSONResponse(self.platform.arm.describe())

    async def rbac(self, request: Request) -> JSONResponse:
        """``{"propagationSeconds": n}``: how long role assignment changes take to reach the
        FHIR and DICOM data planes (emulator clock; default 300, back to it on reset)."""
        self._admin(request)
        arm = self.platform.arm
        if request.method == "PUT":
            body = await self._json(request)
            unknown = set(body) - {"propagationSeconds"}
            seconds = body.get("propagationSeconds")
            if unknown or not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                raise _bad("expected {'propagationSeconds': <seconds, 0 or more>}")
            arm.propagation_seconds = seconds
        return JSONResponse({"propagationSeconds": arm.propagation_seconds})

    # -- Service Bus ------------------------------------------------------------------------

    def _queue_name(self, request: Request) -> str:
        name = str(request.path_params["name"])
        if name.lower() not in self.platform.servicebus.queues:
            raise PlatformError(404, "NotFound", f"There is no queue '{name}'.", service="control")
        return name

    async def servicebus_queues(self, request: Request) -> JSONResponse:
        """Every queue: its settings and ``countDetails`` (active, scheduled, deferred,
        dead-lettered, locked)."""
        self._admin(request)
        return JSONResponse({"value": self.platform.servicebus.describe()})

    async def servicebus_queue(self, request: Request) -> JSONResponse:
        """One queue; PUT ``{"lockDuration": "PT30S", "maxDeliveryCount": 3}`` changes either
        (Service Bus's ranges: 5 s to 5 min, at least 1), until the next reset."""
        self._admin(request)
        name = self._queue_name(request)
        namespace = self.platform.servicebus
        if request.method == "GET":
            return JSONResponse(next(q for q in namespace.describe() if q["name"].lower() == name.lower()))
        body = await self._json(request)
        unknown = set(body) - {"lockDuration", "maxDeliveryCount"}
        if unknown:
            raise _bad(f"unknown queue settings {sorted(unknown)}")
        lock_duration = None
        if body.get("lockDuration") is not None:
            try:
                now = dt.datetime.now(dt.UTC)
                lock_duration = add_iso_duration(now, str(body["lockDuration"])) - now
            except ValueError as exc:
                raise _bad(str(exc)) from None
            if not dt.timedelta(seconds=5) <= lock_duration <= dt.timedelta(minutes=5):
                raise _bad("lockDuration must be between PT5S and PT5M")
        count = body.get("maxDeliveryCount")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise _bad("maxDeliveryCount must be an integer, 1 or more")
        return JSONResponse(namespace.configure(name, lock_duration=lock_duration, max_delivery_count=count))

    async def servicebus_expire_locks(self, request: Request) -> JSONResponse:
        """Every message lock and session lock on the queue (and its dead-letter queue) expires
        now, as if its time had run out: the messages count a failed delivery."""
        self._admin(request)
        expired = self.platform.servicebus.expire_locks(self._queue_name(request))
        return JSONResponse({"expired": expired})

    async def servicebus_messages(self, request: Request) -> JSONResponse:
        """Every message of the queue and of its dead-letter queue (``subQueue``), with its
        state, counts, lock, properties and body (base64 for data sections)."""
        self._admin(request)
        return JSONResponse({"value": self.platform.servicebus.messages(self._queue_name(request))})

    # -- the test OIDC issuer ------------------------------------------------------------------

    async def oidc_token(self, request: Request) -> JSONResponse:
        """A workload token from the test issuer, as a CI job or a cluster would get one:
        ``{"subject", "audience" (default api://AzureADTokenExchange; a string or a list),
        "lifetimeSeconds" (default 600, at most 86400), "claims" (added last, may replace any)}``
        -> ``{"token", "issuer"}``."""
        self._admin(request)
        body = await self._json(request)
        unknown = set(body) - {"subject", "audience", "lifetimeSeconds", "claims"}
        if unknown:
            raise _bad(f"unknown fields {sorted(unknown)}")
        subject = body.get("subject")
        audience = body.get("audience", TOKEN_EXCHANGE_AUDIENCE)
        lifetime = body.get("lifetimeSeconds", DEFAULT_LIFETIME_SECONDS)
        claims = body.get("claims", {})
        if not isinstance(subject, str) or not subject:
            raise _bad("subject must be a non-empty string")
        if not (
            isinstance(audience, str)
            or (isinstance(audience, list) and audience and all(isinstance(a, str) for a in audience))
        ):
            raise _bad("audience must be a string or a list of strings")
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 0 < lifetime <= 86400:
            raise _bad("lifetimeSeconds must be an integer, 1 to 86400")
        if not isinstance(claims, dict):
            raise _bad("claims must be a JSON object")
        issuer = self.platform.identity.test_issuer
        token = issuer.mint(subject, audience, lifetime, claims)
        return JSONResponse({"token": token, "issuer": issuer.url})
