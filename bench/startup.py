"""Startup to first frame: the console against a hello-world Textual app.

Each run is a fresh interpreter (``bench.startup_probe``) timed from spawn
to its first painted frame; the two apps alternate so slow drift on the box
hits both. The console opens its default screen (the dashboard) pointed at a
URL where nothing listens, so no server answer is waited for.

Goal: median console / median hello-world ≤ 2.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from typing import Any

from bench.results import Goal, record
from console.bench_stats import median

RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "5"))


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_one(which: str) -> tuple[float, float]:
    """(wall seconds to the first frame, CPU seconds of the whole child)."""
    env = {
        **os.environ,
        "VLLM_CONSOLE_STATE_DIR": os.environ.get("BENCH_STATE_DIR", "/tmp/vc-bench-state"),
    }
    cpu0 = _child_cpu()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.startup_probe", which],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "FRAME":
            elapsed = time.monotonic() - t0
            break
    else:
        proc.wait()
        raise RuntimeError(f"startup probe {which!r} exited ({proc.returncode}) without a frame")
    proc.wait(timeout=30)
    return elapsed, _child_cpu() - cpu0


def run(runs: int = RUNS) -> dict[str, Any]:
    time_one("hello")  # warm the page cache (imports) before timing anything
    time_one("console")
    hello: list[tuple[float, float]] = []
    console: list[tuple[float, float]] = []
    for _ in range(runs):
        hello.append(time_one("hello"))
        console.append(time_one("console"))
    mh, mc = median([w for w, _ in hello]), median([w for w, _ in console])
    ch, cc = median([c for _, c in hello]), median([c for _, c in console])
    assert mh is not None and mc is not None and ch is not None and cc is not None
    return {
        "runs": runs,
        "hello_s": [w for w, _ in hello],
        "console_s": [w for w, _ in console],
        "hello_median_s": mh,
        "console_median_s": mc,
        "ratio": mc / mh,
        "hello_cpu_median_s": ch,
        "console_cpu_median_s": cc,
        "cpu_ratio": cc / ch,
        "load_average": os.getloadavg(),
    }


def main() -> dict[str, Any]:
    m = run()
    return record(
        "startup",
        title="Startup to first frame",
        goals=[
            Goal("console / hello-world, wall (medians)", m["ratio"], "x", "<=", 2),
            Goal("console / hello-world, CPU (medians)", m["cpu_ratio"], "x", "<=", 2),
        ],
        metrics=m,
        note=(
            f"median of {m['runs']} fresh processes each: console "
            f"{m['console_median_s']:.2f} s, hello-world {m['hello_median_s']:.2f} s wall; "
            f"CPU {m['console_cpu_median_s']:.2f} s vs {m['hello_cpu_median_s']:.2f} s; "
            f"load average {m['load_average'][0]:.1f} on {os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
