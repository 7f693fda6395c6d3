"""Wire messages: what the service reads from and writes to its queues, and nothing else.

The lowest layer. Pydantic models with ``extra="forbid"``, their field types, parsing of a
message body into a typed request, and the JSON Schemas integrators read, generated from the
models. No settings, no platform, no decisions: those live in the layers above.

- ``base``: model bases, ``FieldError`` and ``RequestRejected``;
- ``fields``: the contract's field types and formats (names, redirect URIs, API references);
- ``requests``: register, decommission and rotate requests;
- ``replies``: the reply to a request, and its one ``rejected`` builder;
- ``rotation``: the rotation queue's message and the events queue's event;
- ``parsing``: any bytes to a typed request or a ``RequestRejected`` naming each field;
- ``schemas``: ``python -m shared.messages.schemas`` writes ``schemas/``.
"""
