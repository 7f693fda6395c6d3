"""What the emulated namespace does with AMQP links and deliveries: attaching (claims-based
security, entities, sessions), storing what clients send, delivering what they have credit for,
applying their dispositions, and the ``$cbs`` / ``$management`` request-response pairs. The
I/O around it is emulator.servicebus.broker's; the behaviour is described there.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from proton import Condition, Delivery, Endpoint, Event, Link, Message, Terminus, symbol
from proton import Handler as ProtonHandler

from emulator.servicebus import codec, conditions
from emulator.servicebus.auth import Grant
from emulator.servicebus.conditions import AmqpError
from emulator.servicebus.entities import Outcome
from emulator.servicebus.frames import FrameReader
from emulator.servicebus.management import Management, cbs
from emulator.servicebus.namespace import Entity, Namespace, entity_path

_LOG = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 256 * 1024  # Standard tier
INCOMING_CREDIT = 100
SESSION_ACCEPT_TIMEOUT = 60.0  # seconds (real time) a next-available session attach waits
SESSION_FILTER = symbol("com.microsoft:session-filter")
LOCKED_UNTIL_UTC = symbol("com.microsoft:locked-until-utc")
TRACKING_ID = symbol("com.microsoft:tracking-id")


@dataclass
class LinkInfo:
    """What the broker keeps about one link."""

    role: str  # "cbs", "management" or "entity"
    node: str  # the address, lower-cased, as a key for request/reply pairing
    owner: str  # lock owner: "{peer}:{link name}"
    entity: Entity | None = None
    management: Management | None = None
    session_id: str | None = None
    delete: bool = False  # receive-and-delete
    waiting_until: float | None = None  # a session attach waiting for a session (monotonic)
    requested_session: str | None = None
    outbox: deque[bytes] = field(default_factory=deque)


class Peer:
    """One client connection's AMQP state: its grants, its links, what it is sending."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = f"c{next(self._ids)}"
        self.reader = FrameReader()
        self.grants: list[Grant] = []
        self.links: dict[tuple[str, bool], tuple[Link, LinkInfo]] = {}
        self._tags = itertools.count(1)

    def tag(self) -> bytes:
        return next(self._tags).to_bytes(8, "big")

    def info(self, link: Link) -> LinkInfo | None:
        entry = self.links.get((link.name, link.is_sender))
        return entry[1] if entry else None


def _condition(error: AmqpError) -> Condition:
    """An AMQP error as Service Bus writes it: condition, description and an info map (the
    azure-servicebus client reads all three fields of a rejection)."""
    return Condition(error.condition, error.description, {TRACKING_ID: error.tracking_id})


def _new_delivery(link: Link, tag: bytes) -> Delivery:
    # proton takes a binary tag (cproton.py2bytes) though its annotation says str
    return link.delivery(cast(str, tag))


def _active(link: Link) -> bool:
    state = link.state
    return bool(state & Endpoint.LOCAL_ACTIVE) and bool(state & Endpoint.REMOTE_ACTIVE)


def _refuse(link: Link, error: AmqpError) -> None:
    """Refuse a link as AMQP 1.0 prescribes (part 2.6.3) and Service Bus does: an attach whose
    local terminus is null (the source when we would send, the target when we would receive),
    then a detach carrying the error."""
    (link.source if link.is_sender else link.target).type = Terminus.UNSPECIFIED
    link.open()
    link.condition = _condition(error)
    link.close()


