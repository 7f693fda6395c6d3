"""Shared fixtures: one emulator process per test session, reset before each test that uses it.

``emulator`` starts ``python -m emulator serve`` on a free port and puts its settings.env into
the environment (as the Functions host would put app settings), so the service under test
reads them through ``shared.settings`` exactly as in Azure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from emulator.launcher import RunningEmulator, start
from tests.leaks import LeakDetector, known_secrets

if TYPE_CHECKING:
    from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start(tmp_path_factory.mktemp("emulator"))
    # WARM_UP off: a test sees only its own requests in the emulator's log, whichever test of
    # the session builds the clients first (tests/e2e/test_warm_up.py turns it on).
    # VAULT_AUDIT_DAYS 1: every sweep lists the vault, whatever day a test's clock shows
    # (tests/e2e/test_rotation_vault_audit.py runs the days between audits).
    settings = {**running.settings, "WARM_UP": "false", "VAULT_AUDIT_DAYS": "1"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        running.stop()


@pytest.fixture
def emulator(emulator_process: RunningEmulator) -> RunningEmulator:
    """The emulator, reset to the seeded tenant with no faults, an empty vault and the real time."""
    emulator_process.admin.reset()
    from shared import testing
    from tests import harness

    harness.forget()
    testing.forget()  # what the process kept of the tenant before (resource APIs) is gone
    return emulator_process


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _close_platform_clients() -> AsyncIterator[None]:  # and the harness's Service Bus client
    """The service builds its SDK clients once per process; close them when the session ends."""
    yield
    from shared.testing import reset_clients

    await reset_clients()


@pytest.fixture
async def admin_arm(emulator: RunningEmulator) -> AsyncIterator[AuthorizationManagementClient]:
    """Resource Manager (azure-mgmt-authorization) as the tenant's administrator, Owner on the
    emulated subscription."""
    from tests.emulator.clients import admin_credential, authorization_client

    async with (
        admin_credential(emulator.settings) as cred,
        authorization_client(emulator.settings, cred) as client,
    ):
        yield client


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Change app settings for one test (the service's dependencies are rebuilt with them)."""
    from shared import testing
    from shared.settings import get_settings

    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        testing.forget()

    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()
    testing.forget()


@pytest.hookimpl(trylast=True)  # after ``-m`` has deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order that keeps ``make test`` short: each of the ``long`` tests heads the share of
    the run a worker starts with, then the reliability tests, then the rest.

    Under ``-n N --dist worksteal`` pytest-xdist deals the tests out in N runs of consecutive
    items, sized as below, and an idle worker steals from the end of a busy one's queue. A long
    test placed anywhere else can start late, or behind another long one on the same worker,
    and become the run's tail; the short tests fill the gaps around the long ones."""
    long = [item for item in items if item.get_closest_marker("long")]
    rest = [item for item in items if not item.get_closest_marker("long")]
    rest.sort(key=lambda item: not item.nodeid.startswith("tests/reliability/"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    heads, rest = long[:workers], long[workers:] + rest
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for worker in range(workers):
        share = remaining // (workers - worker)  # how worksteal sizes a worker's first run
        head = heads[worker : worker + 1]
        taken = max(0, share - len(head))
        ordered += head + rest[:taken]
        rest = rest[taken:]
        remaining -= share
    items[:] = ordered + rest


# ---------------------------------------------------------------- the secret-leak detector

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    # The call's report (its exception and traceback) is what the leak detector reads at teardown.
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture(autouse=True)
def leak_detector(request: pytest.FixtureRequest) -> Iterator[LeakDetector]:
    """Fails a test that used the emulator if a secret value appears in a log record, an
    exception, a function output or a dead-letter reason (see tests/leaks.py)."""
    used_emulator = "emulator_process" in request.fixturenames
    running = request.getfixturevalue("emulator_process") if used_emulator else None
    detector = LeakDetector()
    detector.start()
    try:
        yield detector
    finally:
        detector.stop()
    if running is None:
        return
    report = request.node.stash.get(_CALL_REPORT, None)
    extra = [("the test's failure report", str(report.longrepr))] if report and report.longrepr else []
    leaks = detector.check(known_secrets(running.admin.issued_secrets(), running.settings), extra)
    if leaks:
        pytest.fail("secret leak: " + "; ".join(sorted({str(leak) for leak in leaks})), pytrace=False)
