"""Log view: 100,000 build lines at full speed, keys still answered promptly.

A thread pushes 100,000 docker-build-like lines into the console's LogView
(console/widgets/log_view.py) as fast as it can, the way a build or server
log arrives. Meanwhile another thread "presses" a key every 20 ms, posting it
to the app the way Textual's driver does; its round trip is the time from the
press until the screen has been refreshed with the key's effect. RSS is
sampled throughout: with ``max_lines`` the log must stop growing.

Goals: key round trip p99 ≤ 100 ms; RSS growth over the second 50,000 lines
≤ 10 MiB (memory bounded). The same keys are first pressed for a few seconds
with nothing arriving, in the same run: that round trip (the cost of one
frame on this machine, under its current load) is the floor to read the
ingesting one against.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any, ClassVar

import psutil
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from bench.results import Goal, record
from console.bench.stats import percentile
from console.widgets.log_view import LogView

LINES = 100_000
MAX_LINES = 20_000
KEY_EVERY_S = 0.02
IDLE_S = 3.0
SIZE = (120, 40)


def build_line(i: int) -> str:
    step = i // 2000 + 1
    if i % 997 == 0:
        return f"#{step} {i / 100:.3f} WARNING: deprecated option in layer {i}"
    return (
        f"#{step} {i / 100:.3f} Collecting package-{i % 311}==1.{i % 17}.{i % 5} "
        f"(from -r requirements.txt (line {i % 120}))  Downloading {i % 900} kB"
    )


class LogApp(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("x", "ping", "ping")]

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[float] = []
        self.presses = 0

    def compose(self) -> ComposeResult:
        yield Static("keys: 0", id="keys")
        yield LogView(max_lines=MAX_LINES, id="lv")

    def action_ping(self) -> None:
        self.presses += 1
        self.query_one("#keys", Static).update(f"keys: {self.presses}")
        self.call_after_refresh(lambda: self.shown.append(time.monotonic()))


async def run() -> dict[str, Any]:
    app = LogApp()
    proc = psutil.Process()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lv = app.query_one("#lv", LogView)
        loop = asyncio.get_running_loop()

        idle_sent: list[float] = []
        idle_stop = threading.Event()

        def press_idle() -> None:
            while not idle_stop.is_set():
                idle_sent.append(time.monotonic())
                loop.call_soon_threadsafe(app.post_message, events.Key("x", "x"))
                time.sleep(KEY_EVERY_S)

        idler = threading.Thread(target=press_idle, daemon=True)
        idler.start()
        await asyncio.sleep(IDLE_S)
        idle_stop.set()
        idler.join()
        deadline = time.monotonic() + 30
        while len(app.shown) < len(idle_sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        idle_rtts = [(b - a) * 1000 for a, b in zip(idle_sent, app.shown, strict=False)]
        app.shown.clear()
        rss0 = proc.memory_info().rss
        sent: list[float] = []
        rss: list[tuple[int, int]] = []  # (lines shown so far, rss)
        stop = threading.Event()

        def ingest() -> None:
            for i in range(LINES):
                lv.push(build_line(i))

        def press() -> None:
            while not stop.is_set():
                sent.append(time.monotonic())
                loop.call_soon_threadsafe(app.post_message, events.Key("x", "x"))
                rss.append((lv._total, proc.memory_info().rss))
                time.sleep(KEY_EVERY_S)

        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        presser = threading.Thread(target=press, daemon=True)
        feeder = threading.Thread(target=ingest, daemon=True)
        presser.start()
        feeder.start()
        deadline = time.monotonic() + 300
        while lv._total < LINES and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        ingest_s = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        stop.set()
        presser.join()
        feeder.join()
        while len(app.shown) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        shown_lines = len(lv.query_one("#log-lines").lines)
        rss1 = proc.memory_info().rss
    rtts = [(b - a) * 1000 for a, b in zip(sent, app.shown, strict=False)]
    half = next((r for n, r in rss if n >= LINES // 2), rss1)
    return {
        "lines": LINES,
        "max_lines": MAX_LINES,
        "lines_in_log": shown_lines,
        "ingest_s": ingest_s,
        "lines_per_s": LINES / ingest_s,
        "keys_sent": len(sent),
        "keys_shown": len(app.shown),
        "rtt_p50_ms": percentile(rtts, 50),
        "rtt_p99_ms": percentile(rtts, 99),
        "rtt_max_ms": max(rtts) if rtts else None,
        "idle_keys": len(idle_rtts),
        "idle_rtt_p50_ms": percentile(idle_rtts, 50),
        "idle_rtt_p99_ms": percentile(idle_rtts, 99),
        "rss_start_mib": rss0 / 2**20,
        "rss_half_mib": half / 2**20,
        "rss_end_mib": rss1 / 2**20,
        "cpu_fraction": (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / ingest_s,
        "load_average": os.getloadavg()[0],
    }


async def main() -> dict[str, Any]:
    m = await run()
    growth = m["rss_end_mib"] - m["rss_half_mib"]
    return record(
        "log_view",
        title="Log view: 100,000 lines at full speed",
        goals=[
            Goal("key round trip p99 while ingesting", m["rtt_p99_ms"], "ms", "<=", 100),
            Goal("RSS growth, lines 50k→100k", growth, "MiB", "<=", 10),
        ],
        metrics=m,
        note=(
            f"console LogView (max_lines {MAX_LINES:,}); ingest took {m['ingest_s']:.1f} s "
            f"({m['lines_per_s']:,.0f} lines/s); RSS {m['rss_start_mib']:.0f} → "
            f"{m['rss_end_mib']:.0f} MiB; {m['keys_shown']}/{m['keys_sent']} keys answered; "
            f"round trip p50/p99 {m['rtt_p50_ms']:.0f}/{m['rtt_p99_ms']:.0f} ms while "
            f"ingesting vs {m['idle_rtt_p50_ms']:.0f}/{m['idle_rtt_p99_ms']:.0f} ms with "
            f"nothing arriving (same run); load average {m['load_average']:.1f} on "
            f"{os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main()), indent=2))
