"""Settings from the environment, and the calendar-aware durations they hold."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.domain.durations import Duration, parse_duration
from shared.domain.policy import BUILTIN_API_CATALOG
from shared.settings import Settings, get_settings

SETTING_NAMES = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "GRAPH_BASE_URL",
    "KEY_VAULT_URL",
    "PLATFORM_CA_FILE",
    "REGISTRATION_QUEUE",
    "RESULTS_QUEUE",
    "ROTATION_QUEUE",
    "EVENTS_QUEUE",
    "MAX_DELIVERY_COUNT",
    "MAX_SECRET_LIFETIME",
    "DEFAULT_SECRET_LIFETIME",
    "API_CATALOG",
    "GRAPH_PERMISSION_ALLOWLIST",
    "ROTATION_SCHEDULE",
    "ROTATION_WINDOW",
    "ROTATION_GRACE_PERIOD",
    "ROTATION_SAFETY_AGE",
    "ROTATION_DRY_RUN",
    "SERVICE_TAG",
]
TENANT = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """A clean environment with only the required settings; yields a setter."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("KEY_VAULT_URL", "https://myvault.vault.azure.net/")
    get_settings.cache_clear()
    yield monkeypatch.setenv
    get_settings.cache_clear()


def test_defaults(env) -> None:
    settings = get_settings()
    assert settings.azure_tenant_id == TENANT
    assert settings.azure_client_id is None
    assert settings.azure_client_secret is None
    assert settings.azure_authority_host == "https://login.microsoftonline.com"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.key_vault_url == "https://myvault.vault.azure.net/"
    assert settings.platform_ca_file is None
    assert (settings.registration_queue, settings.results_queue) == (
        "app-registration-requests",
        "app-registration-results",
    )
    assert (settings.rotation_queue, settings.events_queue) == (
        "app-credential-rotation",
        "app-credential-events",
    )
    assert settings.max_delivery_count == 10
    assert settings.max_secret_lifetime == parse_duration("P24M")
    assert settings.default_secret_lifetime == parse_duration("P6M")
    assert dict(settings.api_catalog) == dict(BUILTIN_API_CATALOG)
    assert settings.api_catalog["azure-healthcare-apis"] == "4f6778d8-5aef-43dc-a1ff-b073724b9495"
    assert settings.graph_permission_allowlist == {
        "User.Read",
        "openid",
        "profile",
        "email",
        "offline_access",
        "User.Read.All",
    }
    assert settings.rotation_schedule == "0 0 3 * * *"
    assert settings.rotation_window == parse_duration("P30D")
    assert settings.rotation_grace_period.delta == timedelta(hours=48)
    assert settings.rotation_safety_age.delta == timedelta(hours=1)
    assert settings.rotation_dry_run is False
    assert settings.service_tag == "managed-by:entra-app-registration-service"


def test_read_once_and_cached(env) -> None:
    first = get_settings()
    env("MAX_DELIVERY_COUNT", "3")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().max_delivery_count == 3


