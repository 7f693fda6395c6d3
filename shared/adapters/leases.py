"""Blob leases in the function app's own storage account: the service's per-application lock.

A fixed set of empty blobs (``{container}/lease-000`` … ``lease-3ff``, an application's
chosen by a hash of its uniqueName: shared.domain.stored.lease_name), made once for the
storage account by a new instance's warm-up, or on first use. A lease is what makes a
delivery the only one acting on its application (shared.services.exclusive). Every method says what it returns, what it raises and the
storage data action it needs; the built-in role *Storage Blob Data Contributor* on the
container grants all of them.

Retries are azure-core's for reads and the idempotent lease calls (a lost response to an
acquire is retried with the same proposed lease id, which Azure treats as a renewal).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, TypeVar

from shared.domain.errors import PermanentError, PermissionDenied, ServiceError, TransientError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

T = TypeVar("T")
# What Storage answers for a lease blob that is not there yet.
_NOT_THERE = frozenset({"BlobNotFound", "ContainerNotFound"})
# What Azure answers when another lease holds the blob, or when ours is gone.
HELD_BY_ANOTHER = "LeaseAlreadyPresent"
OURS_IS_GONE = frozenset(
    {
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseIsBreakingAndCannotBeRenewed",
        "LeaseIsBreakingAndCannotBeAcquired",
    }
)


def _code(error: Exception) -> str:
    code = getattr(error, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _mapped(what: str, error: Exception) -> ServiceError | None:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ClientAuthenticationError):
        return TransientError("TokenUnavailable", f"{what}: {error.message}")
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError("StorageUnreachable", f"{what}: {type(error).__name__}")
    if isinstance(error, HttpResponseError):
        status, code = error.status_code or 0, _code(error) or str(error.status_code)
        detail = f"{what}: Storage answered {status} {code}"
        if status in (408, 429) or status >= 500:
            return TransientError("StorageUnavailable", detail)
        if status == 403:
            return PermissionDenied(
                code, f"{detail}; the service identity needs Storage Blob Data Contributor"
            )
        return PermanentError(code, detail)
    return None


class BlobLeases:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one call; map azure-core's errors (raised after the ``except`` block, so that
        the SDK error is nobody's context)."""
        try:
            return await call()
        except Exception as error:
            failure = _mapped(what, error)
            if failure is None:
                raise
        raise failure

    async def acquire(self, name: str, seconds: int) -> str | None:
        """A new lease of ``seconds`` (15-60) on ``name``'s blob: its id, or None while another
        lease holds it. The lease blobs are fixed (shared.domain.stored.lease_names) and made
        once for the storage account (``ensure``, by a new instance's warm-up), so the acquire
        is sent first; a blob (or container) that is not there yet is created, and the acquire
        sent again.

        Raises ``PermissionDenied``, ``TransientError``. Needs
        ``Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write`` (and
        ``.../containers/write`` once, to create the container).
        """
        from azure.storage.blob.aio import BlobLeaseClient

        blob = self.container.get_blob_client(name)
        lease = BlobLeaseClient(blob, lease_id=str(uuid.uuid4()))
        for _ in range(3):
            try:
                return await self._take(lease, name, seconds)
            except PermanentError as error:
                if error.code == "ContainerNotFound":
                    await self._create(self.container.create_container)
                elif error.code != "BlobNotFound":
                    raise
                await self._create_blob(name)
        raise TransientError("StorageUnavailable", f"lease {name}: the blob could not be created")

    async def ensure(self, names: Sequence[str], prefix: str, concurrency: int = 16) -> int:
        """Make sure every blob of ``names`` (all starting with ``prefix``) exists. The last
        name is created only after all the others, so once it exists they all do: a storage
        account whose blobs were made takes one request (its properties). Otherwise one
        listing, then the missing ones created, ``concurrency`` at a time, the last name last.
        Returns how many were created.

        Raises ``PermissionDenied``, ``TransientError``. Needs ``.../containers/blobs/read``
        and ``.../blobs/write`` (``.../containers/write`` once, for the container).
        """
        *others, last = names
        try:
            await self._call(
                "read the last lease blob", self.container.get_blob_client(last).get_blob_properties
            )
            return 0
        except PermanentError as error:
            if error.code not in _NOT_THERE:
                raise

        async def listed() -> set[str]:
            return {b.name async for b in self.container.list_blobs(name_starts_with=prefix)}

        try:
            existing = await self._call("list the lease blobs", listed)
        except PermanentError as error:
            if error.code != "ContainerNotFound":
                raise
            await self._create(self.container.create_container)
            existing = set()
        missing = [n for n in others if n not in existing]
        gate = asyncio.Semaphore(concurrency)

        async def create(name: str) -> None:
            async with gate:
                await self._create_blob(name)

        await asyncio.gather(*(create(n) for n in missing))
        await self._create_blob(last)
        return len(missing) + 1

    async def _take(self, lease: BlobLeaseClient, name: str, seconds: int) -> str | None:
        """Acquire ``lease``: its id, or None while another lease holds the blob."""
        try:
            await self._call(f"lease {name}", lambda: lease.acquire(lease_duration=seconds))
        except PermanentError as error:
            if error.code == HELD_BY_ANOTHER:
                return None
            raise
        return str(lease.id)

    async def _create_blob(self, name: str) -> None:
        """Create the empty blob ``name`` to lease: once, never written again (If-None-Match: *)."""
        blob = self.container.get_blob_client(name)
        await self._create(lambda: blob.upload_blob(b"", overwrite=False))

    async def _create(self, call: Callable[[], Awaitable[object]]) -> None:
        """Create the container or the blob; one that exists already is what was wanted."""
        try:
            await self._call("create the lease blob", call)
        except PermanentError as error:
            if error.code not in ("ContainerAlreadyExists", "BlobAlreadyExists"):
                raise

    async def renew(self, name: str, lease_id: str) -> bool:
        """Renew our lease for its duration: False if it is gone (broken, or taken by another
        after it expired).

        Raises ``PermissionDenied``, ``TransientError``. Needs ``.../blobs/write``.
        """
        from azure.storage.blob.aio import BlobLeaseClient

        lease = BlobLeaseClient(self.container.get_blob_client(name), lease_id=lease_id)
        try:
            await self._call(f"renew the lease on {name}", lease.renew)
        except PermanentError as error:
            if error.code in OURS_IS_GONE:
                return False
            raise
        return True

    async def release(self, name: str, lease_id: str) -> None:
        """Give the lease up at once (if it is still ours).

        Raises ``PermissionDenied``, ``TransientError``. Needs ``.../blobs/write``.
        """
        from azure.storage.blob.aio import BlobLeaseClient

        lease = BlobLeaseClient(self.container.get_blob_client(name), lease_id=lease_id)
        try:
            await self._call(f"release the lease on {name}", lease.release)
        except PermanentError as error:
            if error.code not in OURS_IS_GONE:
                raise
