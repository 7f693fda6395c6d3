"""One call through an Azure SDK (azure-core: Key Vault, Resource Manager) with this service's
retries, its errors mapped to shared.domain.errors by the caller's ``mapped``.

The SDKs' own retries are off (shared.adapters.clients): a write must ask the lease's fence
(shared.domain.fencing) before every attempt, and a request whose answer was lost must not
always be sent again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.domain import fencing
from shared.domain.errors import ServiceError

T = TypeVar("T")
ATTEMPTS = 4
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0


def retry_wait(error: Exception, attempt: int, resend: bool) -> float | None:
    """Seconds to wait before sending ``error``'s request again, or None: not again.

    Retried: 429/503/504 answers (after their ``Retry-After``), requests that never left, and,
    when ``resend``, requests whose answer was lost or was a 500."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    backoff = min(MAX_BACKOFF, 0.5 * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311
    if isinstance(error, ServiceRequestError):
        return backoff  # never sent
    if isinstance(error, ServiceResponseError):
        return backoff if resend else None  # sent: it may have taken effect
    if isinstance(error, HttpResponseError) and error.status_code in (429, 503, 504, 500):
        if error.status_code == 500 and not resend:
            return None
        response = getattr(error, "response", None)
        header = response.headers.get("Retry-After") if response is not None else None
        try:
            return min(MAX_RETRY_AFTER, float(header)) if header else backoff
        except ValueError:
            return backoff
    return None


async def call_azure(
    what: str,
    call: Callable[[], Awaitable[T]],
    mapped: Callable[[str, Exception], ServiceError | None],
    *,
    write: bool = False,
    resend: bool = True,
) -> T:
    """Run ``call`` with its retries (``retry_wait``); an error ``mapped`` knows is raised as
    what it maps to, anything else propagates as it is.

    The mapped error is raised after the ``except`` block, never inside it: raised there, it
    would keep azure-core's error as its ``__context__`` (``from None`` only hides it from
    tracebacks), and that error keeps the request it failed on, whose body is the secret's
    value on a Key Vault ``set_secret``."""
    attempt = 0
    while True:
        if write:
            fencing.check_writes()
        try:
            return await call()
        except Exception as error:  # mapped below; anything unknown propagates as it is
            failure = mapped(what, error)
            if failure is None:
                raise
            wait = retry_wait(error, attempt, resend)
        attempt += 1
        if wait is None or attempt >= ATTEMPTS:
            raise failure
        await asyncio.sleep(wait)
