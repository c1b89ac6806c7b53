"""Generation and prompt tokens/s over time, with axes (plotext).

No title or axis label: the panel around it says what is plotted, and at
80x24 every row counts.

Drawing is the expensive part (plotext builds the whole canvas, then it is
decoded and styled line by line), so redraws follow what the eye can see:

- a sample that repeats the previous one (an idle server: 0 tok/s, again)
  would only move the time axis: such a chart catches up at least every
  ``settle_s`` seconds, so a past burst drifts left in steps of a few seconds;
- each braille dot column shows the mean of the samples in it (see
  :func:`per_dot`), so the line has at most one point per dot: drawing it
  costs a third of drawing every sample of a busy, jagged series;
- the x axis always spans ``span`` seconds (new points come in from the
  right), so one braille dot (half a column) is ``span / (2 × width)``
  seconds: ~2.7 s with 300 s across 55 columns. A new value is drawn once
  the newest point is at least one dot past the last drawing; sooner, the
  line would not move by a dot. Nothing is dropped: a point that arrived
  between drawings is drawn with the next one, at most one dot's time late
  (a timer draws it a dot's time after the last point if no further point
  comes). A reset redraws at once.

Honest gaps: a point without values (a failed poll) or a step longer than
``max_step_s`` between two points breaks the line; nothing is drawn across
the time nobody measured. A counter reset (server restart) is a vertical
marker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from textual.timer import Timer
from textual_plotext import PlotextPlot

from console.sampler import ChartPoint

Segment = list[tuple[float, float]]


def segments(points: Iterable[ChartPoint], idx: int, max_step_s: float) -> list[Segment]:
    """The runs of ``(t, value)`` of one series (``idx`` 1 or 2) that may be joined
    by a line: a missing value or a step longer than ``max_step_s`` ends a run."""
    runs: list[Segment] = []
    run: Segment = []
    last_t: float | None = None
    for p in points:
        value = p[idx]
        if value is None or (last_t is not None and p.t - last_t > max_step_s):
            if run:
                runs.append(run)
            run = []
        if value is not None:
            run.append((p.t, value))
        last_t = p.t
    if run:
        runs.append(run)
    return runs


def per_dot(run: Segment, dot_s: float) -> Segment:
    """One point per braille dot column of ``dot_s`` seconds (columns fixed in
    time, so they do not shift between drawings): the mean time and the mean
    rate of the run's samples in it. With samples a second apart that is the
    rate over the column's span; the chart cannot show finer than a dot, and
    plotext's cost grows with every line it draws between samples."""
    if dot_s <= 0 or len(run) < 2:
        return run
    out: Segment = []
    col: int | None = None
    st = sv = 0.0
    n = 0
    for t, v in run:
        c = int(t // dot_s)
        if c != col and n:
            out.append((st / n, sv / n))
            st = sv = 0.0
            n = 0
        col = c
        st += t
        sv += v
        n += 1
    out.append((st / n, sv / n))
    return out


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
        max_step_s: float = 5.0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.span = span
        self.settle_s = settle_s
        self.max_step_s = max_step_s
        """A longer step between two points is a gap, not a line."""
        self._drawn_at: float | None = None
        """Sample time of the newest point when last drawn."""
        self._points: deque[ChartPoint] = deque()
        self._catch_up: Timer | None = None
        """Draws the points held back by the dot rule if no further point comes."""
        self.draws = 0
        """How many times the chart was drawn (tests, bench)."""
        self._pending = False
        """A point not drawn yet differs from what is shown (not just a repeat)."""

    def add(self, t: float, generation: float | None, prompt: float | None) -> None:
        """Append one sample at time ``t``; redraw if it shows something new."""
        self.add_point(ChartPoint(t, generation, prompt))

    def add_point(self, point: ChartPoint) -> None:
        """Append one point (a gap or reset marker too); redraw if it shows something new."""
        last = self._points[-1] if self._points else None
        if (
            last is None
            or (last.generation, last.prompt) != (point.generation, point.prompt)
            or point.reset
            or point.t - last.t > self.max_step_s
        ):
            self._pending = True  # something the last drawing does not show
        self._points.append(point)
        self._trim()
        drawn = self._drawn_at
        if drawn is not None and not point.reset:
            since = point.t - drawn
            wait = self.dot_s() if self._pending else self.settle_s
            if since < wait:
                if self._pending:
                    self._hold()
                return
        self.replot()

    def dot_s(self) -> float:
        """Seconds of the x axis per braille dot (half a column) at this width:
        a redraw sooner than that moves nothing by a dot, so it waits."""
        return self.span / (2 * max(self.size.width, 20))

    def _hold(self) -> None:
        """A held-back point is drawn a dot's time after the last point arrived
        if none follows (the timer starts again with each held point: while
        points keep coming the dot rule draws them, and a drawing by the timer
        in between would reset the rule to an older point)."""
        if not self.is_attached:
            return
        if self._catch_up is None:
            self._catch_up = self.set_timer(self.dot_s(), self._caught_up)
        else:
            self._catch_up.reset()

    def _caught_up(self) -> None:
        self._catch_up = None
        if self._points and self._points[-1].t != self._drawn_at:
            self.replot()

    def set_points(self, points: Iterable[ChartPoint]) -> None:
        """Replace the history (a screen shown again catches up from its sampler)."""
        self._points = deque(points)
        self._trim()
        self.replot()

    def _trim(self) -> None:
        if not self._points:
            return
        newest = self._points[-1].t
        while self._points and newest - self._points[0].t > self.span:
            self._points.popleft()

    def clear_points(self) -> None:
        self._points.clear()
        self.replot()

    @property
    def points(self) -> list[ChartPoint]:
        return list(self._points)

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self._points:
            now = self._points[-1].t
            dot = self.dot_s()
            for idx, label, color in ((1, "generation", "green"), (2, "prompt", "cyan")):
                for i, raw in enumerate(segments(self._points, idx, self.max_step_s)):
                    run = per_dot(raw, dot)
                    xs = [t - now for t, _ in run]
                    ys = [v for _, v in run]
                    # One legend entry per series, however many runs it has.
                    plt.plot(xs, ys, label=label if i == 0 else "", color=color, marker="braille")
            for p in self._points:
                if p.reset:
                    plt.vline(p.t - now, "red")
            plt.xlim(-self.span, 0)
        plt.ylim(0, None)
        self._drawn_at = self._points[-1][0] if self._points else None
        self.draws += 1
        self._pending = False
        if self._catch_up is not None:
            self._catch_up.stop()
            self._catch_up = None
        self.refresh()
