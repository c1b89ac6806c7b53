"""The k-sweep on the Bench screen (ctrl+k), driven by keys with Pilot.

The plot is checked on a hand-built result (a real sweep costs a server start
per k: tests/test_bench_sweep_real.py runs one through the CLI); Stop is
checked against a real server start: the server the sweep is starting when
Stop is pressed is gone (its PID and its port) when the worker has ended.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
from textual.widgets import Input, Log, Static

from console.app import ConsoleApp
from console.screens.bench import BenchScreen
from console.screens.bench_sweep import SweepScreen
from console.session import Session
from console.widgets.sweep_plot import SweepPlot
from tests.screen_helpers import DOWN_URL, wait_until
from tests.test_bench_sweep import _result
from tests.test_bench_sweep_real import listening, user_profile


async def _open_sweep(app: ConsoleApp, pilot) -> SweepScreen:
    assert isinstance(app.screen, BenchScreen)
    await pilot.press("ctrl+k")
    await wait_until(
        pilot, lambda: isinstance(app.screen, SweepScreen), timeout=10, what="the sweep screen"
    )
    return app.screen  # type: ignore[return-value]


def _fill(screen: SweepScreen, values: dict[str, str]) -> None:
    for wid, value in values.items():
        screen.query_one(f"#{wid}", Input).value = value


async def test_ctrl_k_opens_the_sweep_for_the_profile_and_plots_tok_s_against_k(
    private_state: Path,
) -> None:
    session = Session.create(profile="gemma3-270m-cpu-ngram", remember=False)
    app = ConsoleApp(session, start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        bench = app.screen
        arm_b = bench.query_one("#bench-arm-b", Input)
        await wait_until(pilot, lambda: arm_b.value, timeout=20, what="arm B prefilled")
        screen = await _open_sweep(app, pilot)
        assert screen.query_one("#sweep-profile", Input).value == "gemma3-270m-cpu-ngram"
        assert screen.query_one("#sweep-ks", Input).value == "1,2,3,4,6"
        screen.running = False
        screen._show(_result())
        await pilot.pause()
        plot = screen.query_one("#sweep-plot", SweepPlot)
        assert sorted(plot.series) == [1, 4]  # one series per load
        assert [k for k, _ in plot.series[1]] == [1, 2, 4]
        assert plot.baseline[1] == 10.0 and plot.baseline[4] == 30.0  # the baseline marked
        summary = str(screen.query_one("#sweep-summary", Static).render())
        assert "1 stream" in summary and "4 concurrent" in summary
        assert "best: k=4" in summary and "best: k=2" in summary
        assert "advisor (estimate): k=4" in summary
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is bench, timeout=10, what="back to bench")


async def test_bad_input_is_a_notice(private_state: Path) -> None:
    app = ConsoleApp(Session.create(url=DOWN_URL, remember=False), start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_sweep(app, pilot)
        for values, text in (
            ({"sweep-profile": "gemma3-270m-cpu-ngram", "sweep-ks": "0,x"}, "--sweep-k"),
            ({"sweep-ks": "1,2", "sweep-profile": "no-such"}, "no profile named 'no-such'"),
            ({"sweep-profile": "gemma3-270m-cpu"}, "no serve.speculative_config"),
            ({"sweep-profile": "gemma3-270m-cpu-ngram", "sweep-concurrency": "0"}, "at least 1"),
        ):
            _fill(screen, values)
            await pilot.press("ctrl+r")
            await wait_until(
                pilot,
                lambda text=text: any(text in n.message for n in app._notifications),
                timeout=10,
                what=f"a notice with {text!r}",
            )
            assert not screen.running


async def test_stop_ends_the_server_being_started(private_state: Path) -> None:
    """Stop while the baseline server starts: the worker ends it (`down`) first."""
    _folder, port = user_profile(private_state, "sweep-stop")
    app = ConsoleApp(Session.create(url=DOWN_URL, remember=False), start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_sweep(app, pilot)
        _fill(
            screen,
            {"sweep-profile": "sweep-stop", "sweep-ks": "1", "sweep-concurrency": "1",
             "sweep-per_category": "1", "sweep-max_tokens": "4"},
        )  # fmt: skip
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.running, timeout=10, what="the sweep to start")
        result = screen.result
        assert result is not None
        base = result.servers[0]
        await wait_until(pilot, lambda: base.pid is not None, timeout=120, what="a server PID")
        pid = base.pid
        assert psutil.pid_exists(pid)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not screen.running, timeout=60, what="the sweep to stop")
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert not listening(port)
        assert base.phase == "failed" and base.error == "stopped before it finished"
        assert base.stopped is not None
        log = "\n".join(screen.query_one("#sweep-log", Log).lines)
        assert "sweep ended: stopped" in log
        data = json.loads(Path(screen.json_path).read_text())
        assert data["complete"] is False and data["servers"][0]["phase"] == "failed"
