"""Key Vault gateway: the only place secret values are written, and how they are found again.

Each managed application has one Key Vault secret (``app-{uniqueName}``); every client
secret the service creates for it is a new *version* of that secret, tagged with the
credential's ``keyId`` (shared.domain.stored), so that readers of the unversioned id always
get the newest and the service can prove which credentials have their value stored. Retries
are this gateway's (``_call``: 429/5xx and dropped connections, with backoff and
``Retry-After``; a write asks the lease's fence before each attempt); errors are mapped to
shared.domain.errors, so nothing above sees an azure-core exception.

Every method says what it returns, what it raises and the Key Vault data action it needs;
the built-in role *Key Vault Secrets Officer* on the vault grants all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from shared.adapters.azure_calls import call_azure
from shared.domain.errors import NotFound, PermanentError, PermissionDenied, ServiceError, TransientError
from shared.domain.records import StoredVersion
from shared.domain.secret_value import SecretValue
from shared.domain.stored import KEY_ID, RECORD_VALUE, SECRET_CONTENT_TYPE

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretProperties
    from azure.keyvault.secrets.aio import SecretClient

T = TypeVar("T")
RECORD_CONTENT_TYPE = "application/vnd.entra-app-registration.decommission-record"


def _inner_code(error: Exception) -> str | None:
    """Key Vault's specific error code, nested under ``innererror`` (e.g. SecretDisabled,
    ObjectIsDeletedButRecoverable); the outer code is only the HTTP class (Forbidden, Conflict)."""
    inner = getattr(getattr(error, "error", None), "innererror", None)
    code = inner.get("code") if isinstance(inner, dict) else None
    return str(code) if code else None


def vault_error(what: str, error: Exception) -> ServiceError | None:
    """A shared.domain.errors error for one of azure-core's, holding only text: never the
    SDK error, its response or its request."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ResourceNotFoundError):
        return NotFound(getattr(error.error, "code", None) or "NotFound", f"{what}: not found")
    if isinstance(error, ResourceExistsError):
        return PermanentError(_inner_code(error) or "Conflict", f"{what}: {error.message}")
    if isinstance(error, ClientAuthenticationError):
        return TransientError("TokenUnavailable", f"{what}: {error.message}")
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError("KeyVaultUnreachable", f"{what}: {type(error).__name__}")
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        code = _inner_code(error) or str(getattr(error.error, "code", None) or status)
        detail = f"{what}: Key Vault answered {status} {code}"
        if status == 429 or status >= 500:
            return TransientError("KeyVaultUnavailable", detail)
        if status == 403:
            return PermissionDenied(code, detail)
        return PermanentError(code, detail)
    return None


def _version(properties: SecretProperties) -> StoredVersion:
    tags = dict(properties.tags or {})
    return StoredVersion(
        id=str(properties.id),
        version=str(properties.version),
        key_id=tags.get(KEY_ID),
        enabled=bool(properties.enabled),
        expires_on=properties.expires_on,
        created_on=properties.created_on,
        tags=tags,
    )