def test_every_setting_from_the_environment(env, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    values = {
        "AZURE_CLIENT_ID": "aaaaaaaa-0000-0000-0000-000000000001",
        "AZURE_CLIENT_SECRET": "local-only-secret",
        "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/",
        "GRAPH_BASE_URL": "https://127.0.0.1:8443/v1.0/",
        "KEY_VAULT_URL": "https://127.0.0.1:8444/",
        "PLATFORM_CA_FILE": str(ca),
        "REGISTRATION_QUEUE": "q1",
        "RESULTS_QUEUE": "q2",
        "ROTATION_QUEUE": "q3",
        "EVENTS_QUEUE": "q4",
        "MAX_DELIVERY_COUNT": "5",
        "MAX_SECRET_LIFETIME": "P12M",
        "DEFAULT_SECRET_LIFETIME": "P180D",
        "API_CATALOG": '{"fhir": "https://contoso.fhir.azurehealthcareapis.com", "dicom": "api://dicom-test"}',
        "GRAPH_PERMISSION_ALLOWLIST": " User.Read , openid,,",
        "ROTATION_SCHEDULE": "0 */5 * * * *",
        "ROTATION_WINDOW": "P14D",
        "ROTATION_GRACE_PERIOD": "P1D",
        "ROTATION_SAFETY_AGE": "PT30M",
        "ROTATION_DRY_RUN": "true",
        "SERVICE_TAG": "managed-by:test",
    }
    for name, value in values.items():
        env(name, value)
    settings = get_settings()
    assert settings.azure_client_secret is not None
    assert settings.azure_client_secret.get_secret_value() == "local-only-secret"
    assert "local-only-secret" not in repr(settings)
    assert settings.azure_authority_host == "https://127.0.0.1:8443"
    assert settings.graph_base_url == "https://127.0.0.1:8443/v1.0"
    assert settings.platform_ca_file == ca
    assert settings.max_delivery_count == 5
    assert str(settings.default_secret_lifetime) == "P180D"
    assert settings.api_catalog["fhir"] == "https://contoso.fhir.azurehealthcareapis.com"
    assert settings.api_catalog["dicom"] == "api://dicom-test"  # overrides the built-in
    assert settings.api_catalog["microsoft-graph"] == "00000003-0000-0000-c000-000000000000"
    assert settings.graph_permission_allowlist == {"User.Read", "openid"}
    assert settings.rotation_dry_run is True
    assert settings.service_tag == "managed-by:test"


def test_names_are_case_sensitive_and_extra_ignored(env, monkeypatch) -> None:
    env("max_delivery_count", "3")
    env("SOMETHING_ELSE", "x")
    assert get_settings().max_delivery_count == 10


def test_empty_values_mean_default(env) -> None:
    env("PLATFORM_CA_FILE", "")
    env("MAX_SECRET_LIFETIME", "")
    settings = get_settings()
    assert settings.platform_ca_file is None
    assert settings.max_secret_lifetime == parse_duration("P24M")


@pytest.mark.parametrize("missing", ["AZURE_TENANT_ID", "KEY_VAULT_URL"])
def test_required(env, monkeypatch, missing: str) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(ValidationError):
        get_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AZURE_TENANT_ID", "contoso.onmicrosoft.com/../x"),
        ("KEY_VAULT_URL", "http://myvault.vault.azure.net/"),
        ("GRAPH_BASE_URL", "ftp://graph"),
        ("MAX_DELIVERY_COUNT", "0"),
        ("MAX_SECRET_LIFETIME", "24 months"),
        ("MAX_SECRET_LIFETIME", "PT0S"),
        ("MAX_SECRET_LIFETIME", "P3M"),  # shorter than the default lifetime
        ("DEFAULT_SECRET_LIFETIME", "P25M"),
        ("DEFAULT_SECRET_LIFETIME", "P24M1D"),
        ("API_CATALOG", "not json"),
        ("API_CATALOG", '["a"]'),
        ("API_CATALOG", '{"Bad Name": "https://x"}'),
        ("API_CATALOG", '{"fhir": "https://x\'y"}'),
        ("API_CATALOG", '{"fhir": 3}'),
        ("GRAPH_PERMISSION_ALLOWLIST", "User.Read,Directory ReadWrite"),
        ("ROTATION_SCHEDULE", "0 3 * * *"),
        ("ROTATION_GRACE_PERIOD", "PT23H59M59S"),
        ("ROTATION_GRACE_PERIOD", "P0D"),
        ("ROTATION_DRY_RUN", "maybe"),
        ("SERVICE_TAG", "managed by'x"),
    ],
)
def test_invalid_values_refused(env, name: str, value: str) -> None:
    env(name, value)
    with pytest.raises(ValidationError):
        get_settings()


def test_grace_period_of_exactly_24_hours(env) -> None:
    env("ROTATION_GRACE_PERIOD", "PT24H")
    assert get_settings().rotation_grace_period.delta == timedelta(hours=24)


def test_validation_errors_never_print_the_client_secret(env) -> None:
    env("AZURE_CLIENT_SECRET", "do-not-print-me")
    env("MAX_SECRET_LIFETIME", "P1M")  # fails the model-level check, which sees every value
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert "do-not-print-me" not in str(caught.value)


