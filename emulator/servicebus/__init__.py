"""An emulated Service Bus namespace: the queues the function app uses, spoken to by the
unchanged azure-servicebus SDK over AMQP 1.0 (plain TCP, as a ``UseDevelopmentEmulator=true``
connection string asks) and by Service Bus's REST send over the emulator's HTTPS port.

- ``entities``: a queue's state machine (peek-locks, delivery counts, dead-lettering,
  scheduling, deferral, duplicate detection, sessions), on the emulator clock;
- ``namespace``: the queues, the key, the one lock both threads take;
- ``auth``: SAS tokens and Entra tokens;
- ``codec``: AMQP messages as stored and delivered;
- ``conditions``: AMQP errors as the service words them;
- ``frames``: the transfers' message format, which proton does not expose;
- ``management``: the ``$cbs`` and ``$management`` request-response nodes;
- ``links``: links and deliveries;
- ``broker``: the listener and its I/O loop (python-qpid-proton's engine);
- ``rest``: ``POST /{queue}/messages``.

docs/emulator.md says what is emulated and what is not.
"""
