"""The Events panel: a server's recent events, newest last, one line each.

Shows what :mod:`console.history.events` detected (restarts, KV high, queue
growing, acceptance collapse, down, ...). Messages can carry server text (an
error from the server), so each goes through the one sanitiser. The panel
keeps a fixed number of lines: a long night of events costs nothing to draw.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from console import sanitize

if TYPE_CHECKING:
    from console.history.store import Event  # SQLite: not on the way to the first frame

STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


def event_text(event: Event, *, with_date: bool = False) -> Text:
    fmt = "%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    line = Text(time.strftime(fmt, time.localtime(event.ts)) + " ", style="dim")
    line.append(f"{event.kind:<19}", style=STYLE.get(event.severity, ""))
    line.append(" " + sanitize.clean_line(event.message))
    return line


class EventsPanel(Static):
    """The last ``lines`` events (or a note that there are none yet)."""

    DEFAULT_CSS = """
    EventsPanel { height: auto; max-height: 6; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(
        self, *, lines: int = 4, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__("no events yet", id=id, classes=classes)
        self.lines = lines
        self._shown: tuple[tuple[float, str, str], ...] = ()

    def show(self, events: Iterable[Event]) -> None:
        recent = list(events)[-self.lines :]
        key = tuple((e.ts, e.kind, e.message) for e in recent)
        if key == self._shown:
            return
        self._shown = key
        if not recent:
            self.update("no events yet")
            return
        self.update(Text("\n").join(event_text(e) for e in recent))
