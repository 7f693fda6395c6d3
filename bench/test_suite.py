"""Scenario 6: the test suite's wall time (issue 15, goal 6): ``make test`` (lint, types and
pytest, as CI runs it) in a child process on this machine, timed from start to end. Nothing
in the suite looks at a time; this is the only place its time is measured."""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

from bench.common import BENCH_SETTINGS, ROOT, Context

GOAL_SECONDS = 240.0


async def run(ctx: Context) -> dict[str, Any]:
    import asyncio

    # The suite's environment as a developer's shell gives it: without the settings this
    # process took for the emulator and the bench's policy (the tests set their own).
    env = {k: v for k, v in os.environ.items() if k not in ctx.emulator.settings and k not in BENCH_SETTINGS}
    started = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run, ["make", "test"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    seconds = round(time.perf_counter() - started, 1)
    summary = next(
        (line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ passed", line)), ""
    )
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|errors?|deselected)", summary)}
    failed = [
        line.split(" - ")[0] for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))
    ]
    result = {
        "command": "make test",
        "failures": failed,
        "seconds": seconds,
        "exitCode": done.returncode,
        "summary": summary.strip("= "),
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0),
        "goalSeconds": GOAL_SECONDS,
        "goalMet": done.returncode == 0 and seconds <= GOAL_SECONDS,
    }
    print(
        f"[6] make test: {seconds} s (goal <= {GOAL_SECONDS:g} s), exit {done.returncode}, {result['summary']}"
    )
    return result
