"""A user's walk through the whole console against the real n-gram server, by
keys only: every screen opens at 80x24 without an error notice, and a chat
answer arrives in between."""

from __future__ import annotations

import time

import pytest

from console.app import SCREEN_MODES, ConsoleApp
from console.screens.chat import ChatScreen
from console.session import Session

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]


async def test_tour_by_keys(vllm_ngram_server) -> None:
    app = ConsoleApp(session=Session(url=vllm_ngram_server.url))
    async with app.run_test(size=(80, 24)) as pilot:
        for key, (mode, _title, cls) in enumerate(SCREEN_MODES, start=1):
            await pilot.press("escape", str(key))
            await pilot.pause(0.3)
            assert app.current_mode == mode and isinstance(app.screen, cls)

        await pilot.press("escape", "3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        screen.query_one("#chat-max-tokens").value = "8"
        await pilot.click("#chat-input")
        await pilot.press(*"Hello there", "enter")
        deadline = time.monotonic() + 240
        while not (screen.chat and screen.chat.answers and screen.chat.answers[-1].t_end):
            assert time.monotonic() < deadline, "no answer within 240 s"
            await pilot.pause(0.1)
        assert screen.chat.answers[-1].error is None
        assert screen.chat.answers[-1].completion_tokens

        await pilot.press("escape", "1")
        await pilot.pause(0.5)
        assert app.current_mode == "dashboard"
        await pilot.press("f1")
        await pilot.pause(0.5)
        await pilot.press("escape", "ctrl+t")
        await pilot.pause(0.3)
        assert not app.current_theme.dark
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors == []
        assert app.is_running
