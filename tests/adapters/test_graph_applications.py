"""The applications gateway against the emulator: applications, service principals and client
secrets, each method's documented contract (returns, raises), through the real SDK clients."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from emulator.launcher import RunningEmulator
from shared.adapters.graph.applications import ApplicationsGateway
from shared.domain.errors import NotFound, PermissionDenied, ReplicationPending, TransientError
from shared.domain.secret_value import SecretValue
from shared.services.dependencies import Dependencies
from tests.adapters.tenant_objects import OWNER, TAGS, admin_app, apps_named, desired, faults_seen, new_app

START = dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.UTC)
END = dt.datetime(2026, 7, 15, 9, 30, tzinfo=dt.UTC)


# ---------------------------------------------------------------- applications


async def test_create_only_while_the_name_is_free_then_update_by_id(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await applications.create_application("adapter-upsert", desired("First"))
    assert app is not None
    assert app.unique_name == "adapter-upsert" and app.display_name == "First"
    assert app.tags == TAGS and app.passwords == ()
    assert app.service_management_reference == OWNER

    # Taken now: a second create changes nothing.
    assert await applications.create_application("adapter-upsert", desired("Second")) is None
    [stored] = apps_named(emulator, "adapter-upsert")
    assert stored["displayName"] == "First"

    again = await applications.update_application(app, desired("Second"))
    assert (again.object_id, again.app_id) == (app.object_id, app.app_id)
    assert again.display_name == "Second"
    assert again == await applications.get_application_by_unique_name("adapter-upsert")
    [stored] = apps_named(emulator, "adapter-upsert")
    assert stored["displayName"] == "Second"
    assert stored["web"]["redirectUris"] == ["https://app.contoso.com/signin"]


async def test_get_application_by_unique_name(applications: ApplicationsGateway) -> None:
    assert await applications.get_application_by_unique_name("adapter-missing") is None
    app = await new_app(applications, "adapter-by-name")
    assert await applications.get_application_by_unique_name("adapter-by-name") == app


async def test_get_application_by_object_id(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-by-id")
    assert await applications.get_application(app.object_id) == app
    with pytest.raises(NotFound):
        await applications.get_application(str(uuid.uuid4()), dependent=False)


async def test_a_missing_application_right_after_a_create_is_replication_pending(
    quick_retries: ApplicationsGateway,
) -> None:
    # dependent (the default): a 404 may be replication lag, so it is retried, then surfaces
    # as ReplicationPending (a transient error: the delivery is tried again later)
    with pytest.raises(ReplicationPending):
        await quick_retries.get_application(str(uuid.uuid4()))


async def test_delete_application_then_again(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-delete")
    assert await applications.delete_application(app.object_id) is True
    assert await applications.delete_application(app.object_id) is False
    assert await applications.get_application_by_unique_name("adapter-delete") is None
    assert apps_named(emulator, "adapter-delete") == []


async def test_a_delete_whose_response_was_lost_still_reports_the_deletion(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-lost-delete")
    emulator.admin.faults(
        [{"kind": "lost-response", "service": "graph", "method": "DELETE", "path": app.object_id, "nth": 1}]
    )
    assert await applications.delete_application(app.object_id) is True
    assert apps_named(emulator, "adapter-lost-delete") == []


async def test_owned_applications_pages_through_every_application_the_service_owns(
    deps: Dependencies, applications: ApplicationsGateway
) -> None:
    names = {f"adapter-owned-{n}" for n in range(5)}
    for name in sorted(names):
        await new_app(applications, name, name)
    owner = await applications.service_principal_id_of(deps.settings.azure_client_id or "")
    listed = [app.unique_name async for app in applications.owned_applications(owner, page_size=2)]
    assert names <= set(listed)
    assert len(listed) == len(set(listed))


# ---------------------------------------------------------------- the service principal


async def test_service_principal_upsert_lookup_and_delete(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-sp")
    sp_id = await applications.upsert_service_principal(app.app_id)
    assert await applications.upsert_service_principal(app.app_id) == sp_id
    assert await applications.service_principal_id_of(app.app_id) == sp_id
    assert await applications.delete_service_principal_of(app.app_id) is True
    assert await applications.delete_service_principal_of(app.app_id) is False
    with pytest.raises(NotFound):
        await applications.service_principal_id_of(app.app_id)


async def test_service_principal_of_an_unknown_app_id_is_not_found(applications: ApplicationsGateway) -> None:
    with pytest.raises(NotFound):
        await applications.service_principal_id_of(str(uuid.uuid4()))


# ---------------------------------------------------------------- client secrets


async def test_add_password_returns_the_value_once_masked(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-password")
    new = await applications.add_password(app.object_id, "job [managed:ADAPTER-1]", START, END)

    assert isinstance(new.secret, SecretValue)
    value = new.secret.reveal()
    assert value and new.info.hint == value[:3]
    masked = all(value not in text for text in (repr(new.secret), str(new.secret), repr(new), str(new)))
    assert masked
    assert "SecretValue(***)" in repr(new.secret)
    assert new.info.display_name == "job [managed:ADAPTER-1]"
    assert (new.info.start, new.info.end) == (START, END)
    read = await applications.get_application(app.object_id)
    assert [p.key_id for p in read.passwords] == [new.info.key_id]
    [password] = apps_named(emulator, "adapter-password")[0]["passwordCredentials"]
    assert password["secretText"] is None  # Graph lists the credential, never its value


async def test_remove_password_then_again(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-remove")
    new = await applications.add_password(app.object_id, "job", START, END)
    assert await applications.remove_password(app.object_id, new.info.key_id) is True
    assert await applications.remove_password(app.object_id, new.info.key_id) is False
    assert (await applications.get_application(app.object_id)).passwords == ()


async def test_remove_password_of_an_unknown_key_id_or_application(applications: ApplicationsGateway) -> None:
    app = await new_app(applications, "adapter-unknown-key")
    assert await applications.remove_password(app.object_id, str(uuid.uuid4())) is False
    assert await applications.remove_password(str(uuid.uuid4()), str(uuid.uuid4())) is False


async def test_add_password_is_not_retried_on_a_lost_response(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-lost-password")
    emulator.admin.faults([{"kind": "lost-response", "service": "graph", "path": "/addPassword$", "nth": 1}])
    with pytest.raises(TransientError) as lost:
        await applications.add_password(app.object_id, "lost", START, END)
    assert lost.value.code == "LostResponse"
    # the call took effect once; a retry would have made a second secret
    assert [p.display_name for p in (await applications.get_application(app.object_id)).passwords] == ["lost"]


async def test_add_password_is_retried_on_an_explicit_503(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-503-password")
    emulator.admin.faults(
        [{"kind": "status", "service": "graph", "status": 503, "path": "/addPassword$", "times": 1}]
    )
    emulator.admin.clear_requests()
    new = await applications.add_password(app.object_id, "after 503", START, END)
    assert faults_seen(emulator, "graph", "POST", "/addPassword") == ["status:503", None]
    passwords = (await applications.get_application(app.object_id)).passwords
    assert [p.key_id for p in passwords] == [new.info.key_id]


# ---------------------------------------------------------------- errors


async def test_a_503_on_a_read_is_retried(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    app = await new_app(applications, "adapter-503-read")
    emulator.admin.faults(
        [
            {
                "kind": "status",
                "service": "graph",
                "status": 503,
                "method": "GET",
                "path": "uniqueName",
                "times": 2,
            }
        ]
    )
    emulator.admin.clear_requests()
    assert await applications.get_application_by_unique_name("adapter-503-read") == app
    assert faults_seen(emulator, "graph", "GET", "uniqueName") == ["status:503", "status:503", None]


async def test_a_503_that_outlasts_the_retries_is_transient(
    emulator: RunningEmulator, quick_retries: ApplicationsGateway
) -> None:
    emulator.admin.faults(
        [{"kind": "status", "service": "graph", "status": 503, "method": "GET", "path": "uniqueName"}]
    )
    emulator.admin.clear_requests()
    with pytest.raises(TransientError):
        await quick_retries.get_application_by_unique_name("adapter-unavailable")
    attempts = quick_retries.calls.retry.attempts
    assert faults_seen(emulator, "graph", "GET", "uniqueName") == ["status:503"] * attempts


async def test_a_429_on_a_write_is_retried_after_retry_after(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    emulator.admin.faults(
        [
            {
                "kind": "status",
                "service": "graph",
                "status": 429,
                "method": "POST",
                "path": r"^/v1\.0/applications$",
                "retryAfter": 0.2,
                "times": 1,
            }
        ]
    )
    emulator.admin.clear_requests()
    app = await applications.create_application("adapter-throttled", desired())
    assert app is not None and app.unique_name == "adapter-throttled"
    assert faults_seen(emulator, "graph", "POST", "/v1.0/applications") == ["status:429", None]
    assert len(apps_named(emulator, "adapter-throttled")) == 1


async def test_an_application_the_service_does_not_own_is_permission_denied(
    emulator: RunningEmulator, applications: ApplicationsGateway
) -> None:
    theirs = admin_app(emulator, "adapter-not-ours")
    with pytest.raises(PermissionDenied) as denied:
        await applications.delete_application(theirs["id"])
    assert "Application.ReadWrite.OwnedBy" in denied.value.message
    assert await applications.create_application("adapter-not-ours", desired("Taken over")) is None
    read = await applications.get_application_by_unique_name("adapter-not-ours")
    assert read is not None
    with pytest.raises(PermissionDenied):
        await applications.update_application(read, desired("Taken over"))
    with pytest.raises(PermissionDenied):
        await applications.add_password(theirs["id"], "not ours", START, END)
    [unchanged] = apps_named(emulator, "adapter-not-ours")
    assert unchanged["displayName"] == "Someone else's" and unchanged["passwordCredentials"] == []
