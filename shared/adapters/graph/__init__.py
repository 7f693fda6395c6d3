"""The Microsoft Graph adapter: ``GraphCalls`` runs every call (retries, pacing, error
mapping, in ``calls`` and ``errors``); ``ApplicationsGateway`` and ``ConsentGateway`` describe
the calls, one method each, and return plain records."""
