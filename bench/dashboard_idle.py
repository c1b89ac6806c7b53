"""Dashboard idle cost: the real DashboardScreen polling a real server at 1 Hz.

The console's whole process CPU time (all threads: the metrics worker, the
GPU sampler, rendering) over 60 s of wall time, with the dashboard on screen
and nobody touching it. The server is the dev server (``BENCH_VLLM_URL``,
default http://127.0.0.1:8100); what it does doesn't matter, only what
watching it costs the console.

Goal: CPU time / wall ≤ 2%.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import psutil

from bench.results import Goal, record
from console.app import ConsoleApp
from console.screens.dashboard import DashboardScreen
from console.session import Session
from console.widgets.throughput_chart import ThroughputChart

URL = os.environ.get("BENCH_VLLM_URL", "http://127.0.0.1:8100")
SECONDS = float(os.environ.get("BENCH_DASHBOARD_SECONDS", "60"))
SETTLE_S = 5.0
SIZE = (120, 40)


async def run(
    url: str = URL, seconds: float = SECONDS, settle_s: float = SETTLE_S
) -> dict[str, Any]:
    """The dashboard on ``url`` for ``settle_s``, then its CPU over ``seconds``."""
    async with httpx.AsyncClient() as client:
        try:
            (await client.get(url + "/health", timeout=5)).raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"no vLLM server at {url} ({exc}); start one or set BENCH_VLLM_URL"
            ) from exc
    proc = psutil.Process()
    app = ConsoleApp(Session.create(url=url, remember=False), start_mode="dashboard")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen), app.screen
        await asyncio.sleep(settle_s)  # first scrape, server info, first GPU sample
        chart = app.screen.query_one(ThroughputChart)
        draws0 = chart.draws
        c0 = proc.cpu_times()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - t0
        c1 = proc.cpu_times()
        draws = chart.draws - draws0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "url": url,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_fraction": cpu / wall,
        "chart_draws": draws,
        "settle_s": settle_s,
        "threads": proc.num_threads(),
        "load_average": os.getloadavg()[0],
    }


async def main() -> dict[str, Any]:
    m = await run()
    return record(
        "dashboard_idle",
        title="Dashboard idle at 1 Hz",
        goals=[Goal("process CPU / wall", m["cpu_fraction"] * 100, "%", "<=", 2)],
        metrics=m,
        note=(
            f"real DashboardScreen against {m['url']} for {m['wall_s']:.0f} s: "
            f"{m['cpu_s']:.2f} s CPU; load average {m['load_average']:.1f} "
            f"on {os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main()), indent=2))
