"""The Bench screen driven by keys against the real small-Gemma servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Input, Log, Static

from console.app import ConsoleApp
from console.screens.bench import BenchScreen, arm_spec
from console.session import Session
from tests.screen_helpers import DOWN_URL, wait_until


def test_arm_text_is_a_url_or_a_profile() -> None:
    assert arm_spec("A", "http://127.0.0.1:8100").url == "http://127.0.0.1:8100"
    assert arm_spec("A", "127.0.0.1:8101").url == "http://127.0.0.1:8101"
    spec = arm_spec("B", "gemma3-270m-cpu-ngram")
    assert spec.profile == "gemma3-270m-cpu-ngram" and spec.url is None


async def _fill(app: ConsoleApp, values: dict[str, str]) -> None:
    screen = app.screen
    for wid, value in values.items():
        screen.query_one(f"#{wid}", Input).value = value


async def test_tiny_bench_fills_the_table(
    private_state: Path, vllm_server: Any, vllm_ngram_server: Any
) -> None:
    app = ConsoleApp(Session.create(url=vllm_server.url, remember=False), start_mode="bench")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, BenchScreen)
        assert screen.query_one("#bench-arm-a", Input).value == vllm_server.url
        await _fill(
            app,
            {
                "bench-arm-b": vllm_ngram_server.url,
                "bench-sequential": "1",
                "bench-concurrent": "1",
                "bench-max_tokens": "8",
                "bench-repeats": "1",
                "bench-warmup": "0",
            },
        )
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.running, timeout=5, what="the bench to start")
        await wait_until(pilot, lambda: not screen.running, timeout=240, what="the bench to end")
        table = screen.query_one("#bench-table", DataTable)
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "Sequential ×1 wall" in labels and "Concurrent ×1 wall" in labels
        assert "  acceptance length" in labels
        headline = str(screen.query_one("#bench-headline", Static).render())
        assert "Sequential ×1 wall:" in headline and "Lossless check (greedy)" in headline
        assert screen.json_path is not None and screen.json_path.is_relative_to(private_state)
        data = json.loads(screen.json_path.read_text())
        assert data["complete"] is True
        assert all(r["output_tokens"] == 8 for r in data["runs"])
        # ctrl+o replays the run's samples: arm A's server, then arm B's
        from console.screens.replay import ReplayScreen

        for url in (vllm_server.url, vllm_ngram_server.url):
            await pilot.press("ctrl+o")
            await wait_until(
                pilot, lambda: isinstance(app.screen, ReplayScreen), timeout=10, what="replay"
            )
            replay = app.screen
            assert replay.source.server == url and replay.source.frames
            assert screen.samples is not None
            assert all(screen.samples.started - 1 <= f.ts for f in replay.source.frames)
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, timeout=10, what="back")


async def test_opens_without_a_text_field_focused_and_arms_from_the_profile_pair(
    private_state: Path,
) -> None:
    """Digits switch screens at once; the arms are the active profile's A/B pair."""
    session = Session.create(profile="gemma3-270m-cpu-ngram", remember=False)
    app = ConsoleApp(session, start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, BenchScreen)
        assert not isinstance(app.focused, Input), app.focused
        arm_a = screen.query_one("#bench-arm-a", Input)
        arm_b = screen.query_one("#bench-arm-b", Input)
        await wait_until(pilot, lambda: arm_b.value, timeout=20, what="arm B prefilled")
        assert (arm_a.value, arm_b.value) == ("gemma3-270m-cpu", "gemma3-270m-cpu-ngram")
        await pilot.press("1")
        await wait_until(
            pilot, lambda: app.current_mode == "dashboard", timeout=10, what="key 1: dashboard"
        )


def test_ab_pair_both_ways() -> None:
    from console.profiles.counterpart import ab_pair
    from console.profiles.loader import discover

    profiles, _ = discover()
    by = {p.name: p for p in profiles}
    for active in ("gemma3-270m-cpu", "gemma3-270m-cpu-ngram"):
        pair = ab_pair(by[active], profiles)
        assert pair is not None
        assert (pair.baseline, pair.speculative) == ("gemma3-270m-cpu", "gemma3-270m-cpu-ngram")
    pair = ab_pair(by["gemma4-26b-mtp"], profiles)
    assert pair is not None
    assert (pair.baseline, pair.speculative) == ("gemma4-26b-baseline", "gemma4-26b-mtp")


async def test_bad_input_is_a_notice_not_a_crash(private_state: Path) -> None:
    app = ConsoleApp(Session.create(url=DOWN_URL, remember=False), start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _fill(app, {"bench-repeats": "0"})
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not screen.running
        assert any("--repeats" in n.message for n in app._notifications)
        await _fill(app, {"bench-repeats": "1", "bench-sequential": "1", "bench-concurrent": "0"})
        await pilot.press("ctrl+r")
        await wait_until(
            pilot,
            lambda: any(DOWN_URL in n.message for n in app._notifications),
            timeout=30,
            what="a notice naming the unreachable URL",
        )
        await wait_until(pilot, lambda: not screen.running, timeout=5, what="the run to end")
        assert "bench ended" in "\n".join(screen.query_one("#bench-log", Log).lines)
