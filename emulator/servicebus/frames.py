"""The one thing proton's engine does not tell: a transfer's ``message-format``.

azure-servicebus sends a ``ServiceBusMessageBatch`` as one delivery of message format
``0x80013700`` whose data sections are the encoded messages, and Service Bus tells a batch from
a message by that field. Proton reads the transfer frames but exposes no accessor for it, so
the broker reads the incoming byte stream itself before handing it to proton: it follows the
AMQP frames (protocol headers, SASL frames, then AMQP frames), and for each client sender link
(an ``attach`` with role sender) records, in order, the message format of every delivery that
starts on it. The broker takes the next one off that link's queue when proton hands it the
delivery.
"""

from __future__ import annotations

import struct
from collections import deque

from emulator.servicebus.codec import MalformedMessage, decode_one

_ATTACH, _TRANSFER, _DETACH, _END = 0x12, 0x14, 0x16, 0x17


def _field(fields: list[object], index: int) -> object:
    return fields[index] if index < len(fields) else None


class FrameReader:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._names: dict[tuple[int, int], str] = {}  # (channel, handle) -> link name
        self._in_progress: dict[str, bool] = {}
        self.formats: dict[str, deque[int]] = {}

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._buffer[:4] == b"AMQP":
                if len(self._buffer) < 8:
                    return
                del self._buffer[:8]
                continue
            if len(self._buffer) < 8:
                return
            size = struct.unpack(">I", self._buffer[:4])[0]
            if size < 8 or len(self._buffer) < size:
                if size < 8:  # not AMQP framing: leave it to proton to complain
                    self._buffer.clear()
                return
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            doff, kind = frame[4], frame[5]
            channel = struct.unpack(">H", frame[6:8])[0]
            if kind == 0 and size > doff * 4:
                self._performative(channel, frame[doff * 4 :])

    def _performative(self, channel: int, body: bytes) -> None:
        if len(body) < 3 or body[0] != 0x00:
            return
        code = body[2] if body[1] == 0x53 else None
        if code not in (_ATTACH, _TRANSFER, _DETACH, _END):
            return
        try:
            value, _ = decode_one(body)
        except MalformedMessage:
            return
        fields = list(getattr(value, "value", None) or [])
        if code == _END:
            for key in [k for k in self._names if k[0] == channel]:
                del self._names[key]
            return
        handle = _field(fields, 0 if code != _ATTACH else 1)
        if not isinstance(handle, int):
            return
        if code == _ATTACH:
            name, role = _field(fields, 0), _field(fields, 2)
            if role is False and isinstance(name, str):  # the client sends on this link
                self._names[(channel, handle)] = name
                self.formats.setdefault(name, deque())
                self._in_progress[name] = False
        elif code == _DETACH:
            self._names.pop((channel, handle), None)
        else:
            name = self._names.get((channel, handle))
            if name is None:
                return
            if not self._in_progress[name]:
                message_format = _field(fields, 3)
                self.formats[name].append(int(message_format) if isinstance(message_format, int) else 0)
            more, aborted = bool(_field(fields, 5)), bool(_field(fields, 9))
            self._in_progress[name] = more and not aborted

    def next_format(self, link_name: str) -> int:
        """The message format of the next delivery proton completes on ``link_name``."""
        queue = self.formats.get(link_name)
        return queue.popleft() if queue else 0

    def forget(self, link_name: str) -> None:
        self.formats.pop(link_name, None)
        self._in_progress.pop(link_name, None)
