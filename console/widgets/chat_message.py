"""One chat turn on screen: the user's text, or the assistant's streamed answer.

The answer streams through ``MarkdownStream`` (``Markdown.get_stream``), which
merges fragments when they arrive faster than Markdown can re-render; at
hundreds of tokens/s plain ``Markdown.append`` falls behind. A long answer is
split at paragraph breaks (outside code fences) into a sequence of Markdown
widgets, only the last one streaming: each append then re-parses and
re-lays-out a short tail instead of a document that keeps growing. Reasoning
streams into its own collapsible so it never mixes with the answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Markdown, Static

from console.chat import format_tool_call
from console.sanitize import StreamCleaner, clean, clean_line

SEGMENT_CHARS = 1200
"""A streamed answer's live Markdown is closed at the first paragraph break
after this many characters, and a new one continues it."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_point(text: str, start: int, in_fence: bool, min_cut: int) -> tuple[int, int, bool]:
    """The first place at or after ``min_cut`` where ``text`` can be cut: just
    after a blank line outside a code fence.

    Scans the complete lines from ``start`` (a line start, where the fence state
    is ``in_fence``). Returns the cut (0: none yet), where to resume, and the
    fence state there; each line is scanned once however the text arrives.
    """
    pos = start
    while True:
        end = text.find("\n", pos)
        if end < 0:
            return 0, pos, in_fence
        line = text[pos:end]
        pos = end + 1
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and pos >= min_cut and not line.strip():
            return pos, pos, in_fence


if TYPE_CHECKING:
    from textual.widgets._markdown import MarkdownStream

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
    AssistantMessage .answer > * {
        margin-bottom: 0;
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
        self._answer_stream: MarkdownStream | None = None
        self._reasoning_stream: MarkdownStream | None = None
        self._live = ""
        """The text of the answer's live (last) Markdown segment."""
        self._scan = 0
        """Where the next split-point scan of ``_live`` starts (a line start)."""
        self._in_fence = False
        # The model's text is untrusted: one cleaner per stream, so an escape
        # sequence cut across two deltas is held back and dropped whole.
        self._answer_clean = StreamCleaner()
        self._reasoning_clean = StreamCleaner()

    def compose(self) -> ComposeResult:
        with Collapsible(title="Reasoning", collapsed=False, classes="reasoning-box"):
            yield Markdown(classes="reasoning")
        yield Markdown(classes="answer")
        yield Static(classes="tools")
        yield Static("waiting for the first token…", classes="stats")

    async def add_reasoning(self, text: str) -> None:
        text = self._reasoning_clean.feed(text)
        if not text:
            return
        if self._reasoning_stream is None:
            self.add_class("-has-reasoning")
            self._reasoning_stream = Markdown.get_stream(self.query_one(".reasoning", Markdown))
        await self._reasoning_stream.write(text)

    @property
    def answer_text(self) -> str:
        """The answer as shown, across its Markdown segments."""
        return "".join(m.source for m in self.query(".answer").results(Markdown))

    async def add_content(self, text: str) -> None:
        text = self._answer_clean.feed(text)
        if not text:
            return
        if self._answer_stream is None:
            self._answer_stream = Markdown.get_stream(self.query(".answer").first(Markdown))
            if self._reasoning_stream is not None:
                # The thinking is over: fold it away, the answer is what matters now.
                self.query_one(Collapsible).collapsed = True
        written = len(self._live)
        self._live += text
        while True:
            cut, self._scan, self._in_fence = split_point(
                self._live, self._scan, self._in_fence, SEGMENT_CHARS
            )
            if not cut:
                break
            await self._answer_stream.write(self._live[written:cut])
            await self._next_segment()
            self._live, written, self._scan = self._live[cut:], 0, 0
        await self._answer_stream.write(self._live[written:])

    async def _next_segment(self) -> None:
        """Close the live answer segment and continue the answer in a new one."""
        assert self._answer_stream is not None
        await self._answer_stream.stop()
        segment = Markdown(classes="answer")
        await self.mount(segment, after=self.query(".answer").last(Markdown))
        self._answer_stream = Markdown.get_stream(segment)

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
        for stream in (self._reasoning_stream, self._answer_stream):
            if stream is not None:
                await stream.stop()
        if answer.tool_calls:
            self.show_tool_calls(answer.tool_calls)
        if not answer.content and not answer.tool_calls and not answer.error:
            await self.query(".answer").first(Markdown).update("*(no text)*")
        self.show_stats(answer)

    async def show_finished(self, answer: Answer) -> None:
        """Render a complete answer at once (a replayed transcript, a snapshot)."""
        if answer.reasoning:
            self.add_class("-has-reasoning")
            await self.query_one(".reasoning", Markdown).update(clean(answer.reasoning))
            self.query_one(Collapsible).collapsed = True
        if answer.content:
            await self.query(".answer").first(Markdown).update(clean(answer.content))
        await self.finish(answer)
