"""The cold-start baseline: the same function app, with all five SDKs imported at the top, as a
function app that does not defer its imports would. Used by bench/cold_start.py only."""

import azure.functions
import azure.identity.aio
import azure.keyvault.secrets.aio
import azure.servicebus
import msgraph

from function_app import app

__all__ = ["app", "azure", "msgraph"]
