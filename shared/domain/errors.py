"""The service's error taxonomy.

- ``PermanentError``: the request can never succeed as asked (validation, policy, a tenant
  policy, a permission the service lacks, an app it does not own). Reply ``rejected``, naming
  the field, and complete the message.
- ``TransientError``: may succeed later (throttling, outages, a lost response, replication
  lag that outlasted the in-step retries). Raise, so that Service Bus redelivers; on the last
  delivery reply ``failed`` with the reason.

The adapters map platform errors (Graph error codes, Key Vault error codes, transport errors)
into these, so workflows never see an SDK exception. Messages never carry secret values.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
        # Set when an earlier attempt of the same call lost its response: that attempt may
        # have taken effect (e.g. a 404 on a retried DELETE means our first attempt deleted it).
        self.after_lost_response = False


class PermanentError(ServiceError):
    """Reject: retrying the same request cannot help."""


class PermissionDenied(PermanentError):
    """The service identity lacks a Graph permission, or does not own the object."""


class PolicyViolation(PermanentError):
    """A tenant app-management policy refused the change (e.g. the secret lifetime)."""


class NotFound(PermanentError):
    """The object does not exist (or, right after a create, is not replicated yet)."""


class TransientError(ServiceError):
    """Retry later: redelivery may succeed."""


class ReplicationPending(TransientError):
    """A dependent call failed because an object just created has not replicated yet."""
