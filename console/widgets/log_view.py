"""A log pane that survives build and server output of any volume.

Lines may arrive from any thread (``push``); a timer on the UI thread drains
them in batches into a :class:`~textual.widgets.Log`, which renders only the
visible lines. The last ``max_lines`` lines are also kept here so a filter can
be applied (and removed) after the fact without re-reading the source.

A producer can outrun the screen (a build floods lines far faster than anyone
reads them), so the UI thread never pays for more than ``chunk`` lines per
tick: keys are handled between ticks however fast lines arrive. A feeding
thread that gets ahead (more than two ticks' worth queued) waits a moment for
the next tick: a thread looping on ``push`` would otherwise hold the GIL and
starve the UI thread, however little work each tick does. The wait is
bounded, so a stalled UI never stalls the producer for long; the queue then
keeps only the newest ``max_lines`` lines (older ones would be pruned from
the log anyway, so they are dropped before costing anything, but counted).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Input, Log, Static

from console.sanitize import clean_log_line

_ERROR = re.compile(r"\b(?:ERROR|CRITICAL|FATAL|Traceback|Error|error:|failed|FAILED)\b.*")
_WARNING = re.compile(r"\bWARN(?:ING)?\b")
PACE_WAIT_S = 0.2
"""Longest a feeding thread waits for the UI to drain the queue."""

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


class _Log(Log):
    """A :class:`~textual.widgets.Log` that measures new lines on the UI thread.

    Textual's Log starts a thread worker per ``write_lines`` to find the
    widest new line; at a tick's 2,000 lines that thread (start, cell widths,
    hand-back) cost about as much as the tick itself and competed for the GIL
    with the UI. Plain ASCII lines without tabs are as wide as they are long,
    which a C-level check settles; only the others are measured cell by cell.
    """

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]
        if not lines:
            return
        process = self._process_line
        width = max(
            len(line) if line.isascii() and "\t" not in line else cell_len(process(line))
            for line in lines
        )
        self._update_maximum_width(updates, width)


class LogView(Vertical):
    """A filterable log: ``/`` opens the filter (a case-insensitive regex, or a
    plain substring when the regex is invalid), ``escape`` clears it."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > #log-filter { display: none; height: 3; }
    LogView.-filtering > #log-filter { display: block; }
    LogView > Log { height: 1fr; border: none; }
    LogView > #log-status { height: 1; width: 1fr; color: $text-muted; background: $boost; }
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
        flush_interval: float = 0.05,
        chunk: int = 2_000,
        hide: re.Pattern[str] | None = None,
        hide_what: str = "",
        hide_key: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_lines = max_lines
        self._flush_interval = flush_interval
        self.chunk = max(chunk, 1)
        """Most lines one timer tick moves into the log (bounds the UI's work per tick)."""
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._pending: deque[str] = deque(maxlen=max_lines)
        self._pushed = 0
        """Lines ever queued (under the lock); queued minus pending = handled."""
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._ui_thread: int | None = None
        """Set while mounted: only other threads are ever made to wait."""
        self._pattern: re.Pattern[str] | None = None
        self._status = ""
        self._total = 0
        """Lines handled so far: shown, or dropped unseen as older than ``max_lines``."""
        self.hide = hide
        """Lines matching it are left out unless :attr:`show_hidden` (e.g. the
        console's own ``GET /metrics`` polls in a server log)."""
        self.hide_what = hide_what
        """What the hidden lines are, for the status line."""
        self.hide_key = hide_key
        """The key that toggles them, named in the status line."""
        self.show_hidden = False
        self._hidden = 0
        """Lines seen that ``hide`` matches."""

    def compose(self) -> ComposeResult:
        # Disabled while hidden, so it never takes focus (and keys) from the screen.
        yield Input(
            placeholder="filter: regex or text, enter to apply, esc to clear",
            id="log-filter",
            disabled=True,
        )
        log = _Log(highlight=True, max_lines=self.max_lines, id="log-lines")
        log.highlighter = LogHighlighter()
        yield log
        yield Static("", id="log-status")

    def on_mount(self) -> None:
        self._ui_thread = threading.get_ident()
        self.set_interval(self._flush_interval, self._tick)
        self._update_status()

    def on_unmount(self) -> None:
        with self._lock:
            self._ui_thread = None
            self._drained.notify_all()

    # -- feeding -----------------------------------------------------------

    def push(self, line: str) -> None:
        """Queue one line; safe from any thread."""
        with self._lock:
            self._pending.append(line)
            self._pushed += 1
            self._pace()

    def push_lines(self, lines: Iterable[str]) -> None:
        """Queue many lines; safe from any thread."""
        lines = list(lines)
        with self._lock:
            self._pending.extend(lines)
            self._pushed += len(lines)
            self._pace()

    def _pace(self) -> None:
        """Called with the lock held: a feeding thread two ticks ahead of the UI
        waits (bounded) for the next tick, so it hands the GIL to the UI."""
        ui = self._ui_thread
        if ui is None or len(self._pending) < self.chunk or threading.get_ident() == ui:
            return
        self._drained.wait(timeout=PACE_WAIT_S)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Queue lines and show them now (UI thread only)."""
        self.push_lines(lines)
        self.flush()

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._pushed = 0
        self._lines.clear()
        self._total = 0
        self._hidden = 0
        self.query_one(Log).clear()
        self._update_status()

    def _tick(self) -> None:
        self.flush(limit=self.chunk)

    def flush(self, limit: int | None = None) -> None:
        """Move queued lines into the visible log in one batch: all of them, or
        the oldest ``limit`` (the timer's bounded share of one tick)."""
        with self._lock:
            if not self._pending:
                return
            if limit is None or limit >= len(self._pending):
                batch = list(self._pending)
                self._pending.clear()
            else:
                popleft = self._pending.popleft
                batch = [popleft() for _ in range(limit)]
            self._total = self._pushed - len(self._pending)
            self._drained.notify_all()
        # Lines come from a server, a container or a build: untrusted (the one sanitiser).
        batch = [clean_log_line(line) for line in batch]
        if self.hide is not None:
            self._hidden += sum(1 for x in batch if self.hide.search(x))
        self._lines.extend(batch)
        shown = self._visible(batch)
        if shown:
            self.query_one(Log).write_lines(shown)
        self._update_status()

    def _visible(self, lines: list[str]) -> list[str]:
        """The lines the filter keeps and ``hide`` does not leave out."""
        hide = None if self.show_hidden else self.hide
        pattern = self._pattern
        if hide is None and pattern is None:
            return lines
        return [
            x
            for x in lines
            if (hide is None or not hide.search(x)) and (pattern is None or pattern.search(x))
        ]

    def toggle_hidden(self) -> bool:
        """Show the lines ``hide`` leaves out, or hide them again; returns whether shown."""
        self.show_hidden = not self.show_hidden
        self._rewrite()
        return self.show_hidden

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
        self._rewrite()

    def _rewrite(self) -> None:
        """Show the retained lines again through the filter and ``hide``."""
        log = self.query_one(Log)
        log.clear()
        log.write_lines(self._visible(list(self._lines)))
        self._update_status()

    def _update_status(self) -> None:
        log = self.query_one(Log)
        text = f"{self._total:,} lines"
        if self._pattern is not None:
            text += f" · filter {self.filter_text!r}: {log.line_count:,} shown"
        if self.hide is not None and self._hidden:
            state = "shown" if self.show_hidden else "hidden"
            key = f" ({self.hide_key})" if self.hide_key else ""
            text += f" · {self._hidden:,} {self.hide_what} {state}{key}"
        text += " · / filter"
        if text != self._status:
            self._status = text
            # One fixed-size line: repaint it, no layout pass (it runs on every tick).
            self.query_one("#log-status", Static).update(text, layout=False)


def _compile(value: str) -> re.Pattern[str] | None:
    if not value:
        return None
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(value), re.IGNORECASE)
