"""Dashboard with load: the real DashboardScreen at 1 Hz on a server that works.

The same measurement as ``dashboard`` (the console's whole process CPU time
over wall time, all threads), but the server is busy: ``bench.load`` keeps
three streamed chat requests in flight from its own process (its CPU is not
counted), so every figure, the chart and, on an n-gram server
(``BENCH_VLLM_URL``; e.g. the ``gemma3-270m-cpu-ngram`` profile), the
speculative-decoding panel change every second. Measured after
``BENCH_DASHBOARD_SETTLE_S`` (default 65 s: the 60 s window is full, as it is
for anyone who watches longer than a minute) for ``BENCH_DASHBOARD_SECONDS``.

Goal: CPU time / wall ≤ 2%.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from bench.dashboard_idle import SECONDS, URL, run
from bench.load import load
from bench.results import Goal, record

SETTLE_S = float(os.environ.get("BENCH_DASHBOARD_SETTLE_S", "65"))


def _counters(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        for key in ("vllm:generation_tokens_total", "vllm:spec_decode_num_drafts_total"):
            if line.startswith(key):
                out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def main() -> dict[str, Any]:
    with load(URL):
        before = await asyncio.to_thread(_counters, URL)
        m = await run(URL, SECONDS, SETTLE_S)
        after = await asyncio.to_thread(_counters, URL)
    span = m["settle_s"] + m["wall_s"]
    gen = "vllm:generation_tokens_total"
    drafts = "vllm:spec_decode_num_drafts_total"
    m["server_generation_tok_s"] = (after.get(gen, 0.0) - before.get(gen, 0.0)) / span
    m["spec_decode_moving"] = drafts in after and after[drafts] > before.get(drafts, 0.0)
    return record(
        "dashboard_load",
        title="Dashboard at 1 Hz, loaded server",
        goals=[Goal("process CPU / wall", m["cpu_fraction"] * 100, "%", "<=", 2)],
        metrics=m,
        note=(
            f"real DashboardScreen against {m['url']} under bench.load (3 streamed chats; "
            f"server {m['server_generation_tok_s']:.1f} generated tok/s, spec decode "
            f"{'moving' if m['spec_decode_moving'] else 'NOT moving'}), measured "
            f"{m['wall_s']:.0f} s after {m['settle_s']:.0f} s: {m['cpu_s']:.2f} s CPU, "
            f"chart drawn {m['chart_draws']} times; load average {m['load_average']:.1f} "
            f"on {os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main()), indent=2))
