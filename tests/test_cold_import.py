"""Importing the function app stays cheap: the platform SDKs (about a second of imports) load
only when an invocation first needs a platform client (shared.bootstrap), and the service's own
modules (pydantic's message models among them) only when the first invocation runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "msgraph",
    "msgraph_core",
    "kiota_abstractions",
    "azure.identity",
    "azure.keyvault",
    "pydantic",
    "shared",
)


def test_importing_the_function_app_leaves_the_platform_sdks_out() -> None:
    # A fresh interpreter: this test process has imported them long ago.
    probe = (
        "import json, sys\n"
        "import function_app\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == []
