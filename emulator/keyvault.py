"""Key Vault secrets: the data plane that azure-keyvault-secrets 4.12 talks to.

``Vault`` holds the state (secrets, their versions, soft-deleted secrets) and applies Key
Vault's rules; ``routes`` puts the REST API in front of it, in Key Vault's wire format:
SecretBundle / SecretItem / DeletedSecretBundle JSON, ``nextLink`` paging, errors as
``{"error": {"code", "message", "innererror"?}}``. Every route first answers the SDK's
unauthenticated probe with the 401 challenge, then wants a Bearer token for
https://vault.azure.net, then an ``api-version`` the SDK knows.

The quirks imitated, each as Key Vault shows them:
- set on an existing name adds a version; "latest" is the newest version created.
- names are case-insensitive and keep the casing they were created with.
- reading a disabled version is 403 ``Forbidden`` / innererror ``SecretDisabled``;
  ``exp`` and ``nbf`` are informational only and never block a read.
- delete is soft (recovery level ``Recoverable+Purgeable``, 90 days, purged on the
  emulator clock after that); a soft-deleted name cannot be set again (409 ``Conflict`` /
  innererror ``ObjectIsDeletedButRecoverable``) until it is recovered or purged.
- update, delete and recover answers carry no value; only get and set do.
- versions are listed in version-id order, not by age, as Key Vault does: a client
  that needs the newest reads ``created``.
- a certificate's secret (emulator.keyvault_certificates puts it here) is *managed*: its bundle
  and items say ``managed: true``, the bundle names the certificate's key (``kid``), and a set
  on its name is refused (403 ``Forbidden``, this emulator's wording: Microsoft does not
  document the answer).

One cohesive thing, the secrets data plane, state and wire format together, hence its length.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import Clock
from emulator.errors import PlatformError, request_id_of
from emulator.identity import VAULT_AUDIENCE

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

# What azure-keyvault-secrets 4.12 can send (its ApiVersion enum); 2026-04-01 is its default.
API_VERSIONS = (
    "2026-04-01",
    "2025-07-01",
    "7.6",
    "7.5",
    "7.4",
    "7.3",
    "7.2",
    "7.1",
    "7.0",
    "2016-10-01",
)
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
MAX_TAGS = 15
MAX_PAGE_SIZE = 25
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


def _bad(message: str) -> PlatformError:
    return PlatformError(400, "BadParameter", message, service="keyvault")


def _not_found(name_or_id: str) -> PlatformError:
    return PlatformError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name_or_id} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command. "
        "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        service="keyvault",
    )


def _deleted_not_found(name: str) -> PlatformError:
    return PlatformError(404, "SecretNotFound", f"Deleted Secret not found: {name}", service="keyvault")


@dataclass(frozen=True)
class Version:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class Secret:
    name: str
    versions: list[Version] = field(default_factory=list)  # in creation order: the last is the latest
    managed: bool = False  # a certificate's secret: its versions are the certificate's
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @property
    def is_deleted(self) -> bool:
        return self.deleted_date is not None

    def find(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)


class Vault:
    """One soft-delete-enabled vault's secrets, on the emulator clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._secrets: dict[str, Secret] = {}  # by lower-cased name
        # The lower-cased names, sorted once as they come and go: a listing page is a slice of
        # it, not a sort of the whole vault per page.
        self._order: list[str] = []
        self._deleted_keys: set[str] = set()  # soft-deleted: the only ones a purge can be due for
        self._values: list[str] = []

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _add(self, secret: Secret) -> Secret:
        key = secret.name.lower()
        self._secrets[key] = secret
        bisect.insort(self._order, key)
        return secret

    def _remove(self, key: str) -> None:
        del self._secrets[key]
        self._deleted_keys.discard(key)
        del self._order[bisect.bisect_left(self._order, key)]

    def _purge_due(self) -> None:
        now = self._now()
        for key in [k for k in self._deleted_keys if (self._secrets[k].scheduled_purge_date or 0) <= now]:
            self._remove(key)

    def _live(self, name: str) -> Secret:
        self._purge_due()
        secret = self._secrets.get(name.lower())
        if secret is None or secret.is_deleted:
            raise _not_found(name)
        return secret

    def _deleted(self, name: str) -> Secret:
        self._purge_due()
        secret = self._secrets.get(name.lower())
        if secret is None or not secret.is_deleted:
            raise _deleted_not_found(name)
        return secret

    # -- secrets ------------------------------------------------------------------------

    def set(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
        enabled: bool = True,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> tuple[Secret, Version]:
        self._purge_due()
        secret = self._secrets.get(name.lower())
        if secret is not None and secret.is_deleted:
            raise PlatformError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot "
                "be reused; in this state, the secret can only be recovered or purged.",
                service="keyvault",
                inner_code="ObjectIsDeletedButRecoverable",
            )
        if secret is None:
            secret = self._add(Secret(name))
        if secret.managed:
            raise PlatformError(
                403, "Forbidden", "Operation set is not allowed on a managed secret.", service="keyvault"
            )
        now = self._now()
        version = Version(uuid.uuid4().hex, value, content_type, tags, enabled, nbf, exp, now, now)
        secret.versions.append(version)
        self._values.append(value)
        return secret, version

    def reserve_managed(self, name: str) -> None:
        """Refuse, before a certificate is made, a name that a secret of its own holds: the
        certificate's secret would join its versions. (409 ``Conflict``, this emulator's wording.)"""
        self._purge_due()
        secret = self._secrets.get(name.lower())
        if secret is not None and not secret.managed:
            raise PlatformError(
                409,
                "Conflict",
                f"A secret named {secret.name} exists in this key vault and is not managed by a certificate.",
                service="keyvault",
            )

    def add_managed(
        self,
        name: str,
        version: str,
        value: str,
        *,
        content_type: str,
        enabled: bool,
        nbf: int,
        exp: int,
        holds_private_key: bool,
    ) -> None:
        """A certificate version's secret, with the certificate's version id and attributes. A
        value holding the private key joins the values the leak detector looks for."""
        self.reserve_managed(name)
        secret = self._secrets.get(name.lower()) or self._add(Secret(name, managed=True))
        now = self._now()
        secret.versions.append(Version(version, value, content_type, None, enabled, nbf, exp, now, now))
        if holds_private_key:
            self._values.append(value)

    def get(self, name: str, version: str = "") -> tuple[Secret, Version]:
        """The version asked for (the latest when empty), refused while it is disabled."""
        secret, found = self.properties(name, version)
        if not found.enabled:
            raise PlatformError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                service="keyvault",
                inner_code="SecretDisabled",
            )
        return secret, found

    def properties(self, name: str, version: str = "") -> tuple[Secret, Version]:
        secret = self._live(name)
        if not version:
            return secret, secret.latest
        found = secret.find(version)
        if found is None:
            raise _not_found(f"{name}/{version}")
        return secret, found

    def update(self, name: str, version: str, **changes: Any) -> tuple[Secret, Version]:
        """Replace the given fields (content_type, tags, enabled, nbf, exp) of one version."""
        secret, found = self.properties(name, version)
        updated = dataclasses.replace(found, **changes, updated=self._now())
        secret.versions[secret.versions.index(found)] = updated
        return secret, updated

    def insert(self, name: str, versions: list[Version]) -> None:
        """A secret with these versions as they are (the last is the latest), for bulk seeding;
        their values join those the leak detector looks for."""
        self._purge_due()
        if name.lower() in self._secrets:
            raise _bad(f"Secret {name} exists.")
        self._add(Secret(name, versions=list(versions)))
        self._values.extend(v.value for v in versions)

    def secrets(self) -> list[Secret]:
        self._purge_due()
        return [s for s in (self._secrets[k] for k in self._order) if not s.is_deleted]

    def secrets_after(self, after: str | None, count: int, *, deleted: bool = False) -> list[Secret]:
        """Up to ``count`` live (``deleted``: soft-deleted) secrets whose lower-cased name sorts
        after ``after``, in name order: one listing page."""
        self._purge_due()
        start = 0 if after is None else bisect.bisect_right(self._order, after)
        page: list[Secret] = []
        for key in self._order[start:]:
            secret = self._secrets[key]
            if secret.is_deleted == deleted:
                page.append(secret)
                if len(page) == count:
                    break
        return page

    def versions(self, name: str) -> tuple[Secret, list[Version]]:
        """Key Vault lists no versions, rather than 404, for a name it does not hold."""
        self._purge_due()
        secret = self._secrets.get(name.lower())
        if secret is None or secret.is_deleted:
            return Secret(name), []
        return secret, sorted(secret.versions, key=lambda v: v.version)

    # -- soft delete --------------------------------------------------------------------

    def delete(self, name: str) -> Secret:
        secret = self._live(name)
        now = self._now()
        secret.deleted_date = now
        secret.scheduled_purge_date = now + RECOVERABLE_DAYS * 86400
        self._deleted_keys.add(name.lower())
        return secret

    def deleted(self, name: str) -> Secret:
        return self._deleted(name)

    def deleted_secrets(self) -> list[Secret]:
        self._purge_due()
        return [s for s in (self._secrets[k] for k in self._order) if s.is_deleted]

    def recover(self, name: str) -> Secret:
        secret = self._deleted(name)
        secret.deleted_date = secret.scheduled_purge_date = None
        self._deleted_keys.discard(secret.name.lower())
        return secret

    def purge(self, name: str) -> None:
        secret = self._deleted(name)
        self._remove(secret.name.lower())

    # -- for tests ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every secret, version, attribute and tag, and the deleted state; values only as sha256."""
        self._purge_due()
        return {
            "secrets": [
                {
                    "name": secret.name,
                    "deleted": None
                    if not secret.is_deleted
                    else {
                        "deletedDate": secret.deleted_date,
                        "scheduledPurgeDate": secret.scheduled_purge_date,
                    },
                    "latest": secret.latest.version,
                    "managed": secret.managed,
                    "versions": [
                        {
                            "version": v.version,
                            "sha256": hashlib.sha256(v.value.encode()).hexdigest(),
                            "contentType": v.content_type,
                            "tags": v.tags,
                            "attributes": _attributes(v),
                        }
                        for v in secret.versions
                    ],
                }
                for secret in (self._secrets[k] for k in self._order)
            ]
        }

    def issued_values(self) -> list[str]:
        return list(dict.fromkeys(self._values))


