"""The pure domain: decisions and formats over plain records, testable without I/O.

- ``records``: what the platform holds, as plain frozen dataclasses;
- ``stored``: every format written into the platform (credential marker, tags, vault names);
- ``policy``: what a ticket may ask for, and which secret it gets;
- ``credentials``: the registration's secret decisions;
- ``planner``: the rotation planner;
- ``durations``, ``errors``, ``secret_value``: ISO durations with months, the error taxonomy,
  and the only type that holds a secret's plaintext.
"""
