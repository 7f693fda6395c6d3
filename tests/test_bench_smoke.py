"""The benchmark's smoke run (CI): ``python -m bench.run --smoke`` completes and writes its
figures with the expected keys. Nothing here looks at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.long
def test_bench_smoke_run_writes_its_figures(tmp_path: Path) -> None:
    figures = tmp_path / "smoke.json"
    markdown = tmp_path / "benchmarks.md"
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--json", str(figures), "--markdown", str(markdown)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )

    document = json.loads(figures.read_text())
    assert {"date", "machine", "latencyMs", "wallSeconds", "scenarios"} <= document.keys()
    path = document["scenarios"]["criticalPath"]
    assert {
        "graphRequests",
        "keyVaultRequests",
        "chainToReply",
        "chainRequests",
        "afterReply",
        "toReplyMs",
        "cpuMs",
        "lowerBoundRoundTrips",
        "platformRoundTrips",
        "goalMet",
        "endToEnd",
        "converge",
        "cold",
    } <= path.keys()
    assert path["graphRequests"] > 0 and path["chainToReply"] >= path["platformRoundTrips"]
    assert "| 1 | Critical path" in markdown.read_text()
