"""The AMQP 1.0 endpoint of the emulated namespace: plain TCP on 127.0.0.1 (what
azure-servicebus speaks to a ``UseDevelopmentEmulator=true`` connection string), on its own
thread, on python-qpid-proton's protocol engine (``Transport``/``Connection``/``Collector``)
driven by a selector loop of its own.

What a client meets, as Service Bus behaves:

- SASL ``ANONYMOUS`` (proton's built-in SASL offers only that and ``EXTERNAL``; azure-servicebus
  authenticates through CBS and uses ANONYMOUS), then claims-based security: a ``put-token``
  on ``$cbs`` (emulator.servicebus.management) grants the connection access to a resource and
  what lies under it until the token expires. A link to an entity or its ``$management`` node
  attached without a covering grant is refused (an attach with a null terminus, then a detach)
  with ``amqp:unauthorized-access``; a link to an entity that does not exist: ``amqp:not-found``.
- sending: the broker grants link credit, stores each delivery (a message, or a batch of
  format ``0x80013700``: see emulator.servicebus.frames) and settles it ``accepted``, or
  ``rejected`` with the service's condition (``amqp:not-allowed`` for a message without a
  session id on a session queue, ``amqp:link:message-size-exceeded`` above 256 KB, the
  Standard tier's limit, announced as the link's ``max-message-size``).
- receiving: deliveries go out as the client grants credit. Peek-lock (``rcv-settle-mode``
  second): each is unsettled, its delivery tag the lock token (a GUID, ``UUID(bytes_le=tag)``
  as the SDKs read it), annotated ``x-opt-sequence-number``, ``x-opt-enqueued-time``,
  ``x-opt-locked-until``, ``x-opt-message-state``. The client's disposition settles it:
  ``accepted`` completes, ``modified`` with ``delivery-failed`` abandons, ``modified`` with
  ``undeliverable-here`` defers, ``rejected`` dead-letters (reason and description from the
  error's info ``DeadLetterReason`` / ``DeadLetterErrorDescription``), ``released`` hands it
  back uncounted. An unsettled disposition (the SDK awaits the outcome) is answered with the
  outcome applied, or ``rejected`` with ``com.microsoft:message-lock-lost`` /
  ``com.microsoft:session-lock-lost`` when the lock is gone. Receive-and-delete
  (``snd-settle-mode`` settled): deliveries are pre-settled and the messages gone.
- sessions: a receiver whose source carries the ``com.microsoft:session-filter`` filter gets
  the named session, or with a null filter the next session that has messages (the attach
  waits up to 60 s for one, then detaches with ``com.microsoft:timeout``); the attach answer
  names the session in the filter and its lock in ``com.microsoft:locked-until-utc`` (.NET
  ticks). A session locked by another receiver: ``com.microsoft:session-cannot-be-locked``.
  When the session lock expires the link is detached with ``com.microsoft:session-lock-lost``;
  closing the link releases the session.
- ``$cbs`` and ``{entity}/$management`` request-response links: replies go to the client's
  receiving link on the same node (the one whose target is the request's ``reply-to`` if
  there is one), pre-settled.

Not emulated: TLS (``amqps``), WebSockets, SASL PLAIN, transactions, link redirects, closing
links when their token expires (a client renews its token before then), the
``com.microsoft:max-message-batch-size`` link property, idle-timeout enforcement (proton
answers the client's heartbeats). Logging never shows message bodies or tokens.

This module owns the sockets and the loop; emulator.servicebus.links holds what is done with
links and deliveries, on the loop's thread. The queues live in the namespace, which the HTTPS
side shares (under its lock); it wakes the loop through ``Broker.wake`` when something may
have become deliverable, and the loop also ticks every 100 ms so that time acts on locks and
scheduled messages.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time

from proton import Collector, Connection, Transport

from emulator.servicebus.links import Handler, Links, Peer
from emulator.servicebus.namespace import Namespace

_LOG = logging.getLogger(__name__)

TICK_SECONDS = 0.1


class Client:
    """One TCP connection: its socket, proton's transport and connection, its AMQP state."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.transport = Transport(Transport.SERVER)
        self.transport.max_frame_size = 65536
        self.transport.sasl().allowed_mechs("ANONYMOUS")
        self.connection = Connection()
        self.collector = Collector()
        self.connection.collect(self.collector)
        self.transport.bind(self.connection)
        self.peer = Peer()
        self.inbound = b""
        self.done = False


