"""The emulator's bulk copies (``/_emulator/seed/copies``, bench/rotation_sweep.py's 10,000
managed applications) are exactly what the service's registration writes: an application
registered through the workflow and a copy of it have the same shape (ignoring ids, times and
values), the same owners, the same Key Vault versions, and the copy's stored secret works."""

from __future__ import annotations

from typing import Any

from emulator.launcher import RunningEmulator
from tests.e2e.tenant import Tenant, stored_secret_authenticates
from tests.e2e.test_rotation import register

TIMES = {"createdDateTime", "startDateTime", "endDateTime", "created", "updated", "nbf", "exp"}
IDS = {"id", "appId", "keyId", "hint", "version"}  # hint: the first characters of the value


def shape(value: Any, swap: dict[str, str]) -> Any:
    """``value`` without ids, times and values, its own names and ids replaced by placeholders."""
    if isinstance(value, str):
        for old, new in swap.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: shape(v, swap) for k, v in value.items() if k not in TIMES | IDS | {"sha256"}}
    if isinstance(value, list):
        return [shape(v, swap) for v in value]
    return value


def view(tenant: Tenant, unique_name: str) -> dict[str, Any]:
    app = tenant.app(unique_name)
    [sp] = tenant.service_principals(app["appId"])
    owners = tenant.snapshot["owners"]
    secret = tenant.secret(f"app-{unique_name}")
    assert secret is not None
    swap = {unique_name: "<name>", app["id"]: "<objectId>", app["appId"]: "<appId>", sp["id"]: "<spId>"}
    swap |= {p["keyId"]: f"<keyId{n}>" for n, p in enumerate(app["passwordCredentials"])}
    return {
        "application": shape(app, swap),
        "servicePrincipal": shape(sp, swap),
        "owners": sorted(owners.get(app["id"], [])),
        "spOwners": sorted(owners.get(sp["id"], [])),
        "grants": tenant.grants(sp["id"]),
        "assignments": tenant.assignments(sp["id"]),
        "secret": shape({k: v for k, v in secret.items() if k not in ("name", "latest")}, swap),
        "latestIsLast": secret["latest"] == secret["versions"][-1]["version"],
    }


async def test_a_copy_has_the_shape_of_a_registered_application(emulator: RunningEmulator) -> None:
    await register("copy-template")
    emulator.admin.request(
        "POST", "/_emulator/seed/copies", json={"from": "copy-template", "names": ["copy-1"]}
    )
    tenant = Tenant.read(emulator)

    template, copy = view(tenant, "copy-template"), view(tenant, "copy-1")
    assert copy == template
    assert template["owners"] and template["secret"]["versions"]
    assert template["application"]["tags"] and template["application"]["passwordCredentials"]
    # New ids and keyIds, and a value of its own that authenticates.
    original, copied = tenant.app("copy-template"), tenant.app("copy-1")
    assert {original["id"], original["appId"]}.isdisjoint({copied["id"], copied["appId"]})
    [p_original], [p_copy] = original["passwordCredentials"], copied["passwordCredentials"]
    assert p_original["keyId"] != p_copy["keyId"]
    latest = tenant.latest_version("app-copy-1")
    assert latest is not None and latest["tags"]["keyId"] == p_copy["keyId"]
    assert await stored_secret_authenticates(emulator.settings, copied["appId"], unique_name="copy-1")


async def test_copies_refuse_a_taken_name_or_a_missing_template(emulator: RunningEmulator) -> None:
    await register("copy-template")
    for body in ({"from": "copy-template", "names": ["copy-template"]}, {"from": "nobody", "names": ["x"]}):
        response = emulator.admin._http.post(
            "/_emulator/seed/copies", json=body, headers=emulator.admin._auth()
        )
        assert response.status_code == 400, response.text
