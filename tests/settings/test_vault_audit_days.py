"""VAULT_AUDIT_DAYS: how often the rotation sweep lists the whole vault (shared/services/scheduler.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings

REQUIRED = {
    "AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
    "KEY_VAULT_URL": "https://v.vault.azure.net/",
}


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_AUDIT_DAYS", raising=False)


def test_weekly_by_default() -> None:
    assert Settings(**REQUIRED).vault_audit_days == 7  # type: ignore[arg-type]


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_AUDIT_DAYS", "1")
    assert Settings(**REQUIRED).vault_audit_days == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "-7", "weekly", "1.5"])
def test_at_least_one_whole_day(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VAULT_AUDIT_DAYS", value)
    with pytest.raises(ValidationError, match="VAULT_AUDIT_DAYS"):
        Settings(**REQUIRED)  # type: ignore[arg-type]
