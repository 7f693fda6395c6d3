"""Code shared by every function: settings, message contracts, secret handling, and the gateways to Graph and Key Vault."""
