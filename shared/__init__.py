"""The service's own package, in layers; a layer imports only the layers below it (enforced
by import-linter, see ``[tool.importlinter]`` in pyproject.toml):

- ``testing``: hooks for tests, benchmarks and the demo (the clock, rebuilding);
- ``bootstrap``: builds the platform clients, the adapters and ``Dependencies`` once per
  process and event loop;
- ``services``: the workflows (register, decommission, rotate, the sweep), over the narrow
  ports in ``services.ports``; ``adapters``: the only modules that import msgraph, kiota or
  azure.*, implementing those ports. Neither imports the other;
- ``settings``: the one typed settings object, read from the environment once;
- ``domain``: pure decisions and formats over plain records (policy, secret decisions, the
  rotation planner, stored formats, durations, errors, the secret value type);
- ``messages``: the wire: requests, replies, rotation messages and events, parsing, schemas.
"""
