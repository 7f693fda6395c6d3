"""Settings from the environment."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from shared.domain.durations import parse_duration
from shared.domain.policy import DEFAULT_API_POLICY
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
    "API_POLICY",
    "REDIRECT_URI_DOMAINS",
    "FEDERATED_ISSUERS",
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
    assert dict(settings.api_policy) == dict(DEFAULT_API_POLICY)
    assert settings.api_policy["azure-healthcare-apis"].resource == "4f6778d8-5aef-43dc-a1ff-b073724b9495"
    assert settings.api_policy["azure-healthcare-apis"].delegated == {"user_impersonation"}
    assert settings.api_policy["microsoft-graph"].delegated == {
        "User.Read",
        "openid",
        "profile",
        "email",
        "offline_access",
    }
    assert all(not entry.application for entry in settings.api_policy.values())  # no app role at all
    assert settings.redirect_uri_domains == ()
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
        "API_POLICY": '{"fhir": {"resource": "https://contoso.fhir.azurehealthcareapis.com", "delegated": '
        '["user_impersonation"]}, "dicom": {"resource": "api://dicom-test", "delegated": ["Dicom.ReadWrite"]}, '
        '"microsoft-graph": null, "exo": {"resource": "00000002-0000-0FF1-CE00-000000000000", "application": '
        '["full_access_as_app"]}}',
        "REDIRECT_URI_DOMAINS": " Contoso.com , fabrikam.org.,,",
        "ROTATION_SCHEDULE": "0 */5 * * * *",
        "ROTATION_WINDOW": "P14D",
        "ROTATION_GRACE_PERIOD": "P1D",
        "ROTATION_SAFETY_AGE": "PT30M",
        "ROTATION_DRY_RUN": "true",
        "SERVICE_TAG": "managed-by:test",
        "RESOURCE_MANAGER_URL": "https://management.usgovcloudapi.net/",
        "RESOURCE_MANAGER_AUDIENCE": "https://management.usgovcloudapi.net",
        "HEALTH_DATA_SERVICES": '{"fhir": {"resourceId": "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/'
        'resourceGroups/rg/providers/Microsoft.HealthcareApis/workspaces/ws1/fhirservices/fhir1", '
        '"url": "https://ws1-fhir1.fhir.azurehealthcareapis.us"}}',
        "DATA_ROLES": "FHIR Data Reader, DICOM Data Reader",
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
    assert settings.api_policy["fhir"].resource == "https://contoso.fhir.azurehealthcareapis.com"
    assert settings.api_policy["dicom"].resource == "api://dicom-test"  # replaces the default entry
    assert settings.api_policy["dicom"].delegated == {"Dicom.ReadWrite"}
    assert "microsoft-graph" not in settings.api_policy  # null removes a default entry
    assert settings.api_policy["exo"].resource == "00000002-0000-0ff1-ce00-000000000000"
    assert settings.api_policy["exo"].application == {"full_access_as_app"}
    assert "azure-healthcare-apis" in settings.api_policy
    assert settings.redirect_uri_domains == ("contoso.com", "fabrikam.org")
    assert settings.request_policy.apis is settings.api_policy
    assert settings.rotation_dry_run is True
    assert settings.service_tag == "managed-by:test"
    assert settings.resource_manager_url == "https://management.usgovcloudapi.net"
    assert settings.data_access_policy.services["fhir"].kind == "fhir"
    assert settings.data_access_policy.roles == {"FHIR Data Reader", "DICOM Data Reader"}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DATA_ROLES", "FHIR Data Reader,Owner", "unknown data roles"),
        ("HEALTH_DATA_SERVICES", "[]", "JSON object"),
        ("HEALTH_DATA_SERVICES", '{"fhir": {"resourceId": "/x"}}', "resourceId"),
        (
            "HEALTH_DATA_SERVICES",
            '{"fhir": {"resourceId": "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/'
            'providers/Microsoft.HealthcareApis/services/fhir1", "url": "https://fhir1.azurehealthcareapis.com"}}',
            "retired",
        ),
    ],
)
def test_data_access_settings_are_validated(env, name: str, value: str, says: str) -> None:
    env(name, value)
    with pytest.raises(ValidationError, match=says):
        get_settings()


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
        ("API_POLICY", "not json"),
        ("API_POLICY", '["a"]'),
        ("API_POLICY", '{"Bad Name": {"resource": "https://x"}}'),
        ("API_POLICY", '{"fhir": "https://x"}'),
        ("API_POLICY", '{"fhir": {"resource": "https://x\'y"}}'),
        ("API_POLICY", '{"fhir": {"resource": 3}}'),
        ("API_POLICY", '{"fhir": {"delegated": ["a"]}}'),
        ("API_POLICY", '{"fhir": {"resource": "https://x", "delegated": "a"}}'),
        ("API_POLICY", '{"fhir": {"resource": "https://x", "application": ["Directory ReadWrite"]}}'),
        ("API_POLICY", '{"fhir": {"resource": "https://x", "roles": []}}'),
        ("REDIRECT_URI_DOMAINS", "intranet"),
        ("REDIRECT_URI_DOMAINS", "contoso.com,evil com"),
        ("FEDERATED_ISSUERS", "http://token.actions.githubusercontent.com"),
        ("FEDERATED_ISSUERS", "https://a.contoso.com,token.actions.githubusercontent.com"),
        ("FEDERATED_ISSUERS", "https://a.contoso.com/?tenant=1"),
        ("FEDERATED_ISSUERS", "https://*.contoso.com"),
        ("FEDERATED_ISSUERS", '["https://a.contoso.com", 3]'),
        ("FEDERATED_ISSUERS", '["https://a.contoso.com"'),
        ("FEDERATED_ISSUERS", '{"issuer": "https://a.contoso.com"}'),
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


@pytest.mark.parametrize(
    "value",
    [
        "https://token.actions.githubusercontent.com, https://oidc.contoso.com/tenant-1",
        '["https://token.actions.githubusercontent.com", "https://oidc.contoso.com/tenant-1"]',
    ],
)
def test_federated_issuers_comma_separated_or_json(env, value: str) -> None:
    assert get_settings().federated_issuers == ()  # default: no issuer is trusted
    env("FEDERATED_ISSUERS", value)
    get_settings.cache_clear()
    assert get_settings().federated_issuers == (
        "https://token.actions.githubusercontent.com",
        "https://oidc.contoso.com/tenant-1",
    )
