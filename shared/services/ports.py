"""The narrow ports the workflows call, one per platform service. The adapters implement them
(shared.adapters), and tests or benchmarks may hand in anything of the same shape.

Each method's contract (what it returns, raises and needs) is documented on the adapter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from shared.domain.data_access import Assignment, Existing
from shared.domain.federated import FederatedCredential
from shared.domain.policy import RequestedCertificate
from shared.domain.records import (
    AppRecord,
    CertificateVersion,
    DesiredApplication,
    Grant,
    KeyInfo,
    NewKey,
    NewPassword,
    ResourceApi,
    RoleAssignment,
    StoredVersion,
)
from shared.domain.secret_value import SecretValue
from shared.messages.envelope import Outbound


class Applications(Protocol):
    """Applications, their service principals, client secrets and federated identity
    credentials (Microsoft Graph)."""

    async def create_application(self, unique_name: str, desired: DesiredApplication) -> AppRecord | None: ...

    def known_to_exist(self, unique_name: str) -> bool: ...

    async def update_application(self, existing: AppRecord, desired: DesiredApplication) -> AppRecord: ...

    async def get_application_by_unique_name(
        self, unique_name: str, dependent: bool = False
    ) -> AppRecord | None: ...

    async def get_application(self, object_id: str, dependent: bool = True) -> AppRecord: ...

    async def delete_application(self, object_id: str) -> bool: ...

    def owned_applications(
        self, owner_sp_id: str, page_size: int = ..., select: Sequence[str] = ...
    ) -> AsyncIterator[AppRecord]: ...

    async def owner_ids(self, object_id: str) -> set[str]: ...

    async def service_principal_id_of(self, app_id: str) -> str: ...

    async def add_password(
        self, object_id: str, display_name: str, start: dt.datetime, end: dt.datetime
    ) -> NewPassword: ...

    async def remove_password(self, object_id: str, key_id: str) -> bool: ...

    async def federated_credentials(
        self, object_id: str, dependent: bool = False
    ) -> list[FederatedCredential]: ...

    async def create_federated_credential(
        self, object_id: str, credential: FederatedCredential
    ) -> FederatedCredential: ...

    async def update_federated_credential(self, object_id: str, credential: FederatedCredential) -> None: ...

    async def delete_federated_credential(self, object_id: str, credential_id: str) -> bool: ...

    async def upsert_service_principal(self, app_id: str) -> str: ...

    async def delete_service_principal_of(self, app_id: str) -> bool: ...


class KeyCredentials(Protocol):
    """Applications' certificate credentials (Microsoft Graph keyCredentials, addKey, removeKey)."""

    async def add_key(self, object_id: str, new: NewKey, proof: str) -> KeyInfo: ...

    async def add_key_by_update(self, object_id: str, new: NewKey) -> None: ...

    async def remove_key(self, object_id: str, key_id: str, proof: str | None) -> bool: ...


class Consent(Protocol):
    """Resource APIs and the admin consent a client holds on them (Microsoft Graph)."""

    async def find_resource(self, reference: str, *, fresh: bool = False) -> ResourceApi | None: ...

    def kept_resource(self, reference: str) -> ResourceApi | None: ...

    async def grants_of(self, client_sp_id: str) -> list[Grant]: ...

    async def create_grant(self, client_sp_id: str, resource_sp_id: str, scopes: Sequence[str]) -> None: ...

    async def update_grant(self, grant_id: str, scopes: Sequence[str]) -> None: ...

    async def delete_grant(self, grant_id: str) -> None: ...

    async def role_assignments_of(self, client_sp_id: str) -> list[RoleAssignment]: ...

    async def assign_role(self, client_sp_id: str, resource_sp_id: str, app_role_id: str) -> None: ...

    async def delete_role_assignment(self, client_sp_id: str, assignment_id: str) -> None: ...


class Vault(Protocol):
    """The applications' secrets and their versions (Key Vault)."""

    async def versions(self, name: str) -> list[StoredVersion]: ...

    def latest_versions(self, prefix: str = "") -> AsyncIterator[tuple[str, StoredVersion]]: ...

    async def latest(self, name: str) -> StoredVersion | None: ...

    async def store(
        self,
        name: str,
        value: SecretValue,
        *,
        tags: Mapping[str, str],
        not_before: dt.datetime,
        expires_on: dt.datetime,
    ) -> StoredVersion: ...

    async def disable(self, name: str, version: str, tags: Mapping[str, str] | None = None) -> None: ...

    async def write_record(self, name: str, tags: Mapping[str, str]) -> StoredVersion: ...

    async def read(self, name: str, version: str | None = None) -> SecretValue: ...


class Certificates(Protocol):
    """The applications' certificates and signing with their keys (Key Vault)."""

    async def versions(self, name: str) -> list[CertificateVersion]: ...

    async def latest(self, name: str) -> CertificateVersion | None: ...

    async def get(self, name: str, version: str) -> CertificateVersion: ...

    async def create(
        self, name: str, request: RequestedCertificate, issuer: str, tags: Mapping[str, str]
    ) -> CertificateVersion: ...

    async def disable(self, name: str, version: str) -> None: ...

    async def sign(self, key_id: str, data: bytes) -> bytes: ...


class RoleAssignments(Protocol):
    """Azure RBAC data-role assignments on FHIR and DICOM services (Azure Resource Manager)."""

    async def assigned(self, scope: str, principal_id: str) -> list[Existing]: ...

    async def assign(self, assignment: Assignment) -> bool: ...

    async def remove(self, assignment: Assignment) -> bool: ...


class Outbox(Protocol):
    """Messages the service sends: replies, the rotation fan-out, events (Service Bus)."""

    async def send(self, messages: Sequence[Outbound]) -> None: ...

    async def prepare(self, queue: str) -> None: ...


class Leases(Protocol):
    """Per-application exclusivity: one blob lease per application in the function app's own
    storage account (Azure Storage, ``AzureWebJobsStorage``)."""

    async def acquire(self, name: str, seconds: int) -> str | None: ...

    async def renew(self, name: str, lease_id: str) -> bool: ...

    async def release(self, name: str, lease_id: str) -> None: ...
