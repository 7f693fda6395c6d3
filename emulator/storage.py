"""Blob storage, as much of it as leases need: the data plane that azure-storage-blob 12.x
talks to for the function app's own storage account (``AzureWebJobsStorage``).

The service takes a blob lease per application to act on it alone (shared.services.exclusive),
so what is imitated is the lease state machine of the *Lease Blob* REST operation, on the
emulator clock so that a test can let a lease expire:

- ``acquire`` (``x-ms-lease-duration`` 15-60 s or -1 for infinite; ``x-ms-proposed-lease-id``
  a GUID): 201 with ``x-ms-lease-id``. A blob leased under another id answers 409
  ``LeaseAlreadyPresent``; acquiring again with the active id renews it. An expired or broken
  lease can be acquired by anyone.
- ``renew``: 200; also after the lease expired, as long as nobody acquired it since. Another
  id: 409 ``LeaseIdMismatchWithLeaseOperation``; no lease ever: 409
  ``LeaseNotPresentWithLeaseOperation``; a breaking or broken lease: 409
  ``LeaseIsBreakingAndCannotBeRenewed`` / ``LeaseIsBrokenAndCannotBeRenewed``.
- ``release``: 200 with the active id, else 409 as for renew.
- ``break`` (``x-ms-lease-break-period`` 0-60 s): 202 with ``x-ms-lease-time``. Without a
  period a fixed lease breaks when it would have expired and an infinite one at once; with
  one, the shorter of the two. Nobody can renew or acquire under the old id until it is
  broken, and anyone can acquire once it is.
- ``change``: 200, the active lease gets ``x-ms-proposed-lease-id``.
- *List Blobs* (``restype=container&comp=list``, ``prefix``, ``maxresults`` 1-5000, default
  and cap 5000, ``marker``): the blobs in name order, as Storage's ``EnumerationResults`` XML
  with each blob's properties (lease status and state among them) and an opaque
  ``NextMarker`` while more remain; ``maxresults`` ≤ 0 answers 400.
- writing a leased blob without its lease id: 412 ``LeaseIdMissing``; with another id: 412
  ``LeaseIdMismatchWithBlobOperation``; ``If-None-Match: *`` on an existing blob: 409
  ``BlobAlreadyExists``.

Requests need a Bearer token for https://storage.azure.com (401 ``NoAuthenticationInformation``
/ ``InvalidAuthenticationInfo``) and an ``x-ms-version``. Errors are Storage's XML
``<Error><Code/><Message/></Error>`` with the code repeated in ``x-ms-error-code``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.clock import Clock
from emulator.errors import PlatformError, request_id_of
from emulator.identity import STORAGE_AUDIENCE

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

ACCOUNT = "devstoreaccount1"
API_VERSION = "2026-02-06"
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 15, 60
MAX_BREAK_SECONDS = 60

LeaseState = Literal["available", "leased", "expired", "breaking", "broken"]


def storage_error(status: int, code: str, message: str) -> PlatformError:
    return PlatformError(status, code, message, service="storage", headers={"x-ms-error-code": code})


def _invalid_header(name: str) -> PlatformError:
    return storage_error(
        400,
        "InvalidHeaderValue",
        f"The value for one of the HTTP headers is not in the correct format. ({name})",
    )


def _invalid_query() -> PlatformError:
    return storage_error(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
    )


def _lease_id(value: str | None, header: str) -> str:
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        raise _invalid_header(header) from None


@dataclass
class Lease:
    state: LeaseState = "available"
    lease_id: str | None = None
    seconds: int = -1  # -1: infinite
    until: dt.datetime | None = None  # a fixed lease's expiry, or the end of a break

    def settle(self, now: dt.datetime) -> None:
        """Move through the transitions time makes: leased -> expired, breaking -> broken."""
        if self.state == "leased" and self.until is not None and now >= self.until:
            self.state = "expired"
        elif self.state == "breaking" and self.until is not None and now >= self.until:
            self.state = "broken"

    @property
    def active(self) -> bool:
        """Whether writers must present the lease id (Azure: leased or breaking)."""
        return self.state in ("leased", "breaking")


@dataclass
class Blob:
    content: bytes = b""
    etag: str = ""
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    lease: Lease = field(default_factory=Lease)


class Storage:
    """One storage account's blob containers, on the emulator clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.containers: dict[str, dict[str, Blob]] = {}

    def _container(self, name: str) -> dict[str, Blob]:
        container = self.containers.get(name)
        if container is None:
            raise storage_error(404, "ContainerNotFound", "The specified container does not exist.")
        return container

    def blob(self, container: str, name: str) -> Blob:
        blob = self._container(container).get(name)
        if blob is None:
            raise storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        blob.lease.settle(self.clock.now())
        return blob

    def create_container(self, name: str) -> None:
        if name in self.containers:
            raise storage_error(409, "ContainerAlreadyExists", "The specified container already exists.")
        self.containers[name] = {}

    def put_blob(
        self, container: str, name: str, content: bytes, *, lease_id: str | None, if_none_match: str | None
    ) -> Blob:
        blobs = self._container(container)
        existing = blobs.get(name)
        if existing is not None:
            if if_none_match == "*":
                raise storage_error(409, "BlobAlreadyExists", "The specified blob already exists.")
            existing.lease.settle(self.clock.now())
            self._check_write_lease(existing.lease, lease_id)
        elif lease_id is not None:
            raise storage_error(
                412, "LeaseNotPresentWithBlobOperation", "There is currently no lease on the blob."
            )
        blob = existing or Blob(created=self.clock.now())
        blob.content = content
        blob.modified = self.clock.now()
        blob.etag = f'"0x{uuid.uuid4().hex[:15].upper()}"'
        blobs[name] = blob
        return blob

    @staticmethod
    def _check_write_lease(lease: Lease, lease_id: str | None) -> None:
        if lease.active and lease_id is None:
            raise storage_error(
                412,
                "LeaseIdMissing",
                "There is currently a lease on the blob and no lease ID was specified in the request.",
            )
        if lease_id is not None and (not lease.active or lease.lease_id != lease_id):
            if not lease.active:
                raise storage_error(
                    412, "LeaseNotPresentWithBlobOperation", "There is currently no lease on the blob."
                )
            raise storage_error(
                412,
                "LeaseIdMismatchWithBlobOperation",
                "The lease ID specified did not match the lease ID for the blob.",
            )

    # -- Lease Blob ---------------------------------------------------------------------------

    def acquire(self, blob: Blob, proposed: str | None, seconds: int) -> str:
        if seconds != -1 and not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
            raise _invalid_header("x-ms-lease-duration")
        lease, now = blob.lease, self.clock.now()
        if lease.state == "leased" and lease.lease_id != proposed:
            raise storage_error(409, "LeaseAlreadyPresent", "There is already a lease present.")
        if lease.state == "breaking":
            if lease.lease_id == proposed:
                raise storage_error(
                    409, "LeaseIsBreakingAndCannotBeAcquired", "There is already a breaking lease present."
                )
            raise storage_error(409, "LeaseAlreadyPresent", "There is already a lease present.")
        lease.state, lease.lease_id, lease.seconds = "leased", proposed or str(uuid.uuid4()), seconds
        lease.until = None if seconds == -1 else now + dt.timedelta(seconds=seconds)
        return lease.lease_id

    def renew(self, blob: Blob, lease_id: str) -> str:
        lease = self._own(blob, lease_id, "renewed")
        if lease.state == "breaking":
            raise storage_error(
                409,
                "LeaseIsBreakingAndCannotBeRenewed",
                "The lease ID matched, but the lease is currently in breaking state and cannot be renewed.",
            )
        if lease.state == "broken":
            raise storage_error(
                409,
                "LeaseIsBrokenAndCannotBeRenewed",
                "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
            )
        lease.state = "leased"
        lease.until = None if lease.seconds == -1 else self.clock.now() + dt.timedelta(seconds=lease.seconds)
        return lease_id

    def release(self, blob: Blob, lease_id: str) -> None:
        self._own(blob, lease_id, "released")
        blob.lease = Lease()

    def change(self, blob: Blob, lease_id: str, proposed: str) -> str:
        lease = self._own(blob, lease_id, "changed")
        if lease.state != "leased":
            raise storage_error(
                409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."
            )
        lease.lease_id = proposed
        return proposed

    def break_(self, blob: Blob, period: int | None) -> int:
        if period is not None and not 0 <= period <= MAX_BREAK_SECONDS:
            raise _invalid_header("x-ms-lease-break-period")
        lease, now = blob.lease, self.clock.now()
        if lease.state == "available":
            raise storage_error(
                409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."
            )
        if lease.state in ("expired", "broken"):
            lease.state, lease.until = "broken", None
            return 0
        remaining = None if lease.until is None else max(0, int((lease.until - now).total_seconds()))
        if lease.state == "leased":
            if period is None:
                wait = remaining if remaining is not None else 0
            else:
                wait = period if remaining is None else min(period, remaining)
        else:  # breaking: a shorter period brings the break forward
            wait = (remaining or 0) if period is None else min(period, remaining or 0)
        lease.state, lease.until = "breaking", now + dt.timedelta(seconds=wait)
        lease.settle(now)
        if lease.state == "broken":
            lease.until = None
        return wait

    @staticmethod
    def _own(blob: Blob, lease_id: str, what: str) -> Lease:
        lease = blob.lease
        if lease.state == "available" or lease.lease_id is None:
            raise storage_error(
                409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."
            )
        if lease.lease_id != lease_id:
            raise storage_error(
                409,
                "LeaseIdMismatchWithLeaseOperation",
                f"The lease ID specified did not match the lease ID for the blob; it cannot be {what}.",
            )
        return lease

    # -- the control plane's view -------------------------------------------------------------

    def list_blobs(
        self, container: str, prefix: str, marker: str | None, limit: int
    ) -> tuple[list[tuple[str, Blob]], str | None]:
        """A page of ``container``'s blobs whose names start with ``prefix``, in name order,
        from ``marker`` (the name to start at) on; and the next page's marker, if any."""
        blobs = self._container(container)
        now = self.clock.now()
        names = sorted(n for n in blobs if n.startswith(prefix) and (marker is None or n >= marker))
        page = [(n, blobs[n]) for n in names[:limit]]
        for _, blob in page:
            blob.lease.settle(now)
        return page, names[limit] if len(names) > limit else None

    def leases(self) -> dict[str, dict[str, str | None]]:
        """Every blob's lease state, for tests: {"container/blob": {"state", "until"}}."""
        now = self.clock.now()
        out: dict[str, dict[str, str | None]] = {}
        for container, blobs in self.containers.items():
            for name, blob in blobs.items():
                blob.lease.settle(now)
                until = blob.lease.until.isoformat() if blob.lease.until else None
                out[f"{container}/{name}"] = {"state": blob.lease.state, "until": until}
        return out


