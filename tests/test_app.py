"""The app shell driven by keys: screens 1-6, help, theme, command palette, routing
of requests to the owning screen, and worker errors turned into notices."""

from __future__ import annotations

import pytest
from textual import work
from textual.command import CommandPalette

from console.app import SCREEN_MODES, ConsoleApp
from console.errors import ConsoleError
from console.runtime.base import ServerState, ServerStatus
from console.screens.base import ForwardWorkerErrors
from console.screens.chat import ChatScreen
from console.screens.help import HelpScreen
from console.screens.messages import (
    ActiveProfileChanged,
    ChatRequested,
    ProfileSwitchRequested,
    ServerActionRequested,
    ServerStatusBroadcast,
    ServerStatusChanged,
)
from console.session import Session, load_last_profile, load_profile_by_name

pytestmark = pytest.mark.usefixtures("private_state")


# Nothing listens here: screens that probe the server see it down, quickly.
DOWN_URL = "http://127.0.0.1:9"


def make_app() -> ConsoleApp:
    return ConsoleApp(session=Session(url=DOWN_URL))


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_keys_switch_screens(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert app.current_mode == "dashboard"
        for key, (mode, _title, cls) in reversed(list(enumerate(SCREEN_MODES, start=1))):
            await pilot.press("escape")  # leave any text field: digits type there
            await pilot.press(str(key))
            await pilot.pause()
            assert app.current_mode == mode
            assert isinstance(app.screen, cls)
        assert set(app.mode_screens) == {mode for mode, _, _ in SCREEN_MODES}


async def test_digits_type_into_the_chat_input_until_escape() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)
        await pilot.press("4", "2")
        assert app.current_mode == "chat"
        assert app.screen.query_one("#chat-input").value == "42"
        await pilot.press("escape", "1")
        await pilot.pause()
        assert app.current_mode == "dashboard"


async def test_help_opens_and_closes_and_has_the_formulas() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        from console.screens.help import HELP_TEXT

        for formula in ("1 + A / D", "A / T", "A_i / D"):
            assert formula in HELP_TEXT
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("2")  # a screen key closes help and goes there
        await pilot.pause()
        assert app.current_mode == "server" and not isinstance(app.screen, HelpScreen)


async def test_theme_toggles_between_dark_and_light() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_theme.dark
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark


async def test_command_palette_opens_and_runs_a_console_command() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"open chat")
        # Wait (with a deadline) for the search to list our command.
        for _ in range(100):
            await pilot.pause(0.02)
            if app.screen.query("CommandList Option"):
                break
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if app.current_mode == "chat":
                break
        assert app.current_mode == "chat"


async def test_requests_are_routed_to_the_owning_screen() -> None:
    received: list[object] = []
    app = make_app()
    async with app.run_test(size=(80, 24), message_hook=received.append) as pilot:
        app.post_message(ServerActionRequested("restart"))
        for _ in range(100):
            await pilot.pause(0.01)
            if app.current_mode == "server":
                break
        assert app.current_mode == "server"
        await pilot.pause()
        server_screen = app.mode_screens["server"]
        routed = [
            m for m in received if isinstance(m, ServerActionRequested) and m._sender is not None
        ]
        assert routed and routed[-1].action == "restart"
        assert server_screen.is_current
        app.post_message(ChatRequested())
        await pilot.pause()
        await pilot.pause()
        assert app.current_mode == "chat"


class FailingScreen(ForwardWorkerErrors):
    @work(exit_on_error=False, description="doomed task")
    async def doomed(self) -> None:
        raise ConsoleError("http://example/metrics: HTTP 500", hint="look at the server log")

    @work(thread=True, exit_on_error=False)
    def crashing(self) -> None:
        raise RuntimeError("boom")


async def test_worker_errors_become_notices_not_crashes() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = FailingScreen()
        await app.push_screen(screen)
        workers = [screen.doomed(), screen.crashing()]
        for _ in range(500):
            await pilot.pause(0.01)
            if all(w.is_finished for w in workers) and len(app._notifications) >= 2:
                break
        texts = [n.message for n in app._notifications]
        assert any("HTTP 500" in t and "look at the server log" in t for t in texts)
        assert any(t == "RuntimeError: boom" for t in texts)
        assert app.is_running


async def test_profile_switch_updates_the_session_and_tells_every_screen() -> None:
    received: list[object] = []
    app = ConsoleApp(session=Session())
    async with app.run_test(size=(80, 24), message_hook=received.append) as pilot:
        await pilot.press("3")  # a second screen exists now
        await pilot.pause()
        app.post_message(ProfileSwitchRequested("gemma3-270m-cpu-ngram"))
        for _ in range(200):
            await pilot.pause(0.01)
            if app.session.profile_name == "gemma3-270m-cpu-ngram":
                break
        assert app.session.profile_name == "gemma3-270m-cpu-ngram"
        assert app.session.url == app.session.profile.url
        assert "gemma3-270m-cpu-ngram" in app.sub_title
        await pilot.pause()
        deliveries = [m for m in received if isinstance(m, ActiveProfileChanged)]
        assert len(deliveries) == len(app.mode_screens) == 2
        assert load_last_profile() == "gemma3-270m-cpu-ngram"


async def test_unknown_profile_is_a_notice() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(ProfileSwitchRequested("no-such-profile"))
        for _ in range(200):
            await pilot.pause(0.01)
            if app._notifications:
                break
        assert any("no-such-profile" in n.message for n in app._notifications)
        assert app.session.profile_name is None


async def test_server_status_moves_the_session_url_for_the_active_profile() -> None:
    received: list[object] = []
    session = Session()
    session.set_profile(load_profile_by_name("gemma3-270m-cpu"), remember=False)
    app = ConsoleApp(session=session)
    async with app.run_test(size=(80, 24), message_hook=received.append) as pilot:
        status = ServerStatus(
            "gemma3-270m-cpu", "local", ServerState.READY, url="http://127.0.0.1:8123"
        )
        app.post_message(ServerStatusChanged(status))
        for _ in range(200):
            await pilot.pause(0.01)
            if app.session.url == "http://127.0.0.1:8123":
                break
        assert app.session.url == "http://127.0.0.1:8123"
        assert app.session.server_status is status
        assert any(isinstance(m, ServerStatusBroadcast) for m in received)
        # Another profile's server does not move the URL.
        other = ServerStatus("x", "local", ServerState.READY, url="http://127.0.0.1:9999")
        app.post_message(ServerStatusChanged(other))
        await pilot.pause()
        await pilot.pause()
        assert app.session.url == "http://127.0.0.1:8123"


async def test_chat_settings_refuse_a_wrong_value_before_sending() -> None:
    app = ConsoleApp(session=Session(url=DOWN_URL), start_mode="chat")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        temperature = screen.query_one("#chat-temperature")
        temperature.value = "9"
        await pilot.pause()
        assert temperature.has_class("-invalid")
        assert not screen.query_one("#chat-max-tokens").has_class("-invalid")
        await pilot.click("#chat-input")
        await pilot.press(*"hello", "enter")
        for _ in range(200):
            await pilot.pause(0.01)
            if app._notifications:
                break
        assert any("temperature 9.0 is out of range" in n.message for n in app._notifications)
        assert screen.chat is None  # nothing was sent
        assert screen.query_one("#chat-input").value == "hello"  # nothing was lost
