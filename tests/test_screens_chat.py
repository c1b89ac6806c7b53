"""The chat screen on hand-made streams for what the small CPU Gemma cannot do:
reasoning, tool calls, an error in the middle of the answer. The HTTP client
replays the recorded bytes (httpx's transport seam); the screen is real."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
from textual.widgets import Collapsible, Static

from console.app import ConsoleApp
from console.chat import ChatClient, Transcript
from console.screens.chat import ChatScreen
from console.screens.messages import ChatRequested
from console.session import Session
from console.widgets.chat_message import AssistantMessage

pytestmark = pytest.mark.usefixtures("private_state")

DATA = Path(__file__).parent / "data"


def replaying(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = path.read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "replayed"}]})
        return httpx.Response(200, content=body)

    factory = partial(ChatClient, transport=httpx.MockTransport(handler))
    monkeypatch.setattr(ChatScreen, "client_factory", factory)


async def run_one(app: ConsoleApp, pilot, text: str) -> ChatScreen:
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    await pilot.click("#chat-input")
    await pilot.press(*text, "enter")
    deadline = time.monotonic() + 30
    while (
        not (screen.chat and screen.chat.answers and screen.chat.answers[-1].t_end)
        or screen.generating
    ):
        assert time.monotonic() < deadline, "the replayed answer did not finish"
        await pilot.pause(0.02)
    await pilot.pause()
    return screen


async def test_mid_stream_error_notice_and_history(monkeypatch: pytest.MonkeyPatch) -> None:
    replaying(DATA / "chat" / "midstream_error.sse", monkeypatch)
    app = ConsoleApp(session=Session(url="http://replay"), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await run_one(app, pilot, "go")
        assert any("engine core died" in n.message for n in app._notifications)
        view = screen.query_one(AssistantMessage)
        assert view.answer_text == "The first"
        assert view.has_class("-error")
        assert "engine core died" in str(view.query_one(".stats", Static).render())
        assert [t["role"] for t in screen.chat.conversation.turns] == ["user", "assistant"]
        kinds = [r["type"] for r in Transcript.read(screen.chat.transcript.path)]
        assert kinds[-2:] == ["error", "answer"]
        assert app.is_running


async def test_reasoning_is_shown_apart_and_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    replaying(DATA / "chat" / "reasoning_content.sse", monkeypatch)
    app = ConsoleApp(session=Session(url="http://replay"), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await run_one(app, pilot, "2+2?")
        view = screen.query_one(AssistantMessage)
        assert view.has_class("-has-reasoning")
        assert view.reasoning.source == "Let me think."
        assert view.answer_text == "Four."
        assert view.query_one(Collapsible).collapsed  # folded once the answer came
        assert "7 tokens" in str(view.query_one(".stats", Static).render())


async def test_tool_calls_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    replaying(DATA / "chat" / "tool_calls.sse", monkeypatch)
    app = ConsoleApp(session=Session(url="http://replay"), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await run_one(app, pilot, "weather?")
        view = screen.query_one(AssistantMessage)
        tools = str(view.query_one(".tools", Static).render())
        assert 'get_weather({"city": "Paris"})' in tools
        assert 'get_time({"tz": "CET"})' in tools
        assert "finish: tool_calls" in str(view.query_one(".stats", Static).render())


async def test_chat_requested_with_text_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    replaying(DATA / "vllm-0.32-cpu" / "chat_stream.sse", monkeypatch)
    app = ConsoleApp(session=Session(url="http://replay"))
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_mode == "dashboard"
        app.post_message(ChatRequested("from the palette"))
        deadline = time.monotonic() + 30
        while not (
            isinstance(app.screen, ChatScreen)
            and app.screen.chat
            and app.screen.chat.answers
            and app.screen.chat.answers[-1].t_end
        ):
            assert time.monotonic() < deadline
            await pilot.pause(0.02)
        assert app.screen.chat.conversation.turns[0]["content"] == "from the palette"
        assert app.screen.chat.answers[-1].completion_tokens == 40
        assert app.screen.chat.model == "replayed"


async def test_follows_the_answer_only_while_the_user_is_at_the_bottom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Auto-scroll while at the bottom; scrolling up stops it; End resumes it."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def gated():
        while (chunk := await queue.get()) is not None:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=gated())

    monkeypatch.setattr(
        ChatScreen, "client_factory", partial(ChatClient, transport=httpx.MockTransport(handler))
    )
    # the gated stream answers every path: no /metrics scrape may take its lines
    monkeypatch.setattr(ChatScreen, "measure_acceptance", False)

    def line(i: int) -> bytes:
        delta = {"choices": [{"index": 0, "delta": {"content": f"line {i}\n\n"}}]}
        return f"data: {json.dumps(delta)}\n\n".encode()

    app = ConsoleApp(session=Session(url="http://replay", model="m"), start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        log = screen.query_one("#chat-log")

        async def until(condition, what: str) -> None:
            """Poll ``condition`` (scrolling animates, and a busy box is slow)."""
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await pilot.pause(0.02)

        async def feed(start: int, count: int) -> None:
            for i in range(start, start + count):
                await queue.put(line(i))
            last = f"line {start + count - 1}"
            await until(lambda: last in screen.query_one(AssistantMessage).answer_text, last)
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()

        await pilot.click("#chat-input")
        await pilot.press(*"talk", "enter")
        await until(lambda: bool(screen.query(AssistantMessage)), "the answer's view")
        await feed(0, 30)
        assert log.max_scroll_y > 0
        await until(lambda: log.scroll_y == log.max_scroll_y, "following the answer")

        log.focus()
        await pilot.press("home")
        await until(lambda: log.scroll_y == 0, "the top")
        await feed(30, 10)
        height = log.max_scroll_y
        await feed(40, 10)
        assert log.max_scroll_y > height  # the answer grew...
        assert log.scroll_y == 0  # ...and the reader stays where they are

        await pilot.press("end")
        await until(lambda: log.scroll_y == log.max_scroll_y, "the bottom")
        await feed(50, 10)
        await until(lambda: log.scroll_y == log.max_scroll_y, "following again")
        await queue.put(b"data: [DONE]\n\n")
        await queue.put(None)


@pytest.mark.parametrize(
    ("profile", "labelled"), [("gemma3-270m-cpu", True), ("smollm2-135m-cpu", False)]
)
async def test_a_base_model_is_labelled_with_a_completion_prompt(
    profile: str, labelled: bool
) -> None:
    """The Gemma is a base model: the Chat screen says it continues text and how
    to prompt it; the demo's instruction-tuned model needs no such note."""
    app = ConsoleApp(Session.create(profile=profile, remember=False), start_mode="chat")
    async with app.run_test(size=(120, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.pause()
        status = str(screen.query_one("#chat-status", Static).render())
        assert ("base model: it continues text" in status) is labelled, status


def long_answer_sse(tokens: list[str]) -> bytes:
    """A streamed answer, one chunk per token, then usage and [DONE]."""
    out = []
    for tok in tokens:
        delta = {"choices": [{"index": 0, "delta": {"content": tok}}]}
        out.append(f"data: {json.dumps(delta)}\n\n")
    usage = {"prompt_tokens": 5, "completion_tokens": len(tokens), "total_tokens": len(tokens) + 5}
    out.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n")
    return "".join(out).encode()


def screen_lines(app: ConsoleApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def seen_words(text: str) -> list[str]:
    """The words a reader sees, Markdown syntax aside."""
    for mark in ("```python", "```", "##", "- ", "•", "|", "---", "─", "."):
        text = text.replace(mark, " ")
    return text.split()


async def test_a_long_answer_is_whole_on_screen_when_scrolled_back_and_resized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hundreds of lines of Markdown: the transcript and the view hold the exact
    text, scrolling back shows the first piece, and a resize renders the
    finished pieces again at the new width with nothing lost."""
    sections = []
    for i in range(1, 16):
        sections.append(
            f"## Section {i}\n\n" + "the cache keeps keys and values " * 12 + ".\n\n"
            "- one\n- two\n\n```python\ndef step(x):\n    return x + 1\n```\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        )
    text = "".join(sections)
    tokens = [text[i : i + 5] for i in range(0, len(text), 5)]
    body = long_answer_sse(tokens)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "replayed"}]})
        return httpx.Response(200, content=body)

    monkeypatch.setattr(
        ChatScreen, "client_factory", partial(ChatClient, transport=httpx.MockTransport(handler))
    )
    monkeypatch.setattr(ChatScreen, "measure_acceptance", False)
    app = ConsoleApp(session=Session(url="http://replay", model="m"), start_mode="chat")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await run_one(app, pilot, "long")
        view = screen.query_one(AssistantMessage)
        answer = view.answer
        assert view.answer_text == text
        last = Transcript.read(screen.chat.transcript.path)[-1]
        assert last["type"] == "answer" and last["content"] == text
        assert answer.pieces > 5

        def all_lines() -> list[str]:
            return [answer.render_line(y).text for y in range(answer.size.height)]

        assert seen_words("\n".join(all_lines())) == seen_words(text)

        log = screen.query_one("#chat-log")
        assert log.max_scroll_y > 100
        assert "Section 1 " not in screen_lines(app)  # at the end ("Section 15" shows)
        log.scroll_home(animate=False)
        await pilot.pause()
        shown = screen_lines(app)
        assert "Section 1 " in shown  # the first piece, as rendered
        assert answer._pieces[0].strips[0].text.strip() in shown

        await pilot.resize_terminal(70, 30)
        deadline = time.monotonic() + 20
        while answer.size.width >= 70 - 4:
            assert time.monotonic() < deadline, "the view did not take the new width"
            await pilot.pause(0.02)
        width = answer.size.width
        assert all(piece.widths[-1] == width for piece in answer._pieces)
        lines = all_lines()
        assert all(len(line) == width for line in lines)
        assert seen_words("\n".join(lines)) == seen_words(text)
