"""Scale: 100,000 applications fit in the emulator and list in pages. Prints the emulator's
resident memory after seeding and paging all of them (heavy: `make test-heavy`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.launcher import RunningEmulator
from tests.emulator.graph_helpers import app_query, graph, raw_pages


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.heavy
async def test_hundred_thousand_applications_list_in_pages(emulator: RunningEmulator) -> None:
    before = _rss_mb(emulator.process.pid)
    emulator.admin.seed_applications(count=100_000, prefix="scale", ownedByService=True)
    seeded = _rss_mb(emulator.process.pid)
    async with graph(emulator) as client:
        first = client.applications.to_get_request_information(app_query(top=999))
        seen: set[str] = set()
        pages = 0
        async for page in raw_pages(client, first):
            pages += 1
            seen.update(a["id"] for a in page["value"])
    after = _rss_mb(emulator.process.pid)
    print(
        f"\nemulator RSS: {before:.0f} MB at start, {seeded:.0f} MB after seeding 100k apps, "
        f"{after:.0f} MB after paging all of them ({pages} pages of up to 999)"
    )
    assert len(seen) == 100_002