class Broker:
    """The listener and the selector loop, on a thread of their own."""

    def __init__(self, namespace: Namespace, host: str = "127.0.0.1", port: int = 0) -> None:
        self.namespace = namespace
        self.links = Links(namespace)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._clients: dict[socket.socket, Client] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="servicebus-broker", daemon=True)
        namespace.listeners.append(self.wake)

    def start(self) -> int:
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self._thread.join(timeout=5)

    def wake(self) -> None:
        """Run the loop now (from any thread): something may have become deliverable."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        next_tick = 0.0
        while not self._stopping:
            for key, mask in selector.select(max(0.0, next_tick - time.monotonic())):
                if key.fileobj is self._listener:
                    self._accept(selector)
                elif key.fileobj is self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_r.recv(4096):
                            pass
                elif isinstance(key.data, Client):
                    if mask & selectors.EVENT_READ:
                        self._read(key.data)
                    if mask & selectors.EVENT_WRITE:
                        self._write(key.data)
            if time.monotonic() >= next_tick:
                try:
                    self.namespace.tick()
                except Exception:
                    _LOG.exception("Service Bus emulator: the periodic sweep failed")
                next_tick = time.monotonic() + TICK_SECONDS
            for client in list(self._clients.values()):
                try:
                    self._service(client)
                    self._write(client)
                    if not client.done:
                        writing = selectors.EVENT_WRITE if client.transport.pending() > 0 else 0
                        selector.modify(client.sock, selectors.EVENT_READ | writing, client)
                except Exception:  # one broken connection must not stop the others
                    _LOG.exception("Service Bus emulator: connection %s failed", client.peer.id)
                    client.done = True
                if client.done:
                    self._drop(client, selector)
        for client in list(self._clients.values()):
            self._drop(client, selector)
        selector.close()
        self._listener.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock)
            self._clients[sock] = client
            selector.register(sock, selectors.EVENT_READ, client)
            _LOG.debug("Service Bus emulator: connection %s opened", client.peer.id)

    def _read(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            client.transport.close_tail()
            return
        client.peer.reader.feed(data)
        client.inbound += data
        self._push(client)

    def _push(self, client: Client) -> None:
        while client.inbound:
            capacity = client.transport.capacity()
            if capacity < 0:
                client.inbound = b""
                return
            if capacity == 0:
                return
            chunk, client.inbound = client.inbound[:capacity], client.inbound[capacity:]
            client.transport.push(chunk)

    def _write(self, client: Client) -> None:
        while True:
            pending = client.transport.pending()
            if pending < 0:
                if client.transport.closed or client.transport.capacity() < 0:
                    client.done = True
                return
            if pending == 0:
                return
            data = client.transport.peek(pending) or b""
            try:
                sent = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                client.transport.close_head()
                client.done = True
                return
            client.transport.pop(sent)

    def _drop(self, client: Client, selector: selectors.BaseSelector) -> None:
        self.links.forget_all(client.peer)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(client.sock)
        client.sock.close()
        self._clients.pop(client.sock, None)
        _LOG.debug("Service Bus emulator: connection %s closed", client.peer.id)

    def _service(self, client: Client) -> None:
        """Handle what proton made of the input, then deliver what can be delivered."""
        self._push(client)
        client.transport.tick(time.monotonic())
        handler = Handler(self.links, client.peer)
        for _ in range(2):  # deliveries made by pump() raise events too
            while True:
                event = client.collector.peek()
                if event is None:
                    break
                try:
                    event.dispatch(handler)
                except Exception:
                    _LOG.exception("Service Bus emulator: handling %s failed", event.type)
                finally:
                    client.collector.pop()
            try:
                self.links.pump(client.peer)
            except Exception:
                _LOG.exception("Service Bus emulator: delivering messages failed")
        if handler.closed or client.transport.closed:
            client.done = True
