"""Startup to first frame: the console against a hello-world Textual app.

Each run is a fresh interpreter (``bench.startup_probe``) timed from spawn
to its first painted frame; the two apps alternate so slow drift on the box
hits both. The console opens its default screen (the dashboard) pointed at a
URL where nothing listens, so no server answer is waited for.

Goal: median console / median hello-world ≤ 2, for the wall time to the first
frame and for the CPU time to it (the process's CPU, every thread, read by the
probe when it prints the frame: robust to other load on the box). The CPU of
the whole child to its exit is recorded too, without a goal: it adds the
teardown and whatever the app starts after its first frame (the console's
history and first scrape), which no one waits for before seeing the screen.

Also recorded, with no goal: ``vllm-console --help`` (builds the whole argparse
tree, so it shows when a command module imports something heavy at the top)
against a bare ``python -c pass``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from typing import Any

from bench.results import Goal, record
from console.bench.stats import median

RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "5"))


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_one(which: str) -> tuple[float, float, float]:
    """(wall seconds to the first frame, CPU seconds of the child up to its first
    frame, CPU seconds of the whole child to its exit)."""
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
        word, _, cpu = line.strip().partition(" ")
        if word == "FRAME":
            elapsed = time.monotonic() - t0
            frame_cpu = float(cpu)
            break
    else:
        proc.wait()
        raise RuntimeError(f"startup probe {which!r} exited ({proc.returncode}) without a frame")
    proc.wait(timeout=30)
    return elapsed, frame_cpu, _child_cpu() - cpu0


def time_command(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv`` to its exit."""
    cpu0 = _child_cpu()
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0, _child_cpu() - cpu0


def run_cli(runs: int = RUNS) -> dict[str, float]:
    """Medians of ``vllm-console --help`` and of a bare interpreter, alternating."""
    bare: list[tuple[float, float]] = []
    cli: list[tuple[float, float]] = []
    for _ in range(runs):
        bare.append(time_command([sys.executable, "-c", "pass"]))
        cli.append(time_command([sys.executable, "-m", "console", "--help"]))
    out: dict[str, float] = {}
    for key, samples in (("python_bare", bare), ("cli_help", cli)):
        wall, cpu = median([w for w, _ in samples]), median([c for _, c in samples])
        assert wall is not None and cpu is not None
        out[f"{key}_median_s"], out[f"{key}_cpu_median_s"] = wall, cpu
    return out


def run(runs: int = RUNS) -> dict[str, Any]:
    time_one("hello")  # warm the page cache (imports) before timing anything
    time_one("console")
    hello: list[tuple[float, float, float]] = []
    console: list[tuple[float, float, float]] = []
    for _ in range(runs):
        hello.append(time_one("hello"))
        console.append(time_one("console"))

    def med(samples: list[tuple[float, float, float]], i: int) -> float:
        m = median([s[i] for s in samples])
        assert m is not None
        return m

    mh, mc = med(hello, 0), med(console, 0)
    ch, cc = med(hello, 1), med(console, 1)
    eh, ec = med(hello, 2), med(console, 2)
    return {
        "runs": runs,
        "hello_s": [s[0] for s in hello],
        "console_s": [s[0] for s in console],
        "hello_median_s": mh,
        "console_median_s": mc,
        "ratio": mc / mh,
        "hello_cpu_median_s": ch,
        "console_cpu_median_s": cc,
        "cpu_ratio": cc / ch,
        "hello_cpu_to_exit_median_s": eh,
        "console_cpu_to_exit_median_s": ec,
        "cpu_to_exit_ratio": ec / eh,
        **run_cli(runs),
        "load_average": os.getloadavg(),
    }


def main() -> dict[str, Any]:
    m = run()
    return record(
        "startup",
        title="Startup to first frame",
        goals=[
            Goal("console / hello-world, wall (medians)", m["ratio"], "x", "<=", 2),
            Goal(
                "console / hello-world, CPU to the first frame (medians)",
                m["cpu_ratio"],
                "x",
                "<=",
                2,
            ),
        ],
        metrics=m,
        note=(
            f"median of {m['runs']} fresh processes each: console "
            f"{m['console_median_s']:.2f} s, hello-world {m['hello_median_s']:.2f} s wall; "
            f"CPU to the first frame {m['console_cpu_median_s']:.2f} s vs "
            f"{m['hello_cpu_median_s']:.2f} s; CPU to exit (teardown and what runs after "
            f"the frame, no goal) {m['console_cpu_to_exit_median_s']:.2f} s vs "
            f"{m['hello_cpu_to_exit_median_s']:.2f} s "
            f"({m['cpu_to_exit_ratio']:.2f}x); "
            f"`vllm-console --help` {m['cli_help_median_s']:.2f} s wall "
            f"({m['cli_help_cpu_median_s']:.2f} s CPU), bare python "
            f"{m['python_bare_median_s']:.2f} s; "
            f"load average {m['load_average'][0]:.1f} on {os.cpu_count()} CPUs. "
            "Before the first frame stopped waiting for the history and the sampler: "
            "3.33x wall, 3.52x CPU (2026-12-02, load 16-19); what each step saved: "
            "bench/README.md, startup."
        ),
    )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