Handler = Callable[[Request, Storage], Awaitable[Response]]
MAX_LIST_RESULTS = 5000


def _enumeration(
    endpoint: str,
    container: str,
    prefix: str,
    marker: str | None,
    maxresults: str | None,
    page: list[tuple[str, Blob]],
    following: str | None,
) -> bytes:
    """List Blobs' ``EnumerationResults`` document."""
    from xml.etree import ElementTree as ET

    def when(at: dt.datetime) -> str:
        return format_datetime(at, usegmt=True)

    root = ET.Element("EnumerationResults", ServiceEndpoint=endpoint, ContainerName=container)
    if prefix:
        ET.SubElement(root, "Prefix").text = prefix
    if marker:
        ET.SubElement(root, "Marker").text = marker
    if maxresults:
        ET.SubElement(root, "MaxResults").text = maxresults
    blobs = ET.SubElement(root, "Blobs")
    for name, blob in page:
        item = ET.SubElement(blobs, "Blob")
        ET.SubElement(item, "Name").text = name
        props = ET.SubElement(item, "Properties")
        lease = blob.lease
        for tag, text in (
            ("Creation-Time", when(blob.created)),
            ("Last-Modified", when(blob.modified)),
            ("Etag", blob.etag.strip('"')),
            ("Content-Length", str(len(blob.content))),
            ("Content-Type", "application/octet-stream"),
            ("BlobType", "BlockBlob"),
            ("LeaseStatus", "locked" if lease.active else "unlocked"),
            ("LeaseState", lease.state),
            ("ServerEncrypted", "true"),
        ):
            ET.SubElement(props, tag).text = text
        if lease.active:
            ET.SubElement(props, "LeaseDuration").text = "infinite" if lease.seconds == -1 else "fixed"
    next_marker = None if following is None else base64.urlsafe_b64encode(following.encode()).decode()
    ET.SubElement(root, "NextMarker").text = next_marker
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )


