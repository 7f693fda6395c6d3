"""The secret-leak detector: no secret value the emulator issued may show up anywhere a test can
see what the service emitted.

For the length of each test, ``LeakDetector`` captures every log record (any logger, any
level: its own handler on the root logger at DEBUG) as text: ``getMessage()``, the record's
``__dict__`` (``msg``, ``args`` and every ``extra`` field) and the formatted ``exc_info``. At the
end, ``check`` searches that text, every output the functions set (``harness.outputs``: replies,
rotation messages, events), every exception they raised (``harness.failures``), every
dead-letter reason (``harness.dead_letters``) and the test's own failure report for the secret
values: those the emulator issued (addPassword, Key Vault, across resets: one
``issued_secrets()`` call per test), the service identity's ``AZURE_CLIENT_SECRET`` and the
admin's.

Key material counts too: every private key the emulator generates for a certificate is among the
issued values as the base64 of its PKCS#8 DER, and so is each exportable certificate's PFX (the
base64 Key Vault hands out as its secret); and any PEM private-key block
(``-----BEGIN … PRIVATE KEY-----``, an exportable certificate's PEM secret among them) is a leak
wherever it appears, whoever made the key.

An exception is searched whole (``exception_text``): every exception of its ``__cause__`` and
``__context__`` chain, suppressed or not, and every string or bytes value reachable from each
through attributes, containers and arguments (an azure-core error keeps the request it failed
on, body included), not only what a traceback prints.

Values shorter than ``MIN_SECRET_LENGTH`` are not secrets the service handles (Entra's are 40
characters) but test data stored in the vault (``"v"``, ``"first"``), which would match
everywhere; they are ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tests import harness
from tests.reachable import exception_text

MIN_SECRET_LENGTH = 16
# Key material (a PKCS#8 key, a PFX: a thousand characters and more in base64) is looked for whole,
# with ``in``: the windows the short secrets are found by would cost its length per character.
LONG_SECRET_LENGTH = 256
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# The service's own loggers: an exception they log is read whole (``exception_text``). An SDK
# logger's exception (azure-identity warns with the failed token request, whose body holds the
# client secret a test consumer just tried) is read as a handler would write it: formatted.
OWN_LOGGERS = ("shared", "handlers", "function_app")
_FORMATTER = logging.Formatter()


@dataclass(frozen=True)
class Leak:
    where: str
    hint: str  # the secret's first three characters, as Entra shows them; never the value
    what: str = "a secret"

    def __str__(self) -> str:
        return f"{self.what} ({self.hint}...) appears in {self.where}"


def render(record: logging.LogRecord) -> str:
    """Everything a log handler could write for ``record``."""
    parts = [repr(vars(record))]
    try:
        parts.append(record.getMessage())
    except Exception as error:  # a bad format string must not hide the rest
        parts.append(f"<unformattable: {error!r}>")
    if record.exc_info:
        parts.append(_FORMATTER.formatException(record.exc_info))
        if record.exc_info[1] is not None and record.name.startswith(OWN_LOGGERS):
            parts.append(exception_text(record.exc_info[1]))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Rendered now: the objects in args may change or go away by the end of the test.
        where = f"a log record ({record.name} {record.levelname} at {record.module}:{record.lineno})"
        self.texts.append((where, render(record)))


class LeakDetector:
    """Captures from ``start()`` to ``stop()``; ``check(secrets)`` lists the leaks found."""

    def __init__(self) -> None:
        self._capture = _Capture()
        self._saved_level = logging.NOTSET
        self._marks = (0, 0, 0)

    def start(self) -> None:
        root = logging.getLogger()
        self._saved_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self._capture)
        self._marks = (len(harness.outputs), len(harness.failures), len(harness.dead_letters))

    def stop(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._capture)
        root.setLevel(self._saved_level)

    def forget_logs(self) -> None:
        """Drop what was captured so far (a test that leaks on purpose, to prove detection)."""
        self._capture.texts.clear()

    def texts(self, extra: Iterable[tuple[str, str]] = ()) -> Iterator[tuple[str, str]]:
        outputs, failures, dead_letters = self._marks
        yield from self._capture.texts
        yield from ((f"function output #{i}", t) for i, t in enumerate(harness.outputs[outputs:]))
        yield from ((f"a raised exception #{i}", t) for i, t in enumerate(harness.failures[failures:]))
        yield from (
            (f"a dead-letter reason #{i}", t) for i, t in enumerate(harness.dead_letters[dead_letters:])
        )
        yield from extra

    def check(self, secrets: Iterable[str], extra: Iterable[tuple[str, str]] = ()) -> list[Leak]:
        return find_leaks(self.texts(extra), secrets)


def find_leaks(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[Leak]:
    """Where any of ``secrets`` occurs in ``texts`` ((where, text) pairs), and where a PEM
    private-key block does.

    A secret lies inside a maximal run of characters drawn from the secrets' own alphabet, so
    only such runs at least as long as the shortest secret are looked at, and within a run only
    the windows of each secret length: linear in the text, whatever the number of secrets. Key
    material (``LONG_SECRET_LENGTH`` and longer) is searched for whole.
    """
    candidates = set(secrets)
    known = {s for s in candidates if MIN_SECRET_LENGTH <= len(s) < LONG_SECRET_LENGTH}
    long_known = sorted(s for s in candidates if len(s) >= LONG_SECRET_LENGTH)
    lengths = sorted({len(s) for s in known})
    alphabet = "".join(re.escape(c) for c in sorted(set("".join(known))))
    runs = re.compile(f"[{alphabet}]{{{lengths[0]},}}") if known else None
    leaks: list[Leak] = []
    for where, text in texts:
        found: set[str] = set()
        for run in runs.finditer(text) if runs else ():
            token = run.group()
            for length in lengths:
                if length > len(token):
                    break
                found.update(
                    w for i in range(len(token) - length + 1) if (w := token[i : i + length]) in known
                )
        found.update(secret for secret in long_known if secret in text)
        leaks.extend(Leak(where, secret[:3]) for secret in sorted(found))
        if PEM_PRIVATE_KEY.search(text):
            leaks.append(Leak(where, "-----BEGIN", what="a PEM private key"))
    return leaks


def known_secrets(issued: Iterable[str], settings: dict[str, str]) -> set[str]:
    """The emulator's issued values plus the two identities' own secrets."""
    own = (settings.get("AZURE_CLIENT_SECRET"), settings.get("EMULATOR_ADMIN_CLIENT_SECRET"))
    return {*issued, *(s for s in own if s)}
