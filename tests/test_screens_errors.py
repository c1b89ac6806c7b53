"""What the TUI shows when things around it are broken: a Docker engine that
does not answer (Server screen), a remembered profile that no longer loads,
an empty chat message, and the title of a failed worker's notice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.app import ConsoleApp, worker_title
from console.profiles import load_profile
from console.runtime.base import ServerState
from console.screens.server import ServerScreen
from console.session import Session
from tests.screen_helpers import DOWN_URL, wait_until


def notices(app: ConsoleApp) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


async def test_docker_engine_down_is_one_clean_line_not_checking(
    private_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{private_state}/no-docker.sock")
    profile = load_profile("gemma4-26b-mtp")
    assert profile.runtime == "docker"
    session = Session()
    session.set_profile(profile, remember=False)
    app = ConsoleApp(session, start_mode="server")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ServerScreen)
        await wait_until(pilot, lambda: screen.status is not None, timeout=30, what="a status")
        assert screen.status.state == ServerState.UNKNOWN, screen.status
        text = str(screen.query_one("#srv-status").render())
        assert "checking" not in text and "STARTING" not in text
        assert "UNKNOWN" in text and "cannot reach the Docker engine" in text
        assert "no engine socket there" in text
        assert "Traceback" not in text and "FileNotFoundError" not in text
        # Starting fails the same way: a notice titled for a person, no STARTING left.
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.busy is None, timeout=30, what="the action")
        await pilot.pause()
        assert screen.status.state == ServerState.UNKNOWN
        titles = [title for title, _ in notices(app)]
        assert "could not start gemma4-26b-mtp" in titles, titles
        message = dict(notices(app))["could not start gemma4-26b-mtp"]
        assert "\n" not in message and "cannot reach the Docker engine" in message
        assert not any("_lifecycle" in t for t in titles)


async def test_a_broken_remembered_profile_is_a_visible_notice(private_state: Path) -> None:
    folder = private_state / "config" / "profiles"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("name: mine\nruntime: local\nserve: {}\n")
    state = private_state / "state"
    state.mkdir()
    (state / "session.json").write_text(json.dumps({"profile": "mine"}))
    session = Session.create(url=DOWN_URL)
    assert session.profile is None
    app = ConsoleApp(session, start_mode="dashboard")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: notices(app), timeout=10, what="a notice")
        (title, message), *_ = notices(app)
        assert title == "profile not loaded"
        assert "'mine' does not load" in message and "serve.model" in message
        assert str(folder / "mine.yaml") in message


async def test_the_empty_chat_message_is_not_sent(private_state: Path) -> None:
    from textual.widgets import Input

    from console.screens.chat import ChatScreen

    app = ConsoleApp(Session(url=DOWN_URL), start_mode="chat")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        field = screen.query_one("#chat-input", Input)
        field.focus()
        for text in ("", "   "):
            field.value = text
            await pilot.press("enter")
            await pilot.pause()
            assert not screen.generating
        assert not (private_state / "state" / "transcripts").exists()


def test_worker_titles_are_for_people() -> None:
    assert worker_title("", "_lifecycle('start')") == "lifecycle (start) failed"
    assert worker_title("", "_poll()") == "poll failed"
    assert worker_title("server check", "_x()") == "server check failed"
    assert worker_title("", "") == "a background task failed"
