"""The build screen fed with real build streams (Docker SDK captures, BuildKit
and Podman text) through the Docker engineer's parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import ProgressBar, Static

from console.app import ConsoleApp
from console.buildlog import BuildDone, BuildOutput, parse_chunks, parse_lines
from console.screens.build import DONE, FAILED, IDLE, BuildScreen
from console.session import Session
from console.widgets.log_view import LogView
from tests.screen_helpers import DATA, DOWN_URL, wait_until

BUILDLOG = DATA / "buildlog"


def events_of(name: str) -> list:
    path = BUILDLOG / name
    if name.endswith(".jsonl"):
        chunks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return list(parse_chunks(chunks))
    return list(parse_lines(path.read_text().splitlines()))


def build_screen(app: ConsoleApp) -> BuildScreen:
    screen = app.screen
    assert isinstance(screen, BuildScreen), screen
    return screen


@pytest.mark.parametrize(
    "name",
    [
        "classic_fail.jsonl",
        "buildkit_20.10_fail.txt",
        "buildkit_buildx_fail.txt",
        "podman_fail.txt",
    ],
)
@pytest.mark.usefixtures("private_state")
async def test_failed_build_highlights_the_failing_step(name: str, tmp_path: Path) -> None:
    events = events_of(name)
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = build_screen(app)
        assert screen.state == IDLE
        screen.replay(events, log_path=tmp_path / "build.log", tag="local/test:1")
        await wait_until(pilot, lambda: screen.state != "building", timeout=10, what="the end")
        assert screen.state == FAILED
        assert screen.failed_step is not None
        failure = screen.query_one("#build-failure", Static)
        assert failure.display and not failure.has_class("-none")
        text = str(failure.render())
        assert f"step {screen.failed_step.index}/" in text
        assert screen.failed_step.instruction in text
        status = str(screen.query_one("#build-status", Static).render())
        assert "FAILED" in status and str(tmp_path / "build.log") in status
        step_line = str(screen.query_one("#build-step", Static).render())
        assert step_line.startswith(f"step {screen.step.index}/")
        # Every output line reached the log (the ERROR line included).
        view = screen.query_one(LogView)
        outputs = [e.text for e in events if isinstance(e, BuildOutput)]
        await wait_until(
            pilot, lambda: len(view.lines) >= len(outputs), timeout=10, what="all log lines"
        )
        assert any(line.startswith("ERROR:") for line in view.lines)


@pytest.mark.parametrize("name", ["classic_ok.jsonl", "buildkit_20.10_ok.txt", "podman_ok.txt"])
@pytest.mark.usefixtures("private_state")
async def test_successful_build_completes_progress(name: str) -> None:
    events = events_of(name)
    assert isinstance(events[-1], BuildDone)
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = build_screen(app)
        screen.replay(events, tag="local/test:1")
        await wait_until(pilot, lambda: screen.state != "building", timeout=10, what="the end")
        assert screen.state == DONE
        bar = screen.query_one(ProgressBar)
        assert bar.total and bar.progress == bar.total
        assert screen.query_one("#build-failure", Static).has_class("-none")
        status = str(screen.query_one("#build-status", Static).render())
        assert "DONE" in status and "image " in status


@pytest.mark.usefixtures("private_state")
async def test_high_volume_output_stays_responsive() -> None:
    """100k output lines (a pip install's worth, many times over) are batched."""
    events = events_of("classic_ok.jsonl")
    flood = [
        BuildOutput(f"Collecting package-{i} (from -r requirements.txt)") for i in range(100_000)
    ]
    events = events[:-1] + flood + events[-1:]
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = build_screen(app)
        screen.replay(events, tag="local/test:1")
        await wait_until(pilot, lambda: screen.state == DONE, timeout=60, what="the end")
        view = screen.query_one(LogView)
        # The build is done, so every line is queued; each tick moves a bounded share.
        await wait_until(
            pilot,
            lambda: view._total >= 100_000 and view._total == view._pushed,
            timeout=30,
            what="all lines",
        )
        assert len(view.lines) == view.max_lines  # the oldest dropped, the newest kept
        assert view.lines[-1].startswith("Collecting package-99999") or "99999" in "".join(
            view.lines[-3:]
        )


@pytest.mark.usefixtures("private_state")
async def test_build_without_a_docker_profile_says_why() -> None:
    from console.profiles import load_profile

    session = Session(url=DOWN_URL)
    session.set_profile(load_profile("gemma3-270m-cpu"), remember=False)
    app = ConsoleApp(session, start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = build_screen(app)
        await pilot.press("b")
        await pilot.pause()
        assert screen.state == IDLE
        assert any("no image to build" in n.message for n in app._notifications)
        assert "nothing to build" in str(screen.query_one("#build-status", Static).render())


@pytest.mark.slow
@pytest.mark.usefixtures("private_state")
async def test_real_build_by_key_then_cancel(tmp_path: Path, docker_engine, busybox_image) -> None:
    """A real engine build started with `b`, watched step by step, cancelled with `c`."""
    import uuid

    import yaml

    from console.profiles import load_profile

    nonce = uuid.uuid4().hex[:8]  # a step no engine has cached (a reused engine keeps layers)
    spec = {
        "name": "bb-cancel",
        "runtime": "docker",
        "image": {
            "base": busybox_image,
            "tag": "vllm-console-test/bb-screen:1",
            "steps": [
                f"RUN echo first-step-output {nonce}",
                f"RUN echo sleeping {nonce}; sleep 60",
            ],
        },
        "serve": {"model": "/models/none"},
    }
    path = tmp_path / "bb-cancel.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    session = Session(url=DOWN_URL)
    session.set_profile(load_profile(str(path)), remember=False)
    app = ConsoleApp(session, start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = build_screen(app)
        await pilot.press("b")
        await wait_until(
            pilot,
            lambda: screen.step is not None and "sleep 60" in screen.step.instruction,
            timeout=120,
            what="the sleeping step to run",
        )
        assert screen.state == "building"
        assert screen.step is not None and "sleep 60" in screen.step.instruction
        assert screen.log_path is not None and screen.log_path.is_file()
        assert any("first-step-output" in line for line in screen.query_one(LogView).lines)
        await pilot.press("c")
        await wait_until(pilot, lambda: screen.state != "building", timeout=60, what="the cancel")
        assert screen.state == "cancelled"
        status = str(screen.query_one("#build-status", Static).render())
        assert "CANCELLED" in status and str(screen.log_path) in status
        # The log file on disk has what the screen showed, as it happened.
        assert "first-step-output" in screen.log_path.read_text()


async def test_log_view_bounds_each_tick_and_paces_a_flooding_thread() -> None:
    """A tick moves at most ``chunk`` lines; a thread that floods the view waits
    for the UI instead of queueing without end; every line is counted and the
    newest ``max_lines`` end up shown."""
    import threading

    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(max_lines=3_000, chunk=500, flush_interval=0.05, id="lv")

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.push_lines(f"early {i}" for i in range(400))  # UI thread: never waits
        view.flush(limit=100)
        assert view._total == 100 and len(view.shown_lines) == 100
        view.flush()
        assert view._total == 400
        most_queued = 0

        def flood() -> None:
            nonlocal most_queued
            for i in range(20_000):
                view.push(f"line {i}")
                most_queued = max(most_queued, len(view._pending))

        feeder = threading.Thread(target=flood)
        feeder.start()
        await wait_until(pilot, lambda: not feeder.is_alive(), timeout=60, what="the feeder")
        feeder.join()
        await wait_until(pilot, lambda: view._total == 20_400, timeout=30, what="all lines")
        # Paced: the queue stayed near one tick's worth (the hard cap is max_lines).
        assert most_queued <= 2 * view.chunk
        assert view.lines[-1] == "line 19999" and len(view.lines) == 3_000
        assert view.shown_lines == view.lines


async def test_log_view_measures_wide_and_tabbed_lines() -> None:
    """The log's scrollable width covers the widest line: ASCII by length,
    tabs expanded, double-width characters counted twice."""
    from rich.cells import cell_len
    from textual.app import App, ComposeResult
    from textual.widgets import Log

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(id="lv")

    app = One()
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.query_one(LogView)
        log = view.query_one(Log)
        view.write_lines(["a" * 50])
        await pilot.pause()
        assert log.virtual_size.width == 50
        view.write_lines(["\tx" * 10])
        await pilot.pause()
        assert log.virtual_size.width == len(("\tx" * 10).expandtabs()) == 81
        wide = "模型" * 40
        view.write_lines([wide])
        await pilot.pause()
        assert log.virtual_size.width == cell_len(wide) == 160