# -- wire format --------------------------------------------------------------------------


def _attributes(v: Version) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": v.enabled}
    if v.nbf is not None:
        attributes["nbf"] = v.nbf
    if v.exp is not None:
        attributes["exp"] = v.exp
    attributes.update(
        created=v.created, updated=v.updated, recoveryLevel=RECOVERY_LEVEL, recoverableDays=RECOVERABLE_DAYS
    )
    return attributes


def _item(vault_url: str, secret: Secret, v: Version, *, with_version: bool) -> dict[str, Any]:
    """SecretItem; a SecretBundle without its value."""
    body: dict[str, Any] = {
        "id": f"{vault_url}/secrets/{secret.name}" + (f"/{v.version}" if with_version else ""),
        "attributes": _attributes(v),
    }
    if v.content_type is not None:
        body["contentType"] = v.content_type
    if v.tags is not None:
        body["tags"] = v.tags
    if secret.managed:
        body["managed"] = True
    return body


def _bundle(vault_url: str, secret: Secret, v: Version, *, with_value: bool) -> dict[str, Any]:
    body = _item(vault_url, secret, v, with_version=True)
    if secret.managed:  # the certificate's key, of the same version
        body["kid"] = f"{vault_url}/keys/{secret.name}/{v.version}"
    return {"value": v.value, **body} if with_value else body


