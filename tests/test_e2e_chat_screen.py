"""The chat screen against the real small Gemma (n-gram speculative decoding):
send by keys, wait for the streamed answer and its figures, stop an answer,
survive a request the server refuses; the transcript on disk matches."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, Static

from console.app import ConsoleApp
from console.chat import Transcript
from console.screens.chat import ChatScreen
from console.session import Session
from console.widgets.chat_message import AssistantMessage

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]

DEADLINE_S = 240.0  # a loaded 2-core CI box generates a few tokens/s


async def wait_for(pilot, condition, what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}")
        await pilot.pause(0.05)


async def type_and_send(pilot, text: str) -> None:
    await pilot.click("#chat-input")
    await pilot.press(*text)
    await pilot.press("enter")


def set_field(screen: ChatScreen, field_id: str, value: str) -> None:
    screen.query_one(f"#{field_id}", Input).value = value


async def test_streamed_answer_with_figures_and_transcript(vllm_ngram_server) -> None:
    app = ConsoleApp(session=Session(url=vllm_ngram_server.url), start_mode="chat")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        set_field(screen, "chat-max-tokens", "16")
        set_field(screen, "chat-temperature", "0")
        await type_and_send(pilot, "Repeat after me: the cat sat on the mat.")
        await wait_for(
            pilot,
            lambda: (
                screen.chat is not None
                and screen.chat.answers
                and screen.chat.answers[-1].t_end is not None
                and not screen.generating
            ),
            "the answer",
        )
        answer = screen.chat.answers[-1]
        assert answer.error is None, answer.error
        assert answer.content.strip()
        assert screen.chat.model == vllm_ngram_server.model
        # Figures from usage: a "length" finish means exactly max_tokens tokens.
        assert answer.completion_tokens is not None
        if answer.finish_reason == "length":
            assert answer.completion_tokens == 16
        else:
            assert 0 < answer.completion_tokens <= 16
        assert answer.prompt_tokens and answer.prompt_tokens > 5
        assert answer.ttft_s is not None and 0 < answer.ttft_s < DEADLINE_S
        assert answer.tokens_per_s is None or answer.tokens_per_s > 0

        # The view shows the same answer and figures.
        view = screen.query_one(AssistantMessage)
        shown = view.answer_text
        assert shown == answer.content
        stats = str(view.query_one(".stats", Static).render())
        assert f"{answer.completion_tokens} tokens" in stats
        assert "TTFT" in stats

        # The transcript has the user turn first, every delta, then the answer.
        records = Transcript.read(screen.chat.transcript.path)
        kinds = [r["type"] for r in records]
        assert kinds[:2] == ["meta", "user"] and kinds[-1] == "answer"
        assert records[1]["content"] == "Repeat after me: the cat sat on the mat."
        deltas = "".join(r.get("content", "") for r in records if r["type"] == "delta")
        assert deltas == answer.content == records[-1]["content"]
        assert records[-1]["stats"]["completion_tokens"] == answer.completion_tokens
        assert records[-1]["model"] == vllm_ngram_server.model


async def test_stop_keeps_the_partial_answer_and_the_chat_goes_on(vllm_ngram_server) -> None:
    app = ConsoleApp(session=Session(url=vllm_ngram_server.url), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        set_field(screen, "chat-max-tokens", "400")
        await type_and_send(pilot, "Count from one to one hundred in words.")
        await wait_for(
            pilot,
            lambda: (
                screen.chat is not None
                and screen.chat.answers
                and len(screen.chat.answers[-1].content) > 0
            ),
            "the first tokens",
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating, "the stop", 30)
        first = screen.chat.answers[-1]
        assert first.stopped
        assert first.content
        assert first.completion_tokens is None or first.completion_tokens < 400
        records = Transcript.read(screen.chat.transcript.path)
        assert records[-1]["type"] == "answer" and records[-1]["stopped"] is True
        assert records[-1]["content"] == first.content
        assert "stopped" in str(screen.query(AssistantMessage).last().query_one(".stats").render())

        # The next turn carries the history: user, partial answer, user.
        set_field(screen, "chat-max-tokens", "8")
        await type_and_send(pilot, "Thanks.")
        await wait_for(
            pilot,
            lambda: len(screen.chat.answers) == 2 and screen.chat.answers[-1].t_end is not None,
            "the second answer",
        )
        assert screen.chat.answers[-1].error is None
        roles = [t["role"] for t in screen.chat.conversation.turns]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert screen.chat.conversation.turns[1]["content"] == first.content


async def test_refused_request_keeps_history_and_shows_a_notice(vllm_server) -> None:
    app = ConsoleApp(session=Session(url=vllm_server.url), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        set_field(screen, "chat-max-tokens", "100000")  # beyond --max-model-len 2048
        await type_and_send(pilot, "Hello")
        await wait_for(
            pilot,
            lambda: (
                screen.chat is not None
                and screen.chat.answers
                and screen.chat.answers[-1].t_end is not None
                and not screen.generating
            ),
            "the refusal",
        )
        answer = screen.chat.answers[-1]
        assert answer.error and "HTTP 400" in answer.error
        await wait_for(
            pilot,
            lambda: any("HTTP 400" in n.message for n in app._notifications),
            "the notice",
            10,
        )
        assert app.is_running
        assert screen.chat.conversation.turns[0] == {"role": "user", "content": "Hello"}
        records = Transcript.read(screen.chat.transcript.path)
        assert [r["type"] for r in records] == ["meta", "user", "answer"]
        assert "HTTP 400" in records[-1]["error"]