def test_constructed_directly_by_env_names(env) -> None:
    settings = Settings(AZURE_TENANT_ID="contoso.onmicrosoft.com", KEY_VAULT_URL="https://kv.vault.azure.net")
    assert settings.azure_tenant_id == "contoso.onmicrosoft.com"


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "months", "delta"),
    [
        ("P3M", 3, timedelta(0)),
        ("P6M", 6, timedelta(0)),
        ("P12M", 12, timedelta(0)),
        ("P24M", 24, timedelta(0)),
        ("P2Y", 24, timedelta(0)),
        ("P180D", 0, timedelta(days=180)),
        ("P2W", 0, timedelta(days=14)),
        ("PT48H", 0, timedelta(hours=48)),
        ("PT1H30M", 0, timedelta(minutes=90)),
        ("P1Y2M3DT4H5M6S", 14, timedelta(days=3, hours=4, minutes=5, seconds=6)),
        ("PT0S", 0, timedelta(0)),
    ],
)
def test_parse_duration(text: str, months: int, delta: timedelta) -> None:
    duration = parse_duration(text)
    assert (duration.months, duration.delta) == (months, delta)
    assert str(duration) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "6M",
        "P6",
        "P-1M",
        "P1.5M",
        "p6m",
        "P6M ",
        "P1W2D",
        "PT1D",
        "P6M\n",
        "P1H",
        "P99999999999999D",
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("start", "text", "end"),
    [
        (datetime(2025, 1, 31, 12, tzinfo=UTC), "P1M", datetime(2025, 2, 28, 12, tzinfo=UTC)),
        (datetime(2024, 1, 31, 12, tzinfo=UTC), "P1M", datetime(2024, 2, 29, 12, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P12M", datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P48M", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2025, 8, 31, tzinfo=UTC), "P6M", datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2025, 10, 15, tzinfo=UTC), "P3M", datetime(2026, 1, 15, tzinfo=UTC)),
        (datetime(2025, 12, 31, tzinfo=UTC), "P24M", datetime(2027, 12, 31, tzinfo=UTC)),
        (datetime(2025, 1, 31, tzinfo=UTC), "P1M1D", datetime(2025, 3, 1, tzinfo=UTC)),
        (datetime(2025, 1, 1, tzinfo=UTC), "P180D", datetime(2025, 6, 30, tzinfo=UTC)),
        (datetime(2025, 1, 1, 23, tzinfo=UTC), "PT48H", datetime(2025, 1, 3, 23, tzinfo=UTC)),
    ],
)
def test_add_to_uses_calendar_months(start: datetime, text: str, end: datetime) -> None:
    assert parse_duration(text).add_to(start) == end


def test_add_to_keeps_the_time_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = parse_duration("P1M").add_to(datetime(2025, 3, 31, 1, tzinfo=plus_two))
    assert result == datetime(2025, 4, 30, 1, tzinfo=plus_two)
    assert result.utcoffset() == timedelta(hours=2)


def test_add_to_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        parse_duration("P1M").add_to(datetime(2025, 1, 1))


def test_add_to_past_year_9999_overflows() -> None:
    with pytest.raises(OverflowError):
        parse_duration("P24M").add_to(datetime(9998, 6, 1, tzinfo=UTC))


def test_bounds() -> None:
    six_months = parse_duration("P6M")
    assert six_months.total_lower_bound() == timedelta(days=6 * 28)
    assert six_months.total_upper_bound() == timedelta(days=6 * 31)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for month in range(48):
        moment = parse_duration(f"P{month}M").add_to(start)
        length = six_months.add_to(moment) - moment
        assert six_months.total_lower_bound() <= length <= six_months.total_upper_bound()


@pytest.mark.parametrize(
    ("shorter", "longer", "expected"),
    [
        ("P6M", "P24M", True),
        ("P24M", "P24M", True),
        ("P25M", "P24M", False),
        ("P2Y", "P24M", True),
        ("P3M", "P100D", True),  # 3 months are at most 92 days
        ("P3M", "P90D", False),  # Feb-Apr is 89 days, but Jul-Sep is 92
        ("P180D", "P6M", False),  # decided conservatively without a start date
        ("P12M", "P180D", False),
        ("PT24H", "P1M", True),
        ("PT48H", "P1D", False),
    ],
)
def test_never_exceeds(shorter: str, longer: str, expected: bool) -> None:
    assert parse_duration(shorter).never_exceeds(parse_duration(longer)) is expected


def test_equality_is_by_length_not_spelling() -> None:
    assert parse_duration("P1Y") == parse_duration("P12M")
    assert parse_duration("P1D") == parse_duration("PT24H")
    assert parse_duration("P1M") != parse_duration("P30D")
    assert len({parse_duration("P1Y"), parse_duration("P12M")}) == 1
    assert not parse_duration("PT0S")
    assert repr(parse_duration("P6M")) == "Duration('P6M')"


def test_negative_durations_refused() -> None:
    with pytest.raises(ValueError):
        Duration(-1)
    with pytest.raises(ValueError):
        Duration(0, timedelta(seconds=-1))
