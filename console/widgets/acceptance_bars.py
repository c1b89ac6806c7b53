"""Speculative decoding: one bar per draft position.

Position *i* counts drafts whose first *i+1* tokens were all accepted, so the
rates fall (or stay flat) with the position; the tooltip gives the formula.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.widgets.gauge import bar_text

FORMULA = (
    "Per-position acceptance rate[i] = A_i / D\n"
    "  A_i: drafts whose first i+1 tokens were accepted (Δ)\n"
    "  D:   drafts proposed (Δ)\n"
    "Mean acceptance length = 1 + A / D   (counts the bonus token; max k+1)\n"
    "Draft acceptance rate  = A / T   (A accepted, T drafted tokens)\n"
    "Δ = difference of two /metrics scrapes over the shown window."
)


class AcceptanceBars(Widget):
    """``pos 1 ████████░░  85.0%`` for each position; height follows k."""

    DEFAULT_CSS = """
    AcceptanceBars { height: auto; width: 1fr; }
    """

    rates: reactive[tuple[float | None, ...]] = reactive(())
    """Per-position rates A_i/D (0-1), or None where there were no drafts."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tooltip = FORMULA

    def set(self, rates: Sequence[float | None]) -> None:
        """Show ``rates``; rounded to what is drawn (0.1 %), so a change below
        that repaints nothing, and only a new number of positions (k) lays the
        panel out again (the height follows it)."""
        new = tuple(None if r is None else round(r, 3) for r in rates)
        if new == self.rates:
            return
        relayout = len(new) != len(self.rates)
        self.rates = new
        if relayout:
            self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(len(self.rates), 1)

    def render(self) -> Text:
        if not self.rates:
            return Text("no per-position counters yet", style="dim")
        width = self.content_size.width or 40
        bar_width = max(width - 14, 4)
        out = Text()
        for i, rate in enumerate(self.rates):
            if i:
                out.append("\n")
            out.append(f"pos {i + 1:<2} ", style="bold")
            # Rates shrink with position by definition; colour by absolute level.
            out.append_text(bar_text(rate, bar_width, warn=2.0, crit=2.0))
            out.append("     –" if rate is None else f" {rate * 100:5.1f}%")
        return out
