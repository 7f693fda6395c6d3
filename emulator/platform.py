"""The emulated platform's whole state: one tenant, one key vault, one storage account, one Azure
subscription (Resource Manager's role assignments; the Health Data Services workspace's FHIR and
DICOM services), one Service Bus namespace, one clock, the fault engine and the request log.
Handlers reach everything through ``Platform``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from emulator.arm import ResourceManager
from emulator.clock import Clock
from emulator.directory import Directory
from emulator.faults import FaultEngine
from emulator.healthdata import HealthService
from emulator.identity import MANAGEMENT_AUDIENCE, IdentityPlatform
from emulator.keyvault import Vault
from emulator.keyvault_certificates import CertificateStore
from emulator.keyvault_keys import KeyStore
from emulator.seed import SUBSCRIPTION_ID, AzureSeed, Seeded, new_client_secret, seed, seed_azure
from emulator.servicebus.auth import entra_verifier
from emulator.servicebus.namespace import Namespace
from emulator.storage import ACCOUNT, Storage

DEFAULT_POLICY: dict[str, Any] = {
    "maxSecretLifetime": None,
    "secretsAllowed": True,
    "maxCertificateLifetime": None,
}


class Platform:
    def __init__(self, base_url: str = "https://127.0.0.1") -> None:
        self.base_url = base_url
        self.tenant_id = str(uuid.uuid4())
        self.clock = Clock()
        self.faults = FaultEngine()
        self.identity = IdentityPlatform(
            base_url=base_url, tenant_id=self.tenant_id, clock=self.clock, directory=lambda: self.directory
        )
        self._service_secret = new_client_secret()
        self._admin_secret = new_client_secret()
        # every secret value ever issued or stored, across resets (the leak detector's list)
        self.issued_secrets: set[str] = set()
        self.directory = Directory(self.clock, self.tenant_id)
        self.seeded: Seeded = seed(self.directory, self._service_secret, self._admin_secret)
        self.vault = Vault(self.clock)
        # the vault's keys and certificates, which share its secrets as Key Vault's do
        self.keys = KeyStore(self.clock)
        self.certificates = CertificateStore(self.clock, self.vault, self.keys)
        # The function app's own storage account (AzureWebJobsStorage): the per-application leases.
        self.storage = Storage(self.clock)
        # Tenant app-management policy: {"maxSecretLifetime": "P90D" | None, "secretsAllowed": bool,
        # "maxCertificateLifetime": "P180D" | None}
        self.policy: dict[str, Any] = dict(DEFAULT_POLICY)
        # Azure Resource Manager (role assignments) and the Health Data Services data planes
        self.arm = ResourceManager(self.clock, self.directory, self.tenant_id, SUBSCRIPTION_ID)
        self.azure: AzureSeed = seed_azure(self.arm, self.seeded)
        self.fhir = HealthService.of("fhir", base_url, self.azure.fhir)
        self.dicom = HealthService.of("dicom", base_url, self.azure.dicom)
        self.identity.resources.add(self.fhir.url)
        # Service Bus: the queues the AMQP broker and the REST send share (its key is random per
        # run and stays across resets; the leak detector knows it as an issued secret)
        self.servicebus = Namespace(self.clock, entra_verifier(self.identity))
        self.issued_secrets.add(self.servicebus.key)

    def reset(self) -> None:
        """Back to the seeded tenant, an empty vault, the seeded subscription (its role
        assignments, the default propagation delay) and empty queues with their default
        settings; the identities and the Service Bus key stay."""
        self.issued_secrets |= (
            set(self.directory.secret_values.values())
            | set(self.vault.issued_values())
            | set(self.certificates.issued_values())
        )
        self.clock.reset()
        self.faults.reset()
        self.directory = Directory(self.clock, self.tenant_id)
        self.seeded = seed(self.directory, self._service_secret, self._admin_secret)
        self.vault = Vault(self.clock)
        self.keys = KeyStore(self.clock)
        self.certificates = CertificateStore(self.clock, self.vault, self.keys)
        self.storage = Storage(self.clock)
        self.policy = dict(DEFAULT_POLICY)
        self.arm = ResourceManager(self.clock, self.directory, self.tenant_id, SUBSCRIPTION_ID)
        self.azure = seed_azure(self.arm, self.seeded)
        self.servicebus.reset()

    def settings(self, ca_file: str) -> dict[str, str]:
        """The app settings the function app needs to run against this emulator, plus the
        admin identity tests use to inspect the tenant."""
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.seeded.service.app_id,
            "AZURE_CLIENT_SECRET": self.seeded.service.secret,
            "AZURE_AUTHORITY_HOST": self.base_url,
            "GRAPH_BASE_URL": f"{self.base_url}/v1.0",
            "KEY_VAULT_URL": f"{self.base_url}/",
            "AzureWebJobsStorage__blobServiceUri": f"{self.base_url}/{ACCOUNT}",
            "RESOURCE_MANAGER_URL": self.base_url,
            "RESOURCE_MANAGER_AUDIENCE": MANAGEMENT_AUDIENCE,
            "HEALTH_DATA_SERVICES": json.dumps(
                {
                    "fhir": {"resourceId": self.fhir.resource_id, "url": self.fhir.url},
                    "dicom": {"resourceId": self.dicom.resource_id, "url": self.dicom.url},
                },
                separators=(",", ":"),
            ),
            "PLATFORM_CA_FILE": ca_file,
            "EMULATOR_URL": self.base_url,
            "EMULATOR_ADMIN_CLIENT_ID": self.seeded.admin.app_id,
            "EMULATOR_ADMIN_CLIENT_SECRET": self.seeded.admin.secret,
            "EMULATOR_OIDC_ISSUER": self.identity.test_issuer.url,
            # The service's issuer allow-list: the test issuer alone, so tests and the demo may use it.
            "FEDERATED_ISSUERS": self.identity.test_issuer.url,
            **self.servicebus_settings(),
        }

    def servicebus_settings(self) -> dict[str, str]:
        """The Service Bus connection (AMQP, plain TCP, as ``UseDevelopmentEmulator=true``
        asks), its identity-based form, and the REST send's base URL and key."""
        namespace = self.servicebus
        if namespace.amqp_port is None:
            return {}
        return {
            "ServiceBusConnection": namespace.connection_string(),
            "ServiceBusConnection__fullyQualifiedNamespace": namespace.amqp_host,
            "SERVICE_BUS_REST_URL": self.base_url,
            "SERVICE_BUS_SAS_KEY_NAME": namespace.key_name,
            "SERVICE_BUS_SAS_KEY": namespace.key,
            # The app settings the Functions host resolves the triggers' %NAME% expressions
            # from (they have no defaults there): the emulated namespace's queues, and the timer.
            "REGISTRATION_QUEUE": "app-registration-requests",
            "RESULTS_QUEUE": "app-registration-results",
            "ROTATION_QUEUE": "app-credential-rotation",
            "EVENTS_QUEUE": "app-credential-events",
            "REPLY_SESSION_QUEUE": "app-registration-replies-session",
            "ROTATION_SCHEDULE": "0 0 3 * * *",
        }
