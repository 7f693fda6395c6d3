"""The only modules that import msgraph, kiota or azure.*: the SDK clients (``clients``), the
Microsoft Graph gateways (``graph``) and the Key Vault gateway (``keyvault``). Each gateway
maps the platform's errors to shared.domain.errors and returns shared.domain.records."""