class KeyVaultGateway:
    def __init__(self, client: SecretClient) -> None:
        self.client = client

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], *, write: bool = False, resend: bool = True
    ) -> T:
        """Run one call with its retries (shared.adapters.azure_calls); a write asks the lease's
        fence before every attempt."""
        return await call_azure(what, call, vault_error, write=write, resend=resend)

    async def versions(self, name: str) -> list[StoredVersion]:
        """Every version of the secret (properties and tags, never values); [] if none.

        Raises ``PermissionDenied``, ``TransientError``. Needs
        ``Microsoft.KeyVault/vaults/secrets/readMetadata/action``.
        """

        async def collect() -> list[StoredVersion]:
            return [_version(p) async for p in self.client.list_properties_of_secret_versions(name)]

        try:
            return await self._call(f"list versions of {name}", collect)
        except NotFound:
            return []

    async def latest_versions(self, prefix: str = "") -> AsyncIterator[tuple[str, StoredVersion]]:
        """(name, current version's properties and tags) of every secret whose name starts with
        ``prefix``, page by page: one listing instead of one request per secret.

        Raises ``PermissionDenied``, ``TransientError``. Needs
        ``Microsoft.KeyVault/vaults/secrets/readMetadata/action``.
        """
        pages = self.client.list_properties_of_secrets().by_page()
        while True:
            try:
                page = await self._call("list secrets", lambda: anext(pages))
            except StopAsyncIteration:
                return
            async for properties in page:
                if properties.name and properties.name.startswith(prefix):
                    yield properties.name, _version(properties)

    async def latest(self, name: str) -> StoredVersion | None:
        """The version readers of the unversioned id get, or None if there is none (or it is
        disabled, which makes the unversioned id unreadable).

        Raises ``PermissionDenied``, ``TransientError``. Needs
        ``Microsoft.KeyVault/vaults/secrets/getSecret/action``.
        """
        try:
            secret = await self._call(f"read {name}", lambda: self.client.get_secret(name))
        except NotFound:
            return None
        except PermissionDenied as error:
            if error.code == "SecretDisabled":
                return None
            raise
        return _version(secret.properties)

    async def store(
        self,
        name: str,
        value: SecretValue,
        *,
        tags: Mapping[str, str],
        not_before: dt.datetime,
        expires_on: dt.datetime,
    ) -> StoredVersion:
        """A new version of ``name`` holding ``value``. A soft-deleted name is recovered first
        (409 ObjectIsDeletedButRecoverable), so the secret's history is kept.

        Returns the new version. Raises ``TransientError`` (a lost response may hide a write
        that happened: look for the version before acting on it), ``PermissionDenied``,
        ``PermanentError``. Needs ``Microsoft.KeyVault/vaults/secrets/setSecret/action`` (and
        ``.../recover/action`` for a soft-deleted name).
        """

        async def set_secret() -> StoredVersion:
            secret = await self.client.set_secret(
                name,
                value.reveal(),
                tags=dict(tags),
                content_type=SECRET_CONTENT_TYPE,
                not_before=not_before,
                expires_on=expires_on,
            )
            return _version(secret.properties)

        return await self._set_recovering(f"store a version of {name}", name, set_secret)

    async def write_record(self, name: str, tags: Mapping[str, str]) -> StoredVersion:
        """A disabled version of ``name`` that only carries ``tags`` (its value is no secret).

        Raises ``TransientError``, ``PermissionDenied``, ``PermanentError``. Needs
        ``Microsoft.KeyVault/vaults/secrets/setSecret/action``.
        """

        async def set_record() -> StoredVersion:
            secret = await self.client.set_secret(
                name, RECORD_VALUE, enabled=False, tags=dict(tags), content_type=RECORD_CONTENT_TYPE
            )
            return _version(secret.properties)

        return await self._set_recovering(f"record on {name}", name, set_record)

    async def _set_recovering(
        self, what: str, name: str, set_version: Callable[[], Awaitable[StoredVersion]]
    ) -> StoredVersion:
        """``set_version``; a soft-deleted name (409 ObjectIsDeletedButRecoverable) is recovered
        first, with its history, then set again."""
        try:
            return await self._call(what, set_version, write=True, resend=False)
        except PermanentError as error:
            if error.code != "ObjectIsDeletedButRecoverable":
                raise
        await self.recover(name)
        return await self._call(what, set_version, write=True, resend=False)

    async def recover(self, name: str) -> None:
        """Recover a soft-deleted secret with its versions; waits until it is done.

        Raises ``NotFound`` when nothing is deleted under ``name``, ``PermissionDenied``,
        ``TransientError``. Needs ``Microsoft.KeyVault/vaults/secrets/recover/action``.
        """
        await self._call(f"recover {name}", lambda: self.client.recover_deleted_secret(name), write=True)

    async def disable(self, name: str, version: str, tags: Mapping[str, str] | None = None) -> None:
        """Disable one version (its value can no longer be read); ``tags`` replace its tags.

        Raises ``NotFound``, ``PermissionDenied``, ``TransientError``. Needs
        ``Microsoft.KeyVault/vaults/secrets/update/action``.
        """
        new_tags = None if tags is None else dict(tags)  # None: the tags are left as they are
        await self._call(
            f"disable {name}/{version}",
            lambda: self.client.update_secret_properties(name, version, enabled=False, tags=new_tags),
            write=True,
        )

    async def read(self, name: str, version: str | None = None) -> SecretValue:
        """The stored value (for proving it authenticates; the service never logs it).

        Raises ``NotFound``, ``PermissionDenied`` (also for a disabled version),
        ``TransientError``. Needs ``Microsoft.KeyVault/vaults/secrets/getSecret/action``.
        """
        secret = await self._call(f"read {name}", lambda: self.client.get_secret(name, version))
        return SecretValue(secret.value or "")
