"""The TUI records what it watches, and replay shows the figures the live
dashboard showed, against a real spec-decode server under load.

The console watches the shared n-gram server (``vllm_ngram_server``) while a
thread sends completions; at a few polls the test notes every figure the
dashboard displays and the sample behind them. The history file the session
wrote is then replayed, the cursor put on each of those samples, and the
replayed dashboard must display the same figures.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from console.app import ConsoleApp
from console.history.replay import ReplaySource
from console.history.store import HistoryStore
from console.screens.replay import ReplayApp, ReplayScreen
from console.session import Session
from tests.screen_helpers import wait_until
from tests.test_screens_replay import shown


def _load(url: str, model: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=120) as c:
        i = 0
        while not stop.is_set():
            i += 1
            c.post(
                f"{url}/v1/completions",
                json={
                    "model": model,
                    "prompt": f"Repeat after me {i}: one two three one two three one two three",
                    "max_tokens": 24,
                },
            )


async def test_replay_shows_what_the_live_dashboard_showed(
    vllm_ngram_server,
    private_state: Path,
) -> None:
    url = vllm_ngram_server.url
    stop = threading.Event()
    load = threading.Thread(target=_load, args=(url, vllm_ngram_server.model, stop), daemon=True)
    load.start()
    seen: list[tuple[float, dict]] = []
    try:
        app = ConsoleApp(Session(url=url), start_mode="dashboard")
        async with app.run_test(size=(120, 40)) as pilot:
            dash = app.screen
            await wait_until(pilot, lambda: dash.polls >= 6, timeout=120, what="six polls")
            while len(seen) < 4:
                before = dash.polls
                await wait_until(pilot, lambda b=before: dash.polls > b, timeout=60, what="a poll")
                await pilot.pause()
                tick = dash.tick
                if tick is not None and tick.sample is not None:
                    seen.append((tick.sample.timestamp, shown(dash)))
    finally:
        stop.set()
        load.join(timeout=120)
    # the compared figures include real throughput, not only an idle server's
    assert any(live["gen-tps"][0] not in ("–", "0.0") for _, live in seen)
    db = private_state / "state" / "history.sqlite3"
    with HistoryStore(db, readonly=True) as store:
        source = ReplaySource.load(store, url)
    assert any(f.sample is not None for f in source.frames)
    replay = ReplayApp(source)
    async with replay.run_test(size=(120, 40)) as pilot:
        screen = replay.screen
        assert isinstance(screen, ReplayScreen)
        await wait_until(pilot, lambda: screen.index == 0, timeout=10, what="the first frame")
        for ts, live in seen:
            index = source.index_at(ts)
            assert source.frames[index].ts == ts  # the very sample the dashboard showed
            screen.seek(index)
            await pilot.pause()
            assert shown(screen) == live, index
