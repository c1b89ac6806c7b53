"""Replay screen: the dashboard fed from a history file, with a time cursor.

The figures at any cursor position must be what the live dashboard showed at
that sample: a plain DashboardScreen fed the same samples one by one (the
live path, ``MetricsPolled``) is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console import metrics as M
from console.config import AlertSettings
from console.history.recorder import Recorder
from console.history.replay import ReplaySource
from console.history.store import HistoryStore
from console.screens.dashboard import DashboardScreen, MetricsPolled
from console.screens.replay import ReplayApp, ReplayScreen
from console.widgets.acceptance_bars import AcceptanceBars
from console.widgets.events_panel import EventsPanel
from console.widgets.gauge import Gauge
from console.widgets.stat_tile import StatTile
from console.widgets.throughput_chart import ThroughputChart
from tests.screen_helpers import wait_until
from tests.test_metrics import build_page

SERVER = "http://127.0.0.1:18001"


def shown(screen: DashboardScreen) -> dict[str, Any]:
    """Every figure the dashboard's panels display, by widget id (the GPU/memory
    panel aside: machine readings are not part of the history)."""
    out: dict[str, Any] = {}
    for t in screen.query(StatTile):
        if t.id and not any(a.id == "panel-gpu" for a in t.ancestors):
            out[t.id] = (t.value, t.note)
    g = screen.query_one("#kv-gauge", Gauge)
    out["kv"] = (g.fraction, g.detail)
    out["bars"] = screen.query_one(AcceptanceBars).rates
    out["chart"] = screen.query_one(ThroughputChart).points
    for pid in ("#panel-throughput", "#panel-latency", "#panel-spec"):
        out[pid] = screen.query_one(pid).border_subtitle
    return out


@pytest.fixture
def source(tmp_path: Path) -> ReplaySource:
    store = HistoryStore(tmp_path / "h.sqlite3")
    rec = Recorder(SERVER, store=store, settings=AlertSettings(kv_usage=0.6))
    t0, gen, d, a = 1_800_000_000.0, 0, 0, 0
    for i in range(150):
        if i == 100:
            gen, d, a = 0, 0, 0  # restart
        gen += 5 + (i % 7) * 3
        d += 10
        a += 20 if i < 70 else 4
        if i in (60, 61, 62, 63):
            rec.feed_error("connection refused", at=t0 + i)
            continue
        page = build_page(
            gen=gen,
            prompt=gen * 2,
            kv=0.3 + 0.4 * ((i // 40) % 2),
            waiting=i % 5,
            spec=(d, d * 4, a, (a * 0.5, a * 0.3, a * 0.15, a * 0.05)),
            ttft={"0.1": i, "0.5": 2 * i, "+Inf": 2 * i},
        )
        rec.feed(M.parse_metrics(page, timestamp=t0 + i, url="x"))
    src = ReplaySource.load(store, SERVER)
    store.close()
    return src


async def live_reference(app: ReplayApp, pilot, src: ReplaySource, index: int) -> dict:
    """A plain dashboard fed frames 0..index through the live path."""
    now = src.frames[index].ts
    ref = DashboardScreen(live=False, clock=lambda: now)
    await app.push_screen(ref)
    for f in src.frames[: index + 1]:
        err = None if f.sample is not None else RuntimeError(f.error)
        ref._replayed(MetricsPolled(f.sample, err, at=f.ts))
    await pilot.pause()
    got = shown(ref)
    app.pop_screen()
    await pilot.pause()
    return got


async def test_replay_shows_what_the_live_dashboard_showed(private_state, source) -> None:
    app = ReplayApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await wait_until(pilot, lambda: screen.index == 0, timeout=10, what="the first frame")
        for index in (5, 59, 62, 64, 99, 100, 101, 149, 30):  # jumps, errors, restart, back
            screen.seek(index)
            await pilot.pause()
            replayed = shown(screen)
            assert replayed == await live_reference(app, pilot, source, index), index
        # stepping forward takes the live path, one sample at a time
        screen.seek(40)
        for _ in range(3):
            await pilot.press("right")
        await pilot.pause()
        assert screen.index == 43
        assert shown(screen) == await live_reference(app, pilot, source, 43)


async def test_cursor_keys_and_events(private_state, source) -> None:
    app = ReplayApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.index == 0, timeout=10, what="the first frame")
        cursor = screen.query_one("#replay-cursor")
        assert "sample 1/150" in str(cursor.render())
        await pilot.press("n")
        first = source.event_frames()[0]
        assert screen.index == first
        panel = screen.query_one(EventsPanel)
        assert "kv_high" in str(panel.render())
        await pilot.press("n", "n")
        await pilot.press("p")
        assert screen.index == source.event_frames()[1]
        await pilot.press("end")
        assert screen.index == len(source.frames) - 1
        assert "restarted" in " ".join(e.kind for e in source.events_until(screen.index))
        await pilot.press("home")
        assert screen.index == 0
        await pilot.press("shift+right")
        assert screen.index == 60
        # play: the cursor moves by itself, then pause stops it
        for _ in range(4):
            await pilot.press("plus")
        await pilot.press("space")
        await wait_until(pilot, lambda: screen.index >= 63, timeout=20, what="play to move")
        await pilot.press("space")
        stopped = screen.index
        await pilot.pause(0.5)
        assert screen.index == stopped and not screen.playing
        await pilot.press("e")
        assert not screen.query_one("#dash-events").has_class("-shown")
