"""``python -m bench.run``: every scenario against the emulator (50 ms per request), figures to
bench/results/latest.json and docs/benchmarks.md. ``--smoke``: the critical path once, tiny,
written to a temporary file unless ``--json`` says where (CI runs this so the bench cannot rot).
``--only NAME`` runs some scenarios and merges their figures into the existing results.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cold_start, critical_path, footprint, report, rotation_sweep, test_suite, throughput
from bench.common import LATENCY_MS, ROOT, Context, point_service_at
from emulator.launcher import running

RESULTS = ROOT / "bench" / "results" / "latest.json"
DOCS = ROOT / "docs" / "benchmarks.md"
# name in results -> (module, needs the emulator in this process)
SCENARIOS: dict[str, Any] = {
    "criticalPath": critical_path,
    "throughput": throughput,
    "rotationSweep": rotation_sweep,
    "coldStart": cold_start,
    "footprint": footprint,
    "testSuite": test_suite,
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memoryGB": round(memory / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


async def _run(names: list[str], smoke: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with running() as emulator:
        point_service_at(emulator)
        ctx = Context(emulator, smoke)
        try:
            for name in names:
                started = time.perf_counter()
                print(f"-- {name}", flush=True)
                results[name] = await SCENARIOS[name].run(ctx)
                results[name]["scenarioSeconds"] = round(time.perf_counter() - started, 1)
        finally:
            from shared.testing import reset_clients

            await reset_clients()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="one scenario, tiny sizes (CI)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only these")
    parser.add_argument("--json", type=Path, help="where the figures go (JSON)")
    parser.add_argument("--markdown", type=Path, help="where the table goes (default docs/benchmarks.md)")
    args = parser.parse_args(argv)

    names = args.only or (["criticalPath"] if args.smoke else list(SCENARIOS))
    if args.smoke:
        json_path = args.json or Path(tempfile.mkdtemp(prefix="bench-smoke-")) / "smoke.json"
        markdown_path = args.markdown
    else:
        json_path = args.json or RESULTS
        markdown_path = args.markdown or DOCS

    started = time.perf_counter()
    figures = asyncio.run(_run(names, args.smoke))
    wall = round(time.perf_counter() - started, 1)

    previous: dict[str, Any] = {}
    if args.only and not args.smoke and json_path.exists():
        previous = json.loads(json_path.read_text()).get("scenarios", {})
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "latencyMs": LATENCY_MS,
        "smoke": args.smoke,
        "wallSeconds": wall,
        "ran": names,
        "scenarios": {**previous, **figures},
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"figures: {json_path}")
    if markdown_path is not None:
        markdown_path.write_text(report.markdown(document))
        print(f"table: {markdown_path}")
    print("issue 15's goals (ratio: measure / bound):")
    for goal, measure, bound, ratio, met in report.goals(document["scenarios"]):
        print(f"  {goal}: {measure} (bound {bound}, ratio {ratio:.2f}) {'met' if met else 'NOT MET'}")
    print(f"wall time {wall} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
