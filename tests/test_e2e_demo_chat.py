"""The demo's first answer makes sense.

The demo profile serves SmolLM2-135M-Instruct; a newcomer's first question,
asked on the Chat screen and with the CLI (greedy, the model's default),
gets a sensible answer from the real server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from console.app import ConsoleApp
from console.cli import main
from console.commands.tui import DEMO_PROFILE
from console.runtime import models
from console.screens.chat import ChatScreen
from console.session import Session, load_profile_by_name

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
DEADLINE_S = 240.0  # a loaded 2-core box generates a few tokens/s


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path


def test_the_demo_serves_an_instruction_tuned_model() -> None:
    profile = load_profile_by_name(DEMO_PROFILE)
    managed = profile.serve.local.managed_model if profile.serve.local else None
    assert managed is not None and models.spec(managed).instruct


def test_first_question_from_the_cli(vllm_chat_server, capsys: pytest.CaptureFixture) -> None:
    argv = ["chat", "--url", vllm_chat_server.url, "--temperature", "0", "--max-tokens", "24"]
    assert main([*argv, "--no-transcript", QUESTION]) == 0
    answer = capsys.readouterr().out
    assert "Paris" in answer, answer


async def test_first_question_on_the_chat_screen(vllm_chat_server) -> None:
    app = ConsoleApp(session=Session(url=vllm_chat_server.url), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        # Greedy (the demo model's default too), and a shorter cap than the 512
        # default so a loaded box answers within the deadline.
        screen.query_one("#chat-max-tokens", Input).value = "48"
        screen.query_one("#chat-temperature", Input).value = "0"
        await pilot.click("#chat-input")
        await pilot.press(*QUESTION)
        await pilot.press("enter")
        deadline = time.monotonic() + DEADLINE_S
        while not (
            screen.chat is not None
            and screen.chat.answers
            and screen.chat.answers[-1].t_end is not None
            and not screen.generating
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"no answer within {DEADLINE_S:.0f} s")
            await pilot.pause(0.1)
        answer = screen.chat.answers[-1]
        assert answer.error is None, answer.error
        assert "Paris" in answer.content, answer.content
        assert screen.chat.model == vllm_chat_server.model
