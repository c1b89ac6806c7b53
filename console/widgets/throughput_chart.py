"""Generation and prompt tokens/s over time, with axes (plotext).

No title or axis label: the panel around it says what is plotted, and at
80x24 every row counts.

Drawing is the expensive part (plotext builds the whole canvas), so a sample
that repeats the previous one (an idle server: 0 tok/s, again) does not
redraw at once: only the time axis would move. Such a chart catches up at
least every ``settle_s`` seconds, so a past burst drifts left in steps of a
few seconds rather than every second; any new value redraws immediately.
"""

from __future__ import annotations

from collections import deque

from textual_plotext import PlotextPlot


class ThroughputChart(PlotextPlot):
    """The last ``span`` seconds of tokens/s; x is seconds before now."""

    DEFAULT_CSS = """
    ThroughputChart { height: 1fr; min-height: 6; }
    """

    def __init__(
        self,
        *,
        span: int = 300,
        settle_s: float = 5.0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.span = span
        self.settle_s = settle_s
        self._drawn_at: float | None = None
        """Sample time of the newest point when last drawn."""
        self._points: deque[tuple[float, float | None, float | None]] = deque()

    def add(self, t: float, generation: float | None, prompt: float | None) -> None:
        """Append one sample at time ``t``; redraw if it shows something new."""
        repeat = bool(self._points) and self._points[-1][1:] == (generation, prompt)
        self._points.append((t, generation, prompt))
        while self._points and t - self._points[0][0] > self.span:
            self._points.popleft()
        if repeat and self._drawn_at is not None and t - self._drawn_at < self.settle_s:
            return
        self.replot()

    def clear_points(self) -> None:
        self._points.clear()
        self.replot()

    @property
    def points(self) -> list[tuple[float, float | None, float | None]]:
        return list(self._points)

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self._points:
            now = self._points[-1][0]
            for idx, label, color in ((1, "generation", "green"), (2, "prompt", "cyan")):
                xs = [p[0] - now for p in self._points if p[idx] is not None]
                ys = [p[idx] for p in self._points if p[idx] is not None]
                if xs:
                    plt.plot(xs, ys, label=label, color=color, marker="braille")
            plt.xlim(-min(self.span, max(now - self._points[0][0], 10)), 0)
        plt.ylim(0, None)
        self._drawn_at = self._points[-1][0] if self._points else None
        self.refresh()
