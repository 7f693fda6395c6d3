"""One delivery at a time per application: a blob lease on the application's name in the
function app's own storage account, held for the whole workflow.

Service Bus delivers at least once, a message lock can be lost while its work still runs, and
a ticketing system may send the same request twice: without exclusivity two deliveries of one
application interleave their reads and writes, and one can remove what the other is about to
make the current credential (docs/reliability.md).

- **Acquire**: a 60 s lease, or wait for the one another delivery holds (up to ``LEASE_WAIT``),
  else a ``TransientError`` (``ApplicationBusy``) so that Service Bus redelivers later. A
  delivery that dies without releasing blocks its application for at most the lease's 60 s.
- **Hold**: renewed every 15 s. Its *fence* (shared.domain.fencing) stops every write once the
  lease may have lapsed: when a renewal fails, or when less than ``MARGIN`` of the lease is
  left by the service's clock (a stalled process). ``MARGIN`` is longer than any write request
  may take (``WRITE_TIMEOUT_SECONDS``), so no write of ours is still in flight when another
  delivery can take the lease.
- **Release** at the end, so the next delivery of the application need not wait; or, given
  ``Afterwards``, once the caller has sent its reply (the reply need not wait for the release).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from shared.domain import fencing, stored
from shared.domain.errors import TransientError
from shared.services.dependencies import Dependencies

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
RENEW_EVERY_SECONDS = 15.0
MARGIN = dt.timedelta(seconds=25)
_FIRST_POLL, _MAX_POLL = 0.25, 2.0


class Hold:
    """This delivery's lease on one application, and the fence its writes ask."""

    def __init__(
        self, deps: Dependencies, name: str, lease_id: str, acquired_at: dt.datetime, waited: bool = False
    ) -> None:
        self.deps = deps
        self.name = name
        self.lease_id = lease_id
        self.valid_until = acquired_at + dt.timedelta(seconds=LEASE_SECONDS)
        self.lost = False
        self.waited = waited  # another delivery held the lease when this one first asked

    def check(self) -> None:
        if not self.lost and self.deps.now() >= self.valid_until - MARGIN:
            self.lost = True
            log.warning("lease.lapsed", extra={"lease": self.name})
        if self.lost:
            raise fencing.ExclusivityLost(
                "ExclusivityLost",
                f"the lease on {self.name} may have passed to another delivery; this one stopped writing",
            )

    async def keep(self) -> None:
        """Renew until cancelled, or until the lease is gone (then the fence stays closed)."""
        while not self.lost:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            sent = self.deps.now()
            if sent >= self.valid_until - MARGIN:
                self.lost = True  # stalled past the margin: another may hold it by now
                return
            try:
                renewed = await self.deps.leases.renew(self.name, self.lease_id)
            except TransientError:
                continue  # try again at the next tick; the margin runs out by itself
            if not renewed:
                self.lost = True
                log.warning("lease.lost", extra={"lease": self.name})
                return
            self.valid_until = sent + dt.timedelta(seconds=LEASE_SECONDS)


class Afterwards:
    """Work a delivery leaves for after its reply is sent: the release of its lease."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], Awaitable[None]]] = []

    def add(self, step: Callable[[], Awaitable[None]]) -> None:
        self._steps.append(step)

    async def run(self) -> None:
        steps, self._steps = self._steps, []
        for step in steps:
            await step()


@contextlib.asynccontextmanager
async def exclusively(
    deps: Dependencies, unique_name: str, afterwards: Afterwards | None = None
) -> AsyncIterator[Hold]:
    """Within: this delivery alone acts on ``unique_name``'s application, and every write it
    sends asks the lease's fence first. Raises ``TransientError`` (``ApplicationBusy``) when
    another delivery holds it for longer than ``LEASE_WAIT``. The lease is released on the way
    out, or by ``afterwards`` (either way after the delivery's last write to the application)."""
    name = stored.lease_name(unique_name)
    give_up = time.monotonic() + deps.settings.lease_wait.total_lower_bound().total_seconds()
    poll = _FIRST_POLL
    waited = False
    while True:
        sent = deps.now()
        lease_id = await deps.leases.acquire(name, LEASE_SECONDS)
        if lease_id is not None:
            break
        waited = True
        if time.monotonic() + poll > give_up:
            raise TransientError(
                "ApplicationBusy", f"another delivery is acting on {unique_name}; this one is retried later"
            )
        await asyncio.sleep(poll)
        poll = min(_MAX_POLL, poll * 2)
    hold = Hold(deps, name, lease_id, sent, waited)
    keeper = asyncio.create_task(hold.keep())

    async def release() -> None:
        with contextlib.suppress(TransientError):  # unreleased, it lapses in LEASE_SECONDS
            await deps.leases.release(name, lease_id)

    try:
        with fencing.fenced(hold):
            yield hold
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if not hold.lost:
            if afterwards is None:
                await release()
            else:
                afterwards.add(release)
