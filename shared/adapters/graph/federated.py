"""Microsoft Graph gateway for applications' federated identity credentials
(``/applications/{id}/federatedIdentityCredentials``), part of the applications gateway
(``ApplicationsGateway`` inherits these methods).

Every method says what it returns, what it raises (shared.domain.errors types, never an SDK
error) and the permission it needs: ``Application.ReadWrite.OwnedBy``, and ownership of the
application to change it. Writes go through ``GraphCalls`` (pacing, the lease's fence, retries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.graph.calls import GraphCalls
from shared.domain.errors import NotFound, PermanentError, TransientError
from shared.domain.federated import AUDIENCE, FederatedCredential

if TYPE_CHECKING:
    from msgraph.generated.models.federated_identity_credential import (
        FederatedIdentityCredential,
    )

# Graph answers a second credential of the same name (or issuer and subject) with this code.
SAME_KEY = "Request_MultipleObjectsWithSameKeyValue"


class FederatedCredentialsGateway:
    """Federated identity credentials of applications, through one ``GraphCalls``."""

    def __init__(self, calls: GraphCalls) -> None:
        self.calls = calls

    async def federated_credentials(
        self, object_id: str, dependent: bool = False
    ) -> list[FederatedCredential]:
        """Every federated identity credential of the application (at most 20: one page).

        Raises ``NotFound`` when the application does not exist (``ReplicationPending`` instead
        when ``dependent``, right after a create), ``TransientError``. Needs
        ``Application.ReadWrite.OwnedBy``."""
        builder = self.calls.client.applications.by_application_id(object_id).federated_identity_credentials
        page = await self.calls.call(
            f"list federated credentials of {object_id}", builder.get, dependent=dependent
        )
        return [_record(c) for c in (page.value or [] if page else [])]

    async def create_federated_credential(
        self, object_id: str, credential: FederatedCredential
    ) -> FederatedCredential:
        """Create ``credential`` on the application, with the audience api://AzureADTokenExchange.

        The name is Graph's alternate key, so a create sent twice (a lost response, a
        redelivery) cannot make two: Graph refuses the second (``Request_MultipleObjectsWithSameKeyValue``),
        and then the credential of that name is read back and returned as it is (the caller
        compares it with what it wanted).

        Returns the credential as Graph holds it. Raises ``PermanentError`` when another
        credential already has its issuer and subject, or Graph refuses it (e.g. the 20-credential
        limit), ``PermissionDenied``, ``ReplicationPending`` (right after the app's create),
        ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` and ownership."""
        builder = self.calls.client.applications.by_application_id(object_id).federated_identity_credentials
        body = _body(credential, with_name=True)
        try:
            created = await self.calls.call(
                f"create federated credential {credential.name} on {object_id}",
                lambda: builder.post(body),
                write=True,
                idempotent=True,  # sent twice, the second is refused by name (above), never doubled
                dependent=True,
            )
        except PermanentError as error:
            if error.code != SAME_KEY:
                raise
            existing = await self._by_name(object_id, credential.name)
            if existing is None:  # not the name: the issuer and subject are another's
                raise
            return existing
        if created is None:
            raise TransientError("EmptyResponse", "create federated credential answered without the object")
        return _record(created)

    async def update_federated_credential(self, object_id: str, credential: FederatedCredential) -> None:
        """Set the issuer, subject, description and audience of the credential ``credential.id``
        (its name is immutable). Raises ``NotFound`` when it is gone, ``PermanentError`` when
        another credential has the new issuer and subject, ``PermissionDenied``,
        ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` and ownership."""
        assert credential.id is not None  # an update names an existing credential
        builder = self.calls.client.applications.by_application_id(
            object_id
        ).federated_identity_credentials.by_federated_identity_credential_id(credential.id)
        body = _body(credential, with_name=False)
        await self.calls.call(
            f"update federated credential {credential.name} on {object_id}",
            lambda: builder.patch(body),
            write=True,
        )

    async def delete_federated_credential(self, object_id: str, credential_id: str) -> bool:
        """Delete one federated credential. Returns False when it was already gone. Raises
        ``PermissionDenied``, ``TransientError``. Needs ``Application.ReadWrite.OwnedBy`` and
        ownership."""
        builder = self.calls.client.applications.by_application_id(
            object_id
        ).federated_identity_credentials.by_federated_identity_credential_id(credential_id)
        try:
            await self.calls.call(f"delete federated credential {credential_id}", builder.delete, write=True)
        except NotFound as gone:
            return gone.after_lost_response  # our earlier attempt deleted it
        return True

    async def _by_name(self, object_id: str, name: str) -> FederatedCredential | None:
        # From the list, compared as Graph compares the alternate key (case-insensitively).
        folded = name.casefold()
        found = await self.federated_credentials(object_id)
        return next((c for c in found if c.name.casefold() == folded), None)


def _body(credential: FederatedCredential, *, with_name: bool) -> FederatedIdentityCredential:
    from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential

    return FederatedIdentityCredential(
        name=credential.name if with_name else None,
        issuer=credential.issuer,
        subject=credential.subject,
        description=credential.description,
        audiences=[AUDIENCE],
    )


def _record(credential: FederatedIdentityCredential) -> FederatedCredential:
    return FederatedCredential(
        name=credential.name or "",
        issuer=credential.issuer or "",
        subject=credential.subject or "",
        description=credential.description,
        audiences=tuple(credential.audiences or ()),
        id=str(credential.id) if credential.id else None,
    )
