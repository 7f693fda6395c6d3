"""Microsoft Graph gateway for applications' certificate credentials (``keyCredentials``).

Graph offers two ways to add a certificate, and the service uses both as Microsoft documents
them: ``addKey`` with a proof of possession signed by one of the application's current
certificates, and, for an application that has no certificate the service can prove, an update
of the ``keyCredentials`` collection, which *replaces* it: the existing keys are read (with
their ``key``, which Graph returns only for one object with ``$select=keyCredentials``) and
sent back with the new one. ``removeKey`` also wants a proof.

Every method says what it returns, what it raises (shared.domain.errors) and the permission it
needs: ``Application.ReadWrite.OwnedBy`` and ownership of the application, for all of them.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from shared.adapters.graph.calls import GraphCalls
from shared.domain.certificates import thumbprint_from_identifier
from shared.domain.errors import NotFound, PermanentError, TransientError
from shared.domain.records import KeyInfo, NewKey

if TYPE_CHECKING:
    from msgraph.generated.models.key_credential import KeyCredential

CERTIFICATE_TYPE = "AsymmetricX509Cert"


def utc(value: dt.datetime | None) -> dt.datetime:
    """A Graph timestamp as an aware UTC datetime (a missing one as the earliest)."""
    if value is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def graph_time(value: str | None) -> dt.datetime:
    """A Graph timestamp from its JSON, as kiota reads it, as an aware UTC datetime."""
    from kiota_abstractions.date_utils import datetime_from_iso_format_compat

    return utc(datetime_from_iso_format_compat(value) if value else None)


def key_info_from_json(credential: dict[str, Any]) -> KeyInfo:
    """``key_info`` of a key credential read as JSON (``GraphCalls.json``)."""
    identifier = credential.get("customKeyIdentifier")
    return KeyInfo(
        key_id=str(credential.get("keyId")),
        display_name=credential.get("displayName") or "",
        thumbprint=thumbprint_from_identifier(base64.b64decode(identifier) if identifier else None),
        start=graph_time(credential.get("startDateTime")),
        end=graph_time(credential.get("endDateTime")),
        usage=credential.get("usage") or "",
    )


def key_info(credential: KeyCredential) -> KeyInfo:
    return KeyInfo(
        key_id=str(credential.key_id),
        display_name=credential.display_name or "",
        thumbprint=thumbprint_from_identifier(credential.custom_key_identifier),
        start=utc(credential.start_date_time),
        end=utc(credential.end_date_time),
        usage=credential.usage or "",
    )


def _key_credential(new: NewKey) -> KeyCredential:
    from msgraph.generated.models.key_credential import KeyCredential

    return KeyCredential(
        custom_key_identifier=bytes.fromhex(new.thumbprint),
        display_name=new.display_name,
        key=new.cer,
        start_date_time=new.start,
        end_date_time=new.end,
        type=CERTIFICATE_TYPE,
        usage="Verify",
    )


class KeyCredentialsGateway:
    """Attaching and removing certificates' public parts, through one ``GraphCalls``."""

    def __init__(self, calls: GraphCalls) -> None:
        self.calls = calls

    async def add_key(self, object_id: str, new: NewKey, proof: str) -> KeyInfo:
        """Attach ``new`` with ``addKey``; ``proof`` is signed by a current certificate of the
        application. Not retried on a lost response (the caller finds the key by thumbprint).

        Returns the key credential. Raises ``PolicyViolation`` when a tenant app-management
        policy refuses it, ``PermanentError`` for a refused proof, ``TransientError``,
        ``PermissionDenied``.
        """
        from msgraph.generated.applications.item.add_key.add_key_post_request_body import (
            AddKeyPostRequestBody,
        )

        body = AddKeyPostRequestBody(key_credential=_key_credential(new), proof=proof)
        builder = self.calls.client.applications.by_application_id(object_id).add_key
        created = await self.calls.call(
            f"add key to {object_id}",
            lambda: builder.post(body),
            write=True,
            idempotent=False,
            dependent=True,
        )
        if created is None:
            raise TransientError("EmptyResponse", "addKey answered without the key credential")
        return key_info(created)

    async def add_key_by_update(self, object_id: str, new: NewKey) -> None:
        """Attach ``new`` by updating the application's ``keyCredentials`` with the existing
        ones kept (for an application without a certificate that can sign a proof). A key with
        ``new``'s thumbprint already there is not added again.

        Raises ``PolicyViolation``, ``NotFound``, ``TransientError``, ``PermissionDenied``.
        """
        from msgraph.generated.models.application import Application

        existing = await self._keys_with_material(object_id)
        if any(thumbprint_from_identifier(k.custom_key_identifier) == new.thumbprint for k in existing):
            return
        body = Application(key_credentials=[*existing, _key_credential(new)])
        builder = self.calls.client.applications.by_application_id(object_id)
        await self.calls.call(f"update keys of {object_id}", lambda: builder.patch(body), write=True)

    async def remove_key(self, object_id: str, key_id: str, proof: str | None) -> bool:
        """Remove one key credential: ``removeKey`` with ``proof``, or (``proof`` None: no
        certificate of the application can sign one) an update without it.

        Returns False when it (or the app) was already gone. Raises ``PermanentError``,
        ``TransientError``, ``PermissionDenied``.
        """
        if proof is None:
            return await self._remove_by_update(object_id, key_id)
        from msgraph.generated.applications.item.remove_key.remove_key_post_request_body import (
            RemoveKeyPostRequestBody,
        )

        body = RemoveKeyPostRequestBody(key_id=uuid.UUID(key_id), proof=proof)
        builder = self.calls.client.applications.by_application_id(object_id).remove_key
        try:
            # Removing a key twice is harmless, so a lost response may be retried.
            await self.calls.call(f"remove key {key_id}", lambda: builder.post(body), write=True)
        except NotFound:
            return False
        except PermanentError as error:
            if "no key credential" in error.message.lower():
                return False
            raise
        return True

    async def _remove_by_update(self, object_id: str, key_id: str) -> bool:
        from msgraph.generated.models.application import Application

        existing = await self._keys_with_material(object_id)
        kept = [k for k in existing if str(k.key_id) != key_id]
        if len(kept) == len(existing):
            return False
        builder = self.calls.client.applications.by_application_id(object_id)
        await self.calls.call(
            f"update keys of {object_id}",
            lambda: builder.patch(Application(key_credentials=kept)),
            write=True,
        )
        return True

    async def _keys_with_material(self, object_id: str) -> list[KeyCredential]:
        """The application's key credentials with their ``key``, as an update must send them back."""
        app = await self.calls.read_application(
            f"read keys of {object_id}", object_id, ["id", "keyCredentials"], dependent=True
        )
        return list(app.key_credentials or [])
