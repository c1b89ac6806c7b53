"""The server screen: status of a real server, start-up phases from a real log,
log filter, and (once, expensive) start/stop of a real local server by keys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console import logs as L
from console.app import ConsoleApp
from console.profiles import load_profile, with_overrides
from console.runtime.base import ServerState
from console.screens.server import LogEvents, ServerScreen
from console.session import Session
from console.widgets.log_view import LogView
from console.widgets.startup_progress import Phase, StartupProgress
from tests.helpers import free_port
from tests.screen_helpers import DATA, DOWN_URL, wait_until


def server_screen(app: ConsoleApp) -> ServerScreen:
    screen = app.screen
    assert isinstance(screen, ServerScreen), screen
    return screen


def status_text(screen: ServerScreen) -> str:
    return str(screen.query_one("#srv-status").render())


@pytest.mark.usefixtures("private_state")
async def test_attached_by_url_shows_real_server_ready(vllm_server) -> None:
    app = ConsoleApp(Session(url=vllm_server.url), start_mode="server")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = server_screen(app)
        await wait_until(pilot, lambda: screen.status is not None, timeout=15, what="a status")
        assert screen.status.state == ServerState.READY, screen.status
        assert "READY" in status_text(screen) and vllm_server.url in status_text(screen)
        assert screen.query_one(StartupProgress).state_of("ready") == Phase.DONE
        # Without a profile there is nothing to start: a notice, not a crash.
        await pilot.press("s")
        await pilot.pause()
        assert screen.busy is None


@pytest.mark.usefixtures("private_state")
async def test_nothing_listening_is_absent() -> None:
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="server")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = server_screen(app)
        await wait_until(pilot, lambda: screen.status is not None, timeout=15, what="a status")
        assert screen.status.state == ServerState.ABSENT
        assert "ABSENT" in status_text(screen)


@pytest.mark.parametrize(
    ("log", "graphs"),
    [("server_baseline.log", Phase.SKIPPED), ("server_ngram.log", Phase.SKIPPED)],
)
@pytest.mark.usefixtures("private_state")
async def test_startup_phases_and_filter_from_a_real_log(log: str, graphs: Phase) -> None:
    lines = (DATA / "serverlog" / log).read_text().splitlines()
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="server")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = server_screen(app)
        await wait_until(pilot, lambda: screen.status is not None, timeout=15, what="a status")
        parser = L.LogParser()

        def feed_all() -> None:  # as the runtime's on_line callback does, in a thread
            for line in lines:
                screen._feed(parser, line)
            if rest := parser.flush():
                screen.post_message(LogEvents(rest))

        await asyncio.to_thread(feed_all)
        phases = screen.query_one(StartupProgress)
        await wait_until(
            pilot, lambda: phases.state_of("ready") == Phase.DONE, timeout=10, what="ready phase"
        )
        for key in ("process", "weights", "kv_cache", "engine"):
            assert phases.state_of(key) == Phase.DONE, key
        assert phases.state_of("graphs") == graphs
        assert "tokens" in phases.phases["kv_cache"].detail
        view = screen.query_one(LogView)
        await wait_until(pilot, lambda: len(view.lines) == len(lines), timeout=10, what="all lines")

        everything = len(view.shown_lines)
        await pilot.press("slash")
        await pilot.press(*"KV cache size")
        await pilot.press("enter")
        await pilot.pause()
        shown = view.shown_lines
        assert shown and all("kv cache size" in line.lower() for line in shown)
        await pilot.press("escape")
        await pilot.pause()
        assert len(view.shown_lines) == everything
        # The console's own /metrics polls are hidden by default; "m" shows them.
        polls = [x for x in lines if L.METRICS_POLL.search(x)]
        assert polls and not any(L.METRICS_POLL.search(x) for x in view.shown_lines)
        await pilot.press("m")
        await pilot.pause()
        assert len(view.shown_lines) == everything + len(polls)
        await pilot.press("m")
        await pilot.pause()
        assert len(view.shown_lines) == everything
        # KV capacity from the log reaches the session's sampler (older servers'
        # /metrics lack it).
        sizes = [e for e in screen.events if isinstance(e, L.KvCacheSize)]
        assert sizes and sizes[-1].tokens
        tracker = app.session.sampler.tracker
        assert tracker.kv_capacity_tokens_from_log == sizes[-1].tokens


@pytest.mark.usefixtures("private_state")
async def test_profile_server_started_elsewhere_shows_ready_not_absent(vllm_server) -> None:
    """A server this console did not start, answering on the profile's address."""
    port = int(vllm_server.url.rsplit(":", 1)[1])
    profile = with_overrides(load_profile("gemma3-270m-cpu"), port=port)
    session = Session()
    session.set_profile(profile, remember=False)
    app = ConsoleApp(session, start_mode="server")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = server_screen(app)
        await wait_until(pilot, lambda: screen.status is not None, timeout=30, what="a status")
        assert screen.status.state == ServerState.READY, screen.status.detail
        assert "not started by this console" in screen.status.detail