def routes(identity: IdentityPlatform, current: Callable[[], Storage]) -> list[BaseRoute]:
    """The blob service at ``/{ACCOUNT}``, authenticated by ``identity``; ``current`` gives the
    account of the moment (a reset replaces it)."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            identity.authenticate(request, (STORAGE_AUDIENCE, f"{STORAGE_AUDIENCE}/"))
            if not request.headers.get("x-ms-version"):
                raise storage_error(
                    400,
                    "MissingRequiredHeader",
                    "An HTTP header that's mandatory for this request is not specified.",
                )
            return await handler(request, current())

        return run

    def answer(
        request: Request,
        status: int,
        headers: dict[str, str] | None = None,
        blob: Blob | None = None,
        content: bytes = b"",
    ) -> Response:
        out = {
            "x-ms-request-id": request_id_of(request),
            "x-ms-version": API_VERSION,
            "Date": format_datetime(dt.datetime.now(dt.UTC), usegmt=True),
            **(headers or {}),
        }
        if blob is not None:
            out["ETag"] = blob.etag
            out["Last-Modified"] = format_datetime(blob.modified, usegmt=True)
        return Response(content, status_code=status, headers=out)

    async def container(request: Request, storage: Storage) -> Response:
        if request.query_params.get("restype") != "container":
            raise _invalid_query()
        storage.create_container(request.path_params["container"])
        return answer(request, 201, {"ETag": f'"0x{uuid.uuid4().hex[:15].upper()}"'})

    async def listing(request: Request, storage: Storage) -> Response:
        query = request.query_params
        if query.get("restype") != "container" or query.get("comp") != "list":
            raise _invalid_query()
        try:
            limit = int(query.get("maxresults", MAX_LIST_RESULTS))
        except ValueError:
            limit = 0
        if limit <= 0:
            raise storage_error(
                400,
                "OutOfRangeQueryParameterValue",
                "One of the query parameters specified in the request URI is outside the permissible range.",
            )
        marker = query.get("marker") or None
        start = None
        if marker is not None:
            try:
                start = base64.urlsafe_b64decode(marker.encode()).decode()
            except ValueError:
                raise _invalid_query() from None
        container_name = request.path_params["container"]
        prefix = query.get("prefix", "")
        page, following = storage.list_blobs(container_name, prefix, start, min(limit, MAX_LIST_RESULTS))
        body = _enumeration(
            str(request.base_url), container_name, prefix, marker, query.get("maxresults"), page, following
        )
        return answer(request, 200, {"Content-Type": "application/xml"}, content=body)

    async def put(request: Request, storage: Storage) -> Response:
        container, name = request.path_params["container"], request.path_params["blob"]
        if request.query_params.get("comp") == "lease":
            return lease(request, storage, storage.blob(container, name))
        if request.headers.get("x-ms-blob-type") != "BlockBlob":
            raise storage_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
            )
        content = await request.body()
        lease_id = request.headers.get("x-ms-lease-id")
        blob = storage.put_blob(
            container,
            name,
            content,
            lease_id=None if lease_id is None else _lease_id(lease_id, "x-ms-lease-id"),
            if_none_match=request.headers.get("if-none-match"),
        )
        md5 = base64.b64encode(hashlib.md5(content).digest()).decode()  # noqa: S324 (Content-MD5, as Azure)
        return answer(request, 201, {"Content-MD5": md5, "x-ms-request-server-encrypted": "true"}, blob)

    def lease(request: Request, storage: Storage, blob: Blob) -> Response:
        action = request.headers.get("x-ms-lease-action", "")
        headers = request.headers
        if action == "acquire":
            try:
                seconds = int(headers.get("x-ms-lease-duration", ""))
            except ValueError:
                raise _invalid_header("x-ms-lease-duration") from None
            proposed = headers.get("x-ms-proposed-lease-id")
            lease_id = storage.acquire(
                blob, None if proposed is None else _lease_id(proposed, "x-ms-proposed-lease-id"), seconds
            )
            return answer(request, 201, {"x-ms-lease-id": lease_id}, blob)
        if action == "renew":
            lease_id = storage.renew(blob, _lease_id(headers.get("x-ms-lease-id"), "x-ms-lease-id"))
            return answer(request, 200, {"x-ms-lease-id": lease_id}, blob)
        if action == "release":
            storage.release(blob, _lease_id(headers.get("x-ms-lease-id"), "x-ms-lease-id"))
            return answer(request, 200, None, blob)
        if action == "change":
            lease_id = storage.change(
                blob,
                _lease_id(headers.get("x-ms-lease-id"), "x-ms-lease-id"),
                _lease_id(headers.get("x-ms-proposed-lease-id"), "x-ms-proposed-lease-id"),
            )
            return answer(request, 200, {"x-ms-lease-id": lease_id}, blob)
        if action == "break":
            raw = headers.get("x-ms-lease-break-period")
            try:
                period = None if raw is None else int(raw)
            except ValueError:
                raise _invalid_header("x-ms-lease-break-period") from None
            return answer(request, 202, {"x-ms-lease-time": str(storage.break_(blob, period))}, blob)
        raise _invalid_header("x-ms-lease-action")

    async def properties(request: Request, storage: Storage) -> Response:
        blob = storage.blob(request.path_params["container"], request.path_params["blob"])
        lease = blob.lease
        status = "locked" if lease.active else "unlocked"
        headers = {
            "Content-Length": str(len(blob.content)),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-lease-state": lease.state,
            "x-ms-lease-status": status,
        }
        if lease.active:
            headers["x-ms-lease-duration"] = "infinite" if lease.seconds == -1 else "fixed"
        return answer(request, 200, headers, blob)

    return [
        Route(f"/{ACCOUNT}/{{container}}", endpoint(container), methods=["PUT"]),
        Route(f"/{ACCOUNT}/{{container}}", endpoint(listing), methods=["GET"]),
        Route(f"/{ACCOUNT}/{{container}}/{{blob:path}}", endpoint(put), methods=["PUT"]),
        Route(f"/{ACCOUNT}/{{container}}/{{blob:path}}", endpoint(properties), methods=["HEAD"]),
    ]
