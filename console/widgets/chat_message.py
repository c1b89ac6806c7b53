"""One chat turn on screen: the user's text, or the assistant's streamed answer.

The answer and the reasoning stream into ``StreamedMarkdown``
(console/widgets/chat_markdown.py): finished paragraphs become fixed lines
rendered once, only the live tail is rendered again as text arrives, so a
frame costs the same at token 4,000 as at token 40. Reasoning streams into
its own collapsible so it never mixes with the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Static

from console.chat import format_tool_call
from console.sanitize import StreamCleaner, clean, clean_line
from console.widgets.chat_markdown import SEGMENT_CHARS, StreamedMarkdown, split_point

__all__ = ["SEGMENT_CHARS", "AssistantMessage", "UserMessage", "split_point"]

if TYPE_CHECKING:
    from console.chat import Answer, ToolCall


class UserMessage(Static):
    """The user's turn, verbatim (not Markdown: what was typed is what was sent)."""

    DEFAULT_CSS = """
    UserMessage {
        margin: 1 0 0 0;
        padding: 0 1;
        border-left: thick $accent;
        background: $boost;
        color: $text;
    }
    """

    def __init__(self, text: str) -> None:
        super().__init__(Text(clean(text)), markup=False)
        self.text = text


def tool_call_text(call: ToolCall) -> Text:
    text = Text()
    text.append("tool call ", style="dim")
    text.append(clean_line(format_tool_call(call)))  # the model's words: untrusted
    return text


class AssistantMessage(Vertical):
    """The assistant's turn: reasoning (collapsible), answer, tool calls, figures."""

    DEFAULT_CSS = """
    AssistantMessage {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 0 0 1;
        border-left: thick $primary;
    }
    AssistantMessage > Collapsible {
        display: none;
        padding: 0;
        margin: 0;
        border: none;
        background: $boost;
    }
    AssistantMessage.-has-reasoning > Collapsible {
        display: block;
    }
    AssistantMessage .reasoning {
        color: $text-muted;
        margin: 0;
    }
    AssistantMessage .answer {
        margin: 0;
    }
    AssistantMessage .tools {
        display: none;
        color: $text;
        background: $boost;
    }
    AssistantMessage.-has-tools .tools {
        display: block;
    }
    AssistantMessage .stats {
        color: $text-muted;
        text-style: italic;
    }
    AssistantMessage.-error .stats {
        color: $error;
    }
    """

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.model = model
        self._answering = False
        """True once the first answer text came (the reasoning is then folded)."""
        # The model's text is untrusted: one cleaner per stream, so an escape
        # sequence cut across two deltas is held back and dropped whole.
        self._answer_clean = StreamCleaner()
        self._reasoning_clean = StreamCleaner()

    def compose(self) -> ComposeResult:
        with Collapsible(title="Reasoning", collapsed=False, classes="reasoning-box"):
            yield StreamedMarkdown(classes="reasoning")
        yield StreamedMarkdown(classes="answer")
        yield Static(classes="tools")
        yield Static("waiting for the first token…", classes="stats")

    @property
    def answer(self) -> StreamedMarkdown:
        return self.query_one(".answer", StreamedMarkdown)

    @property
    def reasoning(self) -> StreamedMarkdown:
        return self.query_one(".reasoning", StreamedMarkdown)

    async def add_reasoning(self, text: str) -> None:
        text = self._reasoning_clean.feed(text)
        if not text:
            return
        self.add_class("-has-reasoning")
        self.reasoning.append(text)

    @property
    def answer_text(self) -> str:
        """The answer as shown."""
        return self.answer.source

    async def add_content(self, text: str) -> None:
        text = self._answer_clean.feed(text)
        if not text:
            return
        if not self._answering:
            self._answering = True
            if self.has_class("-has-reasoning"):
                # The thinking is over: fold it away, the answer is what matters now.
                self.query_one(Collapsible).collapsed = True
        self.answer.append(text)

    def show_tool_calls(self, calls: dict[int, ToolCall]) -> None:
        self.add_class("-has-tools")
        text = Text("\n").join(tool_call_text(c) for _, c in sorted(calls.items()))
        self.query_one(".tools", Static).update(text)

    def show_stats(self, answer: Answer, *, live: bool = False) -> None:
        line = answer.stats_line()
        if live:
            tokens = answer.completion_tokens
            line = "generating… " + (f"{tokens} tokens" if tokens is not None else "")
        if answer.error and not live:
            line = f"{line}\n{clean(answer.error)}"
        self.set_class(bool(answer.error) and not live, "-error")
        self.query_one(".stats", Static).update(Text(line))

    async def finish(self, answer: Answer) -> None:
        """Flush the streams and show the final figures (also after a stop or error)."""
        if rest := self._reasoning_clean.flush():
            await self.add_reasoning(rest)
        if rest := self._answer_clean.flush():
            await self.add_content(rest)
        if answer.tool_calls:
            self.show_tool_calls(answer.tool_calls)
        if not answer.content and not answer.tool_calls and not answer.error:
            self.answer.update("*(no text)*")
        self.show_stats(answer)

    async def show_finished(self, answer: Answer) -> None:
        """Render a complete answer at once (a replayed transcript, a snapshot)."""
        if answer.reasoning:
            self.add_class("-has-reasoning")
            self.reasoning.update(clean(answer.reasoning))
            self.query_one(Collapsible).collapsed = True
        if answer.content:
            self.answer.update(clean(answer.content))
        await self.finish(answer)