@pytest.mark.slow
@pytest.mark.usefixtures("private_state")
async def test_start_reattach_stop_a_real_local_server(tmp_path: Path) -> None:
    """The one expensive test: start gemma3-270m-cpu by key, re-attach, stop."""
    profile = with_overrides(load_profile("gemma3-270m-cpu"), port=free_port())
    session = Session()
    session.set_profile(profile, remember=False)
    app = ConsoleApp(session, start_mode="server")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = server_screen(app)
        await wait_until(pilot, lambda: screen.status is not None, timeout=30, what="a status")
        assert screen.status.state in (ServerState.ABSENT, ServerState.STOPPED)
        await pilot.press("s")
        await wait_until(
            pilot,
            lambda: screen.busy is None and screen.status.state != ServerState.STARTING,
            timeout=540,
            what="the server to come up",
            step=1.0,
        )
        assert screen.status.state == ServerState.READY, screen.status.detail
        phases = screen.query_one(StartupProgress)
        assert phases.state_of("graphs") == Phase.SKIPPED  # enforce-eager in the profile
        assert phases.state_of("kv_cache") == Phase.DONE
        assert phases.state_of("ready") == Phase.DONE
        assert screen.status.log_path is not None and Path(screen.status.log_path).is_file()

    try:
        # A new console finds the running server and replays its log.
        app2 = ConsoleApp(session, start_mode="server")
        async with app2.run_test(size=(80, 24)) as pilot:
            screen = server_screen(app2)
            await wait_until(pilot, lambda: screen.status is not None, timeout=30, what="status")
            assert screen.status.state == ServerState.READY
            phases = screen.query_one(StartupProgress)
            await wait_until(
                pilot, lambda: phases.state_of("kv_cache") == Phase.DONE, timeout=30, what="replay"
            )
            await pilot.press("x")
            await wait_until(
                pilot,
                lambda: screen.busy is None and screen.status.state == ServerState.STOPPED,
                timeout=60,
                what="the server to stop",
            )
    finally:
        from console.runtime import runtime_for

        runtime_for(profile).down(profile)


def test_image_summary_reads_the_build_provenance() -> None:
    from console.profiles import image_labels
    from console.runtime.base import ServerStatus
    from console.screens.server import image_summary

    profile = load_profile("gemma4-26b-mtp")
    labels = image_labels(profile)
    text = image_summary(
        profile, ServerStatus(profile.name, "docker", ServerState.READY, image=labels)
    )
    assert profile.image.tag in text
    assert f"vLLM: {profile.image.vllm_ref}" in text
    assert labels["vllm-console.patches"] in text
    local = image_summary(load_profile("gemma3-270m-cpu"), None)
    assert local.startswith("local process:") and "gemma3-270m" in local