class Links:
    """The namespace's side of every link of every connection."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace

    # -- attaching --------------------------------------------------------------------------------

    def _authorize(self, peer: Peer, path: str, claim: str) -> None:
        if not any(grant.covers(path) for grant in peer.grants):
            raise AmqpError(
                conditions.UNAUTHORIZED,
                conditions.tracked(
                    f"Unauthorized access. '{claim}' claim(s) are required to perform this operation. "
                    f"Resource: '{self.namespace.uri(path)}'.",
                    f"{self.namespace.amqp_host}:{path}",
                ),
            )

    def attach(self, peer: Peer, link: Link) -> None:
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        address = (link.remote_source if link.is_sender else link.remote_target).address or ""
        path = entity_path(address)
        owner = f"{peer.id}:{link.name}"
        key = (link.name, link.is_sender)
        if path.lower() == "$cbs":
            peer.links[key] = (link, LinkInfo("cbs", "$cbs", owner))
            link.open()
            if link.is_receiver:
                link.flow(INCOMING_CREDIT)
            return
        try:
            if path.lower().endswith("/$management"):
                target = path[: -len("/$management")]
                self._authorize(peer, target, "Manage,EntityRead" if link.is_receiver else "Listen")
                entity = self.namespace.entity(target)
                management = Management(
                    self.namespace, entity, lambda name: f"{peer.id}:{name}" if name else owner
                )
                info = LinkInfo("management", path.lower(), owner, entity=entity, management=management)
                peer.links[key] = (link, info)
                link.open()
                if link.is_receiver:
                    link.flow(INCOMING_CREDIT)
                return
            self._authorize(peer, path, "Send" if link.is_receiver else "Listen")
            entity = self.namespace.entity(path)
            if link.is_receiver:
                self._attach_sender(peer, link, entity, owner)
            else:
                self._attach_receiver(peer, link, entity, owner)
        except AmqpError as error:
            _LOG.info("Service Bus emulator: link to %s refused: %s", path, error.condition)
            _refuse(link, error)

    def _attach_sender(self, peer: Peer, link: Link, entity: Entity, owner: str) -> None:
        """The client sends to ``entity`` on ``link``."""
        if entity.dead_letter:
            raise AmqpError(
                conditions.NOT_ALLOWED,
                conditions.tracked("Messages cannot be sent to a dead-letter queue.", entity.path),
            )
        peer.links[(link.name, link.is_sender)] = (
            link,
            LinkInfo("entity", entity.path.lower(), owner, entity),
        )
        link.max_message_size = MAX_MESSAGE_SIZE
        link.open()
        link.flow(INCOMING_CREDIT)

    def _attach_receiver(self, peer: Peer, link: Link, entity: Entity, owner: str) -> None:
        """The client receives from ``entity`` on ``link``."""
        filters = _filters(link)
        sessionful = SESSION_FILTER in filters
        if entity.requires_session and not sessionful:
            raise AmqpError(
                conditions.NOT_ALLOWED,
                conditions.tracked(
                    "It is not possible for an entity that requires sessions to create a non-sessionful "
                    "message receiver.",
                    entity.path,
                ),
            )
        if sessionful and not entity.requires_session:
            raise AmqpError(
                conditions.NOT_ALLOWED,
                conditions.tracked(
                    "It is not possible for an entity that does not require sessions to create a "
                    "sessionful message receiver.",
                    entity.path,
                ),
            )
        info = LinkInfo(
            "entity",
            entity.path.lower(),
            owner,
            entity,
            delete=link.remote_snd_settle_mode == Link.SND_SETTLED,
        )
        peer.links[(link.name, link.is_sender)] = (link, info)
        if not sessionful:
            link.open()
            return
        requested = filters[SESSION_FILTER]
        info.requested_session = None if requested is None else str(requested)
        info.waiting_until = time.monotonic() + SESSION_ACCEPT_TIMEOUT
        self._try_session(link, info)

    def _try_session(self, link: Link, info: LinkInfo) -> None:
        """Finish a session receiver's attach once it holds a session."""
        assert info.entity is not None
        try:
            session_id = self.namespace.accept_session(info.entity, info.requested_session, info.owner)
        except AmqpError as error:
            info.waiting_until = None
            _refuse(link, error)
            return
        if session_id is None:
            if info.waiting_until is not None and time.monotonic() >= info.waiting_until:
                info.waiting_until = None
                _refuse(
                    link,
                    AmqpError(
                        conditions.TIMEOUT,
                        conditions.tracked(
                            "The operation did not complete within the allocated time "
                            f"{SESSION_ACCEPT_TIMEOUT:.0f}s for object session.",
                            info.entity.path,
                        ),
                    ),
                )
            return
        info.waiting_until = None
        info.session_id = session_id
        until = self.namespace.session_locked_until(info.entity, session_id)
        link.source.filter.clear()
        link.source.filter.put_object({SESSION_FILTER: session_id})
        if until is not None:
            link.properties = {LOCKED_UNTIL_UTC: codec.ticks(until)}
        link.open()

    def detach(self, peer: Peer, link: Link) -> None:
        entry = peer.links.get((link.name, link.is_sender))
        if entry is not None:
            self._forget(peer, link, entry[1])
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    def forget_all(self, peer: Peer) -> None:
        """The connection is gone: release its sessions (message locks run out on their own)."""
        for link, info in list(peer.links.values()):
            self._forget(peer, link, info)

    def _forget(self, peer: Peer, link: Link, info: LinkInfo) -> None:
        peer.links.pop((link.name, link.is_sender), None)
        if link.is_receiver:
            peer.reader.forget(link.name)
        if info.session_id is not None and info.entity is not None:
            self.namespace.release_session(info.entity, info.session_id, info.owner)
            info.session_id = None

    # -- deliveries ---------------------------------------------------------------------------

    def incoming(self, peer: Peer, link: Link, delivery: Delivery) -> None:
        """A delivery from the client: a message to store or a request to a node."""
        if delivery.aborted:
            peer.reader.next_format(link.name)
            delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return
        payload = link.recv(delivery.pending) or b""
        link.advance()
        info = peer.info(link)
        if info is None:
            delivery.settle()
            return
        if info.role in ("cbs", "management"):
            request = Message()
            try:
                request.decode(payload)
            except Exception:
                self._reject(delivery, AmqpError("amqp:decode-error", "The request is not an AMQP message."))
                link.flow(1)
                return
            if info.role == "cbs":
                response = cbs(self.namespace, request, peer.grants)
            else:
                assert info.management is not None
                response = info.management.handle(request)
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
            link.flow(1)
            self._reply(peer, info, request, response)
            return
        message_format = peer.reader.next_format(link.name)
        assert info.entity is not None
        try:
            if len(payload) > MAX_MESSAGE_SIZE:
                raise AmqpError(
                    conditions.MESSAGE_SIZE_EXCEEDED,
                    conditions.tracked(
                        f"The received message (delivery-id:0, size:{len(payload)} bytes) exceeds the limit "
                        f"({MAX_MESSAGE_SIZE} bytes) currently allowed on the link.",
                        info.entity.path,
                    ),
                )
            messages = codec.unbatch(payload) if message_format == codec.BATCH_FORMAT else [payload]
            envelopes = [codec.parse(m) for m in messages]
            self.namespace.send(info.entity.path, envelopes)
        except codec.MalformedMessage as error:
            self._reject(delivery, AmqpError("amqp:decode-error", str(error)))
        except AmqpError as error:
            self._reject(delivery, error)
        else:
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
        link.flow(1)

    @staticmethod
    def _reject(delivery: Delivery, error: AmqpError) -> None:
        _LOG.info("Service Bus emulator: delivery rejected: %s", error.condition)
        delivery.local.condition = _condition(error)
        delivery.update(Delivery.REJECTED)
        delivery.settle()

    def _reply(self, peer: Peer, info: LinkInfo, request: Message, response: Message) -> None:
        candidates = [
            (link, other)
            for link, other in peer.links.values()
            if link.is_sender and other.role == info.role and other.node == info.node and _active(link)
        ]
        if not candidates:
            _LOG.info("Service Bus emulator: no reply link for %s on %s", info.node, peer.id)
            return
        reply_to = request.reply_to
        chosen = next(
            ((lk, i) for lk, i in candidates if reply_to and lk.remote_target.address == reply_to),
            candidates[0],
        )
        chosen[1].outbox.append(response.encode())
        self._flush(peer, chosen[0], chosen[1])

    def _flush(self, peer: Peer, link: Link, info: LinkInfo) -> None:
        while info.outbox and link.credit > 0:
            delivery = _new_delivery(link, peer.tag())
            link.send(info.outbox.popleft())
            link.advance()
            delivery.settle()

    def disposition(self, peer: Peer, link: Link, delivery: Delivery) -> None:
        """The client settled (or asks to settle) a message we delivered."""
        token: uuid.UUID | None = getattr(delivery, "sb_token", None)
        info = peer.info(link)
        state = delivery.remote_state
        if token is None or info is None or info.entity is None or not state or state == Delivery.RECEIVED:
            if delivery.settled:
                delivery.settle()
            return
        delivery.sb_token = None
        settlement = _settlement(delivery)
        error: AmqpError | None = None
        try:
            self.namespace.settle(
                info.entity,
                token,
                settlement.outcome,
                session_id=info.session_id,
                reason=settlement.reason,
                description=settlement.description,
                modify=settlement.modify,
            )
        except AmqpError as refused:
            error = refused
        if delivery.settled:
            delivery.settle()
            return
        # The client awaits the outcome (rcv-settle-mode second): echo what was applied.
        if error is not None:
            delivery.local.condition = _condition(error)
            delivery.update(Delivery.REJECTED)
        elif state == Delivery.MODIFIED:
            delivery.local.failed = bool(delivery.remote.failed)
            delivery.local.undeliverable = bool(delivery.remote.undeliverable)
            delivery.update(Delivery.MODIFIED)
        else:
            delivery.update(state)
        delivery.settle()

    def pump(self, peer: Peer) -> None:
        """Deliver what each receiving link has credit for; flush replies; finish or time out
        waiting session attaches; detach session receivers whose session lock is gone."""
        for link, info in list(peer.links.values()):
            if not link.is_sender:
                continue
            if info.role != "entity":
                if info.outbox and _active(link):
                    self._flush(peer, link, info)
                continue
            if info.waiting_until is not None:
                self._try_session(link, info)
                continue
            if not _active(link) or info.entity is None:
                continue
            if info.session_id is not None and not self.namespace.session_held(
                info.entity, info.session_id, info.owner
            ):
                info.session_id = None
                link.condition = _condition(conditions.session_lock_lost(info.entity.queue.tracker()))
                link.close()
                continue
            if info.entity.requires_session and info.session_id is None:
                continue
            credit = link.credit
            if credit > 0:
                delivered = self.namespace.acquire(
                    info.entity,
                    count=credit,
                    owner=info.owner,
                    session_id=info.session_id,
                    delete=info.delete,
                )
                for item in delivered:
                    token = item.lock_token
                    delivery = _new_delivery(link, (token or uuid.uuid4()).bytes_le)
                    delivery.sb_token = token
                    link.send(item.payload)
                    link.advance()
                    if info.delete:
                        delivery.settle()
            if link.drain_mode and link.credit > 0:
                link.drained()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _filters(link: Link) -> dict[Any, Any]:
    data = link.remote_source.filter
    data.rewind()
    if not data.next():
        return {}
    value = codec.owned(data.get_object())
    return {symbol(str(k)): v for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass
class Settlement:
    outcome: Outcome
    reason: str | None = None
    description: str | None = None
    modify: dict[str, Any] | None = None


def _settlement(delivery: Delivery) -> Settlement:
    """What the client's outcome asks of the message (message-transfers-locks-settlement):
    accepted completes, modified with undeliverable-here defers, modified with delivery-failed
    abandons, rejected dead-letters, released (or modified with neither) hands it back."""
    state, remote = delivery.remote_state, delivery.remote
    if state == Delivery.ACCEPTED:
        return Settlement("complete")
    if state == Delivery.MODIFIED:
        modify = {str(k): codec.owned(v) for k, v in (remote.annotations or {}).items()} or None
        if remote.undeliverable:
            return Settlement("defer", modify=modify)
        if remote.failed:
            return Settlement("abandon", modify=modify)
        return Settlement("release")
    if state == Delivery.REJECTED:
        condition = remote.condition
        info = condition.info if condition is not None and isinstance(condition.info, dict) else {}
        details = {str(k): codec.owned(v) for k, v in info.items()}
        description = details.get("DeadLetterErrorDescription")
        if description is None and condition is not None:
            description = condition.description
        return Settlement("dead-letter", _text(details.get("DeadLetterReason")), _text(description))
    return Settlement("release")


class Handler(ProtonHandler):
    """Proton's events for one connection, routed to ``Links``."""

    def __init__(self, links: Links, peer: Peer) -> None:
        super().__init__()
        self.links = links
        self.peer = peer
        self.closed = False

    def on_connection_remote_open(self, event: Event) -> None:
        connection = event.connection
        assert connection is not None
        connection.container = "servicebus-emulator"
        connection.open()

    def on_connection_remote_close(self, event: Event) -> None:
        if event.connection is not None:
            event.connection.close()

    def on_session_remote_open(self, event: Event) -> None:
        if event.session is not None:
            event.session.open()

    def on_session_remote_close(self, event: Event) -> None:
        if event.session is not None:
            event.session.close()

    def on_link_remote_open(self, event: Event) -> None:
        if event.link is not None:
            self.links.attach(self.peer, event.link)

    def on_link_remote_close(self, event: Event) -> None:
        if event.link is not None:
            self.links.detach(self.peer, event.link)

    def on_link_remote_detach(self, event: Event) -> None:
        if event.link is not None:
            self.links.detach(self.peer, event.link)

    def on_delivery(self, event: Event) -> None:
        link, delivery = event.link, event.delivery
        if link is None or delivery is None:
            return
        if link.is_receiver:
            self.links.incoming(self.peer, link, delivery)
        elif delivery.updated:
            self.links.disposition(self.peer, link, delivery)

    def on_transport_closed(self, event: Event) -> None:
        self.closed = True
