"""A one-line labelled bar for fractions (KV cache usage, memory, utilisation)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def bar_text(fraction: float | None, width: int, *, warn: float = 0.75, crit: float = 0.9) -> Text:
    """``width`` cells of bar for ``fraction`` (0-1); an unknown value is a dotted track."""
    width = max(width, 1)
    if fraction is None:
        return Text("·" * width, style="dim")
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    filled = "█" * full + partial
    style = "red" if fraction >= crit else "yellow" if fraction >= warn else "green"
    text = Text(filled, style=style)
    text.append("░" * (width - len(filled)), style="dim")
    return text


class Gauge(Widget):
    """``label ███████░░░ 42.0 %  detail``; the bar takes whatever width is left."""

    DEFAULT_CSS = """
    Gauge { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    fraction: reactive[float | None] = reactive(None)
    """0-1, or None when unknown (drawn as a dotted track, value ``–``)."""
    detail: reactive[str] = reactive("")
    """Text after the percentage, e.g. ``12.3 / 80.0 GiB``."""

    def __init__(
        self,
        label: str,
        *,
        label_width: int = 10,
        warn: float = 0.75,
        crit: float = 0.9,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.label = label
        self.label_width = label_width
        self.warn = warn
        self.crit = crit

    def set(self, fraction: float | None, detail: str = "") -> None:
        # Drawn to 0.1 %: a smaller move (KV usage jitters every scrape) repaints nothing.
        self.fraction = None if fraction is None else round(fraction, 3)
        self.detail = detail

    def render(self) -> Text:
        value = "     –" if self.fraction is None else f"{self.fraction * 100:5.1f}%"
        detail = f" {self.detail}" if self.detail else ""
        width = self.content_size.width or 40
        bar_width = max(width - self.label_width - len(value) - len(detail) - 2, 4)
        text = Text(self.label[: self.label_width].ljust(self.label_width), style="bold")
        text.append_text(bar_text(self.fraction, bar_width, warn=self.warn, crit=self.crit))
        text.append(" " + value)
        text.append(detail, style="dim")
        return text
