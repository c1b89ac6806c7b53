"""Which k? The advisor's curve per k' and the k' it favours, labelled an estimate.

Pure view of ``spec_advisor.Advice``; the numbers are computed in the core.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.spec_advisor import MIN_DRAFTS, Advice

TOOLTIP = (
    "Estimate, not a measurement.\n"
    "tok/step(k') = 1 + a_1 + ... + a_k'  (a_i = A_i / D, per position)\n"
    "speed-up(k') = tok/step(k') / (1 + k' x draft cost), vs no speculation\n"
    "Assumes verification costs the same for every k' (true at light load).\n"
    "k' above the configured k is not measured and never shown.\n"
    "Measure instead: vllm-console bench --sweep-k (docs/sweep-k.md)."
)


class KAdvisor(Widget):
    """``which k (estimate) favours k'=3`` over a small table of k' columns."""

    DEFAULT_CSS = """
    KAdvisor { height: auto; width: 1fr; }
    """

    advice: reactive[Advice | None] = reactive(None, always_update=True)
    """Repaints on change; only a change of height (enough drafts or not) lays out."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tooltip = TOOLTIP

    def set(self, advice: Advice | None) -> None:
        if advice != self.advice:
            relayout = self._height(advice) != self._height(self.advice)
            self.advice = advice
            if relayout:
                self.refresh(layout=True)

    @staticmethod
    def _height(a: Advice | None) -> int:
        return 5 if a is not None and a.enough else 1

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return self._height(self.advice)

    def render(self) -> Text:
        a = self.advice
        if a is None:
            return Text(f"which k: no drafts yet (needs {MIN_DRAFTS})", style="dim")
        if not a.enough:
            return Text(f"which k: {a.label}", style="dim")
        out = Text()
        out.append("which k (estimate): ", style="bold")
        out.append(f"favours k'={a.best_k}", style="bold")
        out.append(f" of {a.configured_k} ({a.drafts:,} drafts)", style="dim")
        cols = [f"{p.k:>5}" for p in a.curve]
        tok = [f"{p.tokens_per_step:>5.2f}" for p in a.curve]
        spd = [f"{p.relative_throughput:>5.2f}" for p in a.curve]
        out.append("\nk'        " + " ".join(cols) + f"   (>{a.configured_k} not measured)")
        out.append("\ntok/step  " + " ".join(tok))
        out.append("\nspeed-up  " + " ".join(spd) + "   × vs no spec")
        out.append(
            f"\ndraft cost {a.draft_cost:g}× target step: {a.draft_cost_source}", style="dim"
        )
        return out
