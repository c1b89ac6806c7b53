"""SVG snapshots of the shell and the chat screen, on fixed data (no server).

Update after an intended change with ``pytest tests/test_app_snapshots.py
--snapshot-update`` and look at the SVGs in the report before committing.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from console.app import ConsoleApp
from console.chat import Answer, ToolCall, Usage
from console.screens.chat import ChatScreen
from console.session import Session

pytestmark = pytest.mark.usefixtures("private_state")

DOWN_URL = "http://127.0.0.1:9"


def fixed_answer(
    content: str,
    *,
    reasoning: str = "",
    tokens: int = 57,
    tool_calls: dict[int, ToolCall] | None = None,
    finish: str = "stop",
) -> Answer:
    """An answer with fixed timing: TTFT 0.21 s, first chunk 1 token, 4.0 s of decode."""
    answer = Answer(t_request=100.0, content=content, reasoning=reasoning)
    answer.t_first, answer.t_last, answer.t_end = 100.21, 104.21, 104.25
    answer.tokens_at_first = 1
    answer.usage = Usage(prompt_tokens=24, completion_tokens=tokens, total_tokens=24 + tokens)
    answer.finish_reason = finish
    answer.tool_calls = tool_calls or {}
    return answer


EXCHANGES = [
    (
        "What does speculative decoding buy me?",
        fixed_answer(
            "Fewer **forward passes** per token: a cheap drafter proposes *k* tokens and "
            "the target model checks them in one pass.\n\n"
            "- mean acceptance length `1 + A/D`\n- draft acceptance rate `A/T`",
            reasoning="The user asks about spec decode. Explain drafts and acceptance.",
        ),
    ),
    (
        "What is the weather in Paris?",
        fixed_answer(
            "",
            tokens=18,
            finish="tool_calls",
            tool_calls={
                0: ToolCall(0, "chatcmpl-tool-1", "get_weather", '{"city": "Paris"}'),
            },
        ),
    ),
]


def chat_app() -> ConsoleApp:
    return ConsoleApp(session=Session(url=DOWN_URL, model="gemma3-270m"), start_mode="chat")


async def fill_chat(pilot: Pilot) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    for text, answer in EXCHANGES:
        await screen.add_exchange(text, answer)
    for field in screen.query(Input):
        field.cursor_blink = False
    for area in screen.query(TextArea):
        area.cursor_blink = False
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def test_chat_80x24(snap_compare) -> None:
    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=fill_chat)


def test_chat_160x48(snap_compare) -> None:
    assert snap_compare(chat_app(), terminal_size=(160, 48), run_before=fill_chat)


def test_chat_settings_80x24(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await fill_chat(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()

    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_80x24(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await fill_chat(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_light_160x48(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await fill_chat(pilot)
        await pilot.press("ctrl+t", "f1")
        await pilot.pause()

    assert snap_compare(chat_app(), terminal_size=(160, 48), run_before=run_before)
