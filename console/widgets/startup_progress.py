"""Server start-up as a list of phases, driven by log events.

The phases are the ones vLLM announces in its log: process up, weights
loaded, KV cache sized, CUDA graphs captured (skipped with
``--enforce-eager``), engine initialised, API ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class Phase(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


PHASES: tuple[tuple[str, str], ...] = (
    ("process", "Process started"),
    ("weights", "Loading weights"),
    ("kv_cache", "KV cache"),
    ("graphs", "CUDA graphs"),
    ("engine", "Engine init"),
    ("ready", "API ready"),
)

_MARK = {
    Phase.PENDING: ("·", "dim"),
    Phase.ACTIVE: ("▶", "bold yellow"),
    Phase.DONE: ("✓", "bold green"),
    Phase.SKIPPED: ("–", "dim"),
    Phase.FAILED: ("✗", "bold red"),
}


@dataclass(frozen=True)
class PhaseState:
    state: Phase = Phase.PENDING
    detail: str = ""


class StartupProgress(Widget):
    """One line per phase: mark, name, detail (``1,234 tokens``, ``12.3 s``)."""

    DEFAULT_CSS = """
    StartupProgress { height: auto; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    phases: reactive[dict[str, PhaseState]] = reactive(dict, always_update=True)

    def reset(self) -> None:
        self.phases = {key: PhaseState() for key, _ in PHASES}

    def on_mount(self) -> None:
        if not self.phases:
            self.reset()

    def mark(self, key: str, state: Phase, detail: str | None = None, *, fill: bool = True) -> None:
        """Set one phase; with ``fill``, earlier pending phases become done (the log
        moved past them). Without a log (a server known only by URL) pass
        ``fill=False``: what happened before is unknown, not done."""
        phases = dict(self.phases) or {k: PhaseState() for k, _ in PHASES}
        current = phases.get(key, PhaseState())
        phases[key] = PhaseState(state, current.detail if detail is None else detail)
        if fill and state in (Phase.ACTIVE, Phase.DONE):
            for k, _ in PHASES:
                if k == key:
                    break
                if phases[k].state in (Phase.PENDING, Phase.ACTIVE):
                    phases[k] = PhaseState(Phase.DONE, phases[k].detail)
        self.phases = phases

    def state_of(self, key: str) -> Phase:
        return self.phases.get(key, PhaseState()).state

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return len(PHASES)

    def render(self) -> Text:
        out = Text()
        for i, (key, label) in enumerate(PHASES):
            st = self.phases.get(key, PhaseState())
            mark, style = _MARK[st.state]
            if i:
                out.append("\n")
            out.append(f" {mark} ", style=style)
            out.append(f"{label:<19}", style="bold" if st.state is Phase.ACTIVE else "")
            if st.state is Phase.SKIPPED and not st.detail:
                out.append("skipped", style="dim")
            out.append(st.detail, style="dim" if st.state is Phase.SKIPPED else "")
        return out