def _deleted(vault_url: str, secret: Secret, *, item: bool) -> dict[str, Any]:
    """DeletedSecretBundle (the latest version) or, for lists, DeletedSecretItem."""
    body = _item(vault_url, secret, secret.latest, with_version=not item)
    return {
        "recoveryId": f"{vault_url}/deletedsecrets/{secret.name}",
        "deletedDate": secret.deleted_date,
        "scheduledPurgeDate": secret.scheduled_purge_date,
        **body,
    }


def _reply(request: Request, body: dict[str, Any] | None, status: int = 200) -> Response:
    headers = {"x-ms-request-id": request_id_of(request)}
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _api_version(request: Request) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise _bad("The 'api-version' query parameter is missing.")
    if version not in API_VERSIONS:
        raise _bad(
            f"The specified version ({version}) is not recognized. "
            f"Consider using the latest supported version ({API_VERSIONS[0]})."
        )
    return version


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not _NAME.fullmatch(name):
        raise _bad(f"The request URI contains an invalid name: {name}")
    return name


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise _bad("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    return body


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """The Version fields a set or update body gives, checked."""
    changes: dict[str, Any] = {}
    if body.get("contentType") is not None:
        if not isinstance(body["contentType"], str):
            raise _bad("contentType must be a string.")
        changes["content_type"] = body["contentType"]
    if body.get("tags") is not None:
        tags = body["tags"]
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise _bad("tags must map strings to strings.")
        if len(tags) > MAX_TAGS:
            raise _bad(f"Too many tags: {len(tags)}. A maximum of {MAX_TAGS} tags is allowed.")
        changes["tags"] = dict(tags)
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _bad("attributes must be an object.")
    if attributes.get("enabled") is not None:
        if not isinstance(attributes["enabled"], bool):
            raise _bad("attributes.enabled must be a boolean.")
        changes["enabled"] = attributes["enabled"]
    for key in ("nbf", "exp"):
        if attributes.get(key) is not None:
            if isinstance(attributes[key], bool) or not isinstance(attributes[key], int | float):
                raise _bad(f"attributes.{key} must be seconds since the epoch.")
            changes[key] = int(attributes[key])
    return changes


def _page_request(request: Request) -> tuple[int, str | None]:
    """A listing's page size (``maxresults``, 1 to 25, 25 when absent) and skip token."""
    raw = request.query_params.get("maxresults", str(MAX_PAGE_SIZE))
    try:
        size = int(raw)
    except ValueError:
        raise _bad(f"Invalid maxresults: {raw}") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad(f"maxresults must be between 1 and {MAX_PAGE_SIZE}.")
    return size, request.query_params.get("$skiptoken")


def _page_body(
    request: Request, api_version: str, size: int, page: list[tuple[str, dict[str, Any]]], more: bool
) -> dict[str, Any]:
    """A page's JSON: its items and, when ``more`` follow, a ``nextLink`` whose skip token is
    the last key served."""
    next_link = None
    if more:
        base = str(request.base_url).rstrip("/")
        next_link = (
            f"{base}{request.url.path}?api-version={api_version}&$skiptoken={page[-1][0]}&maxresults={size}"
        )
    return {"value": [body for _, body in page], "nextLink": next_link}


def _page(request: Request, api_version: str, keyed: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One page of ``keyed`` (sorted by key)."""
    size, token = _page_request(request)
    remaining = [item for item in keyed if token is None or item[0] > token]
    return _page_body(request, api_version, size, remaining[:size], len(remaining) > size)


def _secrets_page(
    request: Request,
    api_version: str,
    vault: Vault,
    item: Callable[[Secret], dict[str, Any]],
    *,
    deleted: bool,
) -> dict[str, Any]:
    """One page of the vault's secrets (``deleted``: soft-deleted ones) in name order, read
    from the vault's ordered index: one more than the page is looked at, to know whether
    another page follows."""
    size, token = _page_request(request)
    secrets = vault.secrets_after(token, size + 1, deleted=deleted)
    page = [(s.name.lower(), item(s)) for s in secrets[:size]]
    return _page_body(request, api_version, size, page, len(secrets) > size)


Handler = Callable[[Request, "Vault", str], Awaitable[Response]]


def routes(vault_url: str, identity: IdentityPlatform, current_vault: Callable[[], Vault]) -> list[BaseRoute]:
    """The vault's REST API at ``vault_url``, authenticated by ``identity``; ``current_vault``
    gives the vault of the moment (a reset replaces it)."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            identity.authenticate(request, (VAULT_AUDIENCE,))
            api_version = _api_version(request)
            return await handler(request, current_vault(), api_version)

        return run

    async def set_secret(request: Request, vault: Vault, _: str) -> Response:
        name = _name(request)
        body = await _body(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise _bad("The secret value is required and must be a string.")
        secret, version = vault.set(name, value, **_changes(body))
        return _reply(request, _bundle(vault_url, secret, version, with_value=True))

    async def get_secret(request: Request, vault: Vault, _: str) -> Response:
        secret, version = vault.get(_name(request), request.path_params.get("version", ""))
        return _reply(request, _bundle(vault_url, secret, version, with_value=True))

    async def update_secret(request: Request, vault: Vault, _: str) -> Response:
        name = _name(request)
        changes = _changes(await _body(request))
        secret, version = vault.update(name, request.path_params.get("version", ""), **changes)
        return _reply(request, _bundle(vault_url, secret, version, with_value=False))

    async def list_secrets(request: Request, vault: Vault, api_version: str) -> Response:
        def item(secret: Secret) -> dict[str, Any]:
            return _item(vault_url, secret, secret.latest, with_version=False)

        return _reply(request, _secrets_page(request, api_version, vault, item, deleted=False))

    async def list_versions(request: Request, vault: Vault, api_version: str) -> Response:
        secret, versions = vault.versions(_name(request))
        keyed = [(v.version, _item(vault_url, secret, v, with_version=True)) for v in versions]
        return _reply(request, _page(request, api_version, keyed))

    async def delete_secret(request: Request, vault: Vault, _: str) -> Response:
        return _reply(request, _deleted(vault_url, vault.delete(_name(request)), item=False))

    async def get_deleted(request: Request, vault: Vault, _: str) -> Response:
        return _reply(request, _deleted(vault_url, vault.deleted(_name(request)), item=False))

    async def list_deleted(request: Request, vault: Vault, api_version: str) -> Response:
        def item(secret: Secret) -> dict[str, Any]:
            return _deleted(vault_url, secret, item=True)

        return _reply(request, _secrets_page(request, api_version, vault, item, deleted=True))

    async def recover(request: Request, vault: Vault, _: str) -> Response:
        secret = vault.recover(_name(request))
        return _reply(request, _bundle(vault_url, secret, secret.latest, with_value=False))

    async def purge(request: Request, vault: Vault, _: str) -> Response:
        vault.purge(_name(request))
        return _reply(request, None, status=204)

    return [
        Route("/secrets", endpoint(list_secrets), methods=["GET"]),
        Route("/secrets/{name}", endpoint(set_secret), methods=["PUT"]),
        Route("/secrets/{name}", endpoint(get_secret), methods=["GET"]),
        Route("/secrets/{name}", endpoint(delete_secret), methods=["DELETE"]),
        # the SDK asks for the latest version as /secrets/{name}/ (an empty version)
        Route("/secrets/{name}/", endpoint(get_secret), methods=["GET"]),
        Route("/secrets/{name}/", endpoint(update_secret), methods=["PATCH"]),
        Route("/secrets/{name}/versions", endpoint(list_versions), methods=["GET"]),
        Route("/secrets/{name}/{version}", endpoint(get_secret), methods=["GET"]),
        Route("/secrets/{name}/{version}", endpoint(update_secret), methods=["PATCH"]),
        Route("/deletedsecrets", endpoint(list_deleted), methods=["GET"]),
        Route("/deletedsecrets/{name}", endpoint(get_deleted), methods=["GET"]),
        Route("/deletedsecrets/{name}", endpoint(purge), methods=["DELETE"]),
        Route("/deletedsecrets/{name}/recover", endpoint(recover), methods=["POST"]),
    ]
