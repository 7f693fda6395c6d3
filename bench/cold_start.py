"""Scenario 4: cold start. In a fresh process (as a new Functions instance): the time to import
the function app, then to complete the first registration, for ``function_app`` and for
bench/eager_baseline.py (the same app with all five SDKs imported at the top). Median of
several runs of each, interleaved. The OS file cache is warm (a second instance on the same
machine); a truly cold disk adds to both.

The child is ``python -c CHILD MODULE NAME``: its clock starts before it imports anything but
the interpreter's start-up modules; it prints its timings as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import BENCH_SETTINGS, ROOT, Context, median

APPS = {"lazy": "function_app", "eager": "bench.eager_baseline"}
GOAL_RATIO = 0.4  # issue 15, goal 5


# The child process: the clock starts before anything but the interpreter's own start-up
# modules is imported (``-m bench.cold_start`` would import this module and bench.common first).
CHILD = """
import time
started = time.perf_counter()
import importlib, sys
app = importlib.import_module(sys.argv[1]).app
imported = time.perf_counter()
from bench.cold_start import child
child(app, sys.argv[2], started, imported, len(sys.modules))
"""


def child(app: Any, unique_name: str, started: float, imported: float, modules_after_import: int) -> None:
    """After the measured import: one registration, then the timings as JSON on stdout."""
    from tests import harness

    functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    body = {
        "schemaVersion": 1,
        "requestId": f"COLD-{unique_name}",
        "action": "register",
        "requestedBy": "alice@contoso.com",
        "application": {
            "uniqueName": unique_name,
            "serviceManagementReference": "CI-BENCH",
            "displayName": unique_name,
            "clientType": "service",
        },
        "apiPermissions": [
            {"api": "microsoft-graph", "delegated": ["User.Read"], "application": ["User.Read.All"]}
        ],
        "grantAdminConsent": True,
        "credential": {"type": "secret", "description": "bench", "lifetime": "P6M"},
    }

    async def first() -> tuple[float, str]:
        from shared.testing import reset_clients

        message = harness.message(body)
        await functions["register_application"](message)  # returns once the reply is sent
        done = time.perf_counter()
        reply = await harness.namespace.reply_to(message.message_id, os.environ["RESULTS_QUEUE"], 30.0)
        await harness.namespace.close()
        await reset_clients()
        return done, str((reply or {}).get("status"))

    before = time.perf_counter()
    done, status = asyncio.run(first())
    timings = {
        "importSeconds": imported - started,
        "firstRegistrationSeconds": done - before,
        "toFirstReplySeconds": done - started,
        "status": status,
        "modulesAfterImport": modules_after_import,
        "modulesAfterFirstRegistration": len(sys.modules),
    }
    print(json.dumps(timings))


def _spawn(module: str, unique_name: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, module, unique_name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["processSeconds"] = time.perf_counter() - started
    return result


async def run(ctx: Context) -> dict[str, Any]:
    runs = 1 if ctx.smoke else 7
    ctx.reset()
    env = {**os.environ, **ctx.emulator.settings, **BENCH_SETTINGS, "PYTHONPATH": str(ROOT)}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in APPS}
    for n in range(runs):
        for name, module in APPS.items():
            sample = await asyncio.to_thread(_spawn, module, f"cold-{name}-{n}", env)
            assert sample["status"] == "succeeded", sample
            samples[name].append(sample)

    def summary(name: str) -> dict[str, Any]:
        runs_of = samples[name]
        return {
            key: round(1000 * median([s[key] for s in runs_of]), 1)
            for key in ("importSeconds", "firstRegistrationSeconds", "toFirstReplySeconds", "processSeconds")
        } | {
            "modulesAfterImport": runs_of[0]["modulesAfterImport"],
            "modulesAfterFirstRegistration": runs_of[0]["modulesAfterFirstRegistration"],
        }

    lazy, eager = summary("lazy"), summary("eager")
    result = {
        "runs": runs,
        "unit": "ms (median)",
        "lazy": lazy,
        "eager": eager,
        "importRatio": round(lazy["importSeconds"] / eager["importSeconds"], 3),
        "goalRatio": GOAL_RATIO,
        "goalMet": lazy["importSeconds"] <= GOAL_RATIO * eager["importSeconds"],
    }
    for name, figures in (("function_app", lazy), ("eager baseline", eager)):
        print(
            f"[4] {name}: import {figures['importSeconds']} ms ({figures['modulesAfterImport']} modules), "
            f"first registration {figures['firstRegistrationSeconds']} ms, "
            f"import + first registration {figures['toFirstReplySeconds']} ms, "
            f"process {figures['processSeconds']} ms (median of {runs})"
        )
    print(
        f"[4] import {100 * result['importRatio']:.0f}% of the eager baseline (goal <= {100 * GOAL_RATIO:.0f}%); "
        f"time to the first reply {lazy['toFirstReplySeconds']} vs {eager['toFirstReplySeconds']} ms"
    )
    return result
