"""A log pane that survives build and server output of any volume.

Lines may arrive from any thread (``push``); a timer on the UI thread drains
them in batches into a :class:`~textual.widgets.Log`, which renders only the
visible lines. The last ``max_lines`` lines are also kept here so a filter can
be applied (and removed) after the fact without re-reading the source.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Input, Log, Static

_ERROR = re.compile(r"\b(?:ERROR|CRITICAL|FATAL|Traceback|Error|error:|failed|FAILED)\b.*")
_WARNING = re.compile(r"\bWARN(?:ING)?\b")
_STEP = re.compile(r"^\s*(?:#\d+ )?\[?(?:Step \d+/\d+|\d+/\d+\])")


class LogHighlighter(Highlighter):
    """Errors red, warnings yellow, build steps bold; concrete styles so they
    render the same under any theme."""

    error = Style(color="red", bold=True)
    warning = Style(color="yellow")
    step = Style(bold=True, color="cyan")

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if m := _ERROR.search(plain):
            text.stylize(self.error, m.start(), len(plain))
        elif m := _WARNING.search(plain):
            text.stylize(self.warning, m.start(), m.end())
        if _STEP.match(plain):
            text.stylize(self.step)


class LogView(Vertical):
    """A filterable log: ``/`` opens the filter (a case-insensitive regex, or a
    plain substring when the regex is invalid), ``escape`` clears it."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > #log-filter { display: none; height: 3; }
    LogView.-filtering > #log-filter { display: block; }
    LogView > Log { height: 1fr; border: none; }
    LogView > #log-status { height: 1; color: $text-muted; background: $boost; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter log"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    filter_text: reactive[str] = reactive("", init=False)
    """The active filter; empty shows every line."""

    def __init__(
        self,
        *,
        max_lines: int = 20_000,
        flush_interval: float = 0.1,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_lines = max_lines
        self._flush_interval = flush_interval
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._total = 0

    def compose(self) -> ComposeResult:
        # Disabled while hidden, so it never takes focus (and keys) from the screen.
        yield Input(
            placeholder="filter: regex or text, enter to apply, esc to clear",
            id="log-filter",
            disabled=True,
        )
        log = Log(highlight=True, max_lines=self.max_lines, id="log-lines")
        log.highlighter = LogHighlighter()
        yield log
        yield Static("", id="log-status")

    def on_mount(self) -> None:
        self.set_interval(self._flush_interval, self.flush)
        self._update_status()

    # -- feeding -----------------------------------------------------------

    def push(self, line: str) -> None:
        """Queue one line; safe from any thread."""
        with self._lock:
            self._pending.append(line)

    def push_lines(self, lines: Iterable[str]) -> None:
        """Queue many lines; safe from any thread."""
        with self._lock:
            self._pending.extend(lines)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Queue lines and show them now (UI thread only)."""
        self.push_lines(lines)
        self.flush()

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
        self._lines.clear()
        self._total = 0
        self.query_one(Log).clear()
        self._update_status()

    def flush(self) -> None:
        """Move queued lines into the visible log in one batch."""
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
        batch = [line.rstrip("\r\n").replace("\r", "") for line in batch]
        self._lines.extend(batch)
        self._total += len(batch)
        shown = batch if self._pattern is None else [x for x in batch if self._pattern.search(x)]
        if shown:
            # The Log would drop all but the last max_lines anyway; don't make it work.
            self.query_one(Log).write_lines(shown[-self.max_lines :])
        self._update_status()

    @property
    def lines(self) -> list[str]:
        """The retained lines (the last ``max_lines``), unfiltered."""
        return list(self._lines)

    @property
    def shown_lines(self) -> list[str]:
        """The lines the log shows now (after the filter)."""
        return list(self.query_one(Log).lines)

    # -- filtering ---------------------------------------------------------

    def action_filter(self) -> None:
        self.add_class("-filtering")
        box = self.query_one("#log-filter", Input)
        box.disabled = False
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = ""
        self.filter_text = ""
        self.remove_class("-filtering")
        box.disabled = True
        self.query_one(Log).focus()

    @on(Input.Submitted, "#log-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.filter_text = event.value
        self.query_one(Log).focus()

    def watch_filter_text(self, value: str) -> None:
        self._pattern = _compile(value)
        if value:
            self.add_class("-filtering")
            box = self.query_one("#log-filter", Input)
            box.disabled = False
            box.value = value
        log = self.query_one(Log)
        log.clear()
        source = list(self._lines)
        log.write_lines(
            source if self._pattern is None else [x for x in source if self._pattern.search(x)]
        )
        self._update_status()

    def _update_status(self) -> None:
        log = self.query_one(Log)
        text = f"{self._total:,} lines"
        if self._pattern is not None:
            text += f" · filter {self.filter_text!r}: {log.line_count:,} shown"
        text += " · / filter"
        self.query_one("#log-status", Static).update(text)


def _compile(value: str) -> re.Pattern[str] | None:
    if not value:
        return None
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(value), re.IGNORECASE)
