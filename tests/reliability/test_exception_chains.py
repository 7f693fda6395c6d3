"""No secret reachable from an exception object: not its message, args, ``__cause__`` or
``__context__`` chain, suppressed or not (issue 11). The leak detector walks every exception a
function raises (tests/leaks.py ``exception_text``); these tests make the service raise after
it held a secret value, and check that what it raised carries none."""

from __future__ import annotations

import pytest

from emulator.launcher import RunningEmulator
from shared.domain.errors import TransientError
from tests import harness
from tests.e2e.tenant import Tenant
from tests.e2e.test_registration import sample
from tests.leaks import find_leaks, known_secrets
from tests.reachable import exception_text

# Every Key Vault write of a secret answers 503 until azure-core's retries give up.
VAULT_WRITE_FAILS = {"kind": "status", "status": 503, "retryAfter": 0, "service": "keyvault", "method": "PUT"}


async def test_a_failed_key_vault_write_raises_an_error_that_holds_no_secret(
    emulator: RunningEmulator,
) -> None:
    # A first registration lets the Key Vault client learn the vault's challenge, so that the
    # failing write below carries its body (the secret), as every write after the first does.
    assert (await harness.register(sample("confidential-web-client")))["status"] == "succeeded"
    emulator.admin.faults([VAULT_WRITE_FAILS])

    with pytest.raises(TransientError) as raised:
        await harness.register(sample("service-client"))

    secrets = known_secrets(emulator.admin.issued_secrets(), emulator.settings)
    assert find_leaks([("the raised error", exception_text(raised.value))], secrets) == []
    # ...and nothing was left behind: the credential went with its only copy of the value
    emulator.admin.clear_faults()
    app = Tenant.read(emulator).app("dicom-ingest-prod")
    assert app["passwordCredentials"] == []


def test_the_walker_finds_a_secret_deep_in_a_suppressed_context() -> None:
    secret = "s3cr3t-value-that-is-long-enough"

    class Request:
        def __init__(self) -> None:
            self.body = b'{"value": "' + secret.encode() + b'"}'

    class SdkError(Exception):
        def __init__(self) -> None:
            super().__init__("503")
            self.request = Request()

    try:
        try:
            raise SdkError()
        except SdkError:
            raise TransientError("KeyVaultUnavailable", "store: 503") from None
    except TransientError as error:
        text = exception_text(error)
    assert [leak.where for leak in find_leaks([("error", text)], {secret})] == ["error"]
