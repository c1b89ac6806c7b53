"""A compact figure: a label and a value, with an optional note (scope, age)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class StatTile(Widget):
    """``label  value unit  (note)`` on one line, so a panel can stack many at
    80 columns. The note marks scope ("since start") or staleness."""

    DEFAULT_CSS = """
    StatTile { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    StatTile.-muted { color: $text-muted; }
    """

    value: reactive[str] = reactive("–")
    note: reactive[str] = reactive("")

    def __init__(
        self,
        label: str,
        *,
        unit: str = "",
        label_width: int = 14,
        tooltip: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.label = label
        self.unit = unit
        self.label_width = label_width
        if tooltip:
            self.tooltip = tooltip

    def set(self, value: str | None, note: str = "") -> None:
        """Show ``value`` (None shows a dash) with an optional note."""
        self.value = "–" if value is None else value
        self.note = note

    def render(self) -> Text:
        text = Text(
            self.label.ljust(self.label_width), style="bold", no_wrap=True, overflow="ellipsis"
        )
        text.append(self.value)
        if self.unit and self.value != "–":
            text.append(" " + self.unit)
        if self.note:
            text.append(f"  ({self.note})", style="dim italic")
        return text
