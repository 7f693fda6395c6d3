"""A local imitation of the Microsoft identity platform, Microsoft Graph's application APIs
and Azure Key Vault secrets, spoken to over HTTPS by the unchanged official SDKs.

Test infrastructure only: it is never deployed (see .funcignore). docs/emulator.md says what
is emulated and what is not.
"""
