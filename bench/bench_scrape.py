"""Scrape-and-derive cost, and the console's steady CPU share when monitoring at 1 Hz.

Three measurements, all as process CPU time (user + system) so a busy machine
inflates wall time but not the figure:

- ``offline``: parse + derive of the real captured page
  (tests/data/vllm-0.32-cpu/metrics_ngram.prom), many cycles; the same page
  parsed with every ``vllm:`` family kept, for the ratio that shows what the
  family filter saves; and what a poller pays with its ``PageParser`` (label
  sets parsed once) on two real pages in turn;
- ``live``: scrape (persistent HTTP client) + parse + derive against a running
  server (``--url``, default $VLLM_CONSOLE_BENCH_URL or http://127.0.0.1:8101);
- ``steady``: ``vllm-console monitor --interval 1`` in its own process for
  ``--seconds`` (text view to a pipe, ``--record`` to a file, GPU sampler on),
  CPU time of that process over wall time. Goal: ≤ 2 % of one core.

Run: ``python -m bench.bench_scrape [--url URL] [--seconds 30]``. Results merge
into bench/results.json under ``scrape``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.results import Goal, record
from console.bench.stats import percentile
from console.metrics import PageParser, derive, parse_metrics, scrape

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "tests" / "data" / "vllm-0.32-cpu" / "metrics_ngram.prom"
DEFAULT_URL = os.environ.get("VLLM_CONSOLE_BENCH_URL", "http://127.0.0.1:8101")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _stats_ms(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "mean_ms": sum(ms) / len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "n": len(ms),
    }


def offline(cycles: int = 300) -> dict[str, Any]:
    """CPU per parse+derive cycle on the captured page (and with no family filter)."""
    text = PAGE.read_text()
    prev = parse_metrics(text, timestamp=0.0)

    def run(names_all: bool) -> list[float]:
        out = []
        for i in range(cycles):
            t0 = time.process_time()
            if names_all:
                s = parse_metrics(text, timestamp=float(i + 1), names=None)
            else:
                s = parse_metrics(text, timestamp=float(i + 1))
            derive(s, prev)
            out.append(time.process_time() - t0)
        return out

    def poller() -> list[float]:
        # What the sampler and `monitor` do: one PageParser, pages that differ in
        # their values (two real captures in turn, so none is skipped as unchanged).
        other = PAGE.with_name("metrics_after_requests.prom").read_text()
        parser = PageParser()
        out = []
        for i in range(cycles):
            page = (text, other)[i % 2]
            t0 = time.process_time()
            s = parser.parse(page, timestamp=float(i + 1))
            derive(s, prev)
            out.append(time.process_time() - t0)
        return out

    run(False)  # warm-up
    filtered = _stats_ms(run(False))
    full = _stats_ms(run(True))
    polled = _stats_ms(poller())
    return {
        "page_bytes": len(text),
        "page_lines": text.count("\n"),
        "parse_derive": filtered,
        "parse_all_families_derive": full,
        "filter_speedup": full["mean_ms"] / filtered["mean_ms"],
        "pageparser_derive": polled,
        "pageparser_speedup": filtered["mean_ms"] / polled["mean_ms"],
    }


def live(url: str, cycles: int = 60) -> dict[str, Any]:
    """CPU and wall per scrape+parse+derive against a real server."""
    cpu, wall = [], []
    with httpx.Client(timeout=5.0) as client:
        prev = scrape(url, client=client)
        for _ in range(cycles):
            c0, w0 = time.process_time(), time.perf_counter()
            s = scrape(url, client=client)
            derive(s, prev)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            prev = s
    return {"url": url, "cpu": _stats_ms(cpu), "wall": _stats_ms(wall)}


def steady(url: str, seconds: float) -> dict[str, Any]:
    """CPU share of a real ``vllm-console monitor --interval 1`` process."""
    folder = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    rec = folder / "rec.jsonl"
    argv = [sys.executable, "-m", "console", "monitor", "--url", url, "--interval", "1"]
    argv += ["--record", str(rec)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        p = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        # Start measuring after the second sample: imports and first scrape done.
        while time.monotonic() < deadline:
            if rec.exists() and len(rec.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"monitor exited: {proc.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        else:
            raise RuntimeError("monitor wrote no samples within 60 s")
        t0, w0 = p.cpu_times(), time.monotonic()
        n0 = len(rec.read_text().splitlines())
        time.sleep(seconds)  # the measurement window itself
        t1, w1 = p.cpu_times(), time.monotonic()
        n1 = len(rec.read_text().splitlines())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    ok = sum(1 for line in rec.read_text().splitlines() if '"ok": true' in line)
    return {
        "url": url,
        "seconds": w1 - w0,
        "cpu_seconds": cpu,
        "cpu_share_pct": 100.0 * cpu / (w1 - w0),
        "samples": n1 - n0,
        "samples_ok_total": ok,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args(argv)

    metrics: dict[str, Any] = {"offline": offline()}
    note = ""
    try:
        httpx.get(args.url.rstrip("/") + "/health", timeout=3.0).raise_for_status()
        reachable = True
    except httpx.HTTPError as exc:
        reachable = False
        note = f"live and steady skipped: {args.url} not reachable ({type(exc).__name__})."
    if reachable:
        metrics["live"] = live(args.url)
        metrics["steady"] = steady(args.url, args.seconds)
    off = metrics["offline"]["parse_derive"]
    goals = [
        Goal("parse+derive CPU per cycle, real page", off["mean_ms"], "ms", "<=", 20.0),
        Goal("family filter speed-up", metrics["offline"]["filter_speedup"], "x", ">=", 1.5),
        Goal(
            "poller (PageParser) parse+derive CPU per cycle",
            metrics["offline"]["pageparser_derive"]["mean_ms"],
            "ms",
            "<=",
            5.0,
        ),
    ]
    if reachable:
        goals.append(
            Goal(
                "scrape+derive CPU per cycle, live",
                metrics["live"]["cpu"]["mean_ms"],
                "ms",
                "<=",
                20.0,
            )
        )
        goals.append(
            Goal(
                "monitor at 1 Hz, CPU share of one core",
                metrics["steady"]["cpu_share_pct"],
                "%",
                "<=",
                2.0,
            )
        )
    note = (note + " " if note else "") + (
        "CPU = process user+system time. steady = a real `vllm-console monitor --interval 1` "
        "process (text view to a pipe, --record on, GPU sampler on)."
    )
    record(
        "scrape",
        title="Metrics scrape and 1 Hz monitoring",
        goals=goals,
        metrics=metrics,
        note=note,
    )
    for g in goals:
        verdict = "ok" if g.met else "MISSED"
        print(f"{g.name}: {g.value:.3f} {g.unit} (goal {g.op} {g.bound}) {verdict}")
    return 0 if all(g.met for g in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
