"""tok/s against k: one line per load, each load's baseline a flat line in its colour.

No legend inside the plot (at 80x24 it would hide the lines): the caller
names each load in ``color_of(load)`` beside the chart.

Pure view of ``sweep_report.plot_series``; redrawn when a cell of the sweep
finishes (a few times a minute at most), so the plotext cost does not matter.
A k that was not measured (yet, or failed) is simply absent: no point is
interpolated. The baseline's line carries its load in the legend.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

Series = dict[int, list[tuple[int, float]]]

COLORS = ("green", "cyan", "magenta", "yellow")


def color_of(loads: list[int], load: int) -> str:
    """The colour the plot gives ``load`` among ``loads`` (for a legend outside)."""
    return COLORS[sorted(loads).index(load) % len(COLORS)]


class SweepPlot(PlotextPlot):
    """The Bench screen's k-sweep chart."""

    DEFAULT_CSS = """
    SweepPlot { height: 1fr; min-height: 8; }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.series: Series = {}
        self.baseline: dict[int, float] = {}

    def set_data(self, series: Series, baseline: dict[int, float]) -> None:
        if (series, baseline) == (self.series, self.baseline):
            return
        self.series = {load: list(points) for load, points in series.items()}
        self.baseline = dict(baseline)
        self.replot()

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        ks = sorted({k for points in self.series.values() for k, _ in points})
        loads = sorted(set(self.series) | set(self.baseline))
        for i, load in enumerate(loads):
            color = COLORS[i % len(COLORS)]
            points = sorted(self.series.get(load, []))
            if points:
                plt.plot(
                    [k for k, _ in points],
                    [v for _, v in points],
                    color=color,
                    marker="braille",
                )
            if load in self.baseline:
                xs = [min(ks), max(ks)] if ks else [0, 1]
                plt.plot(
                    xs,
                    [self.baseline[load]] * 2,
                    color=color,
                    marker="-",
                )
        if ks:
            plt.xticks(ks)
            plt.xlim(min(ks) - 0.5, max(ks) + 0.5)
        plt.xlabel("k")
        plt.ylabel("tok/s")
        top = max(
            [v for pts in self.series.values() for _, v in pts]
            + list(self.baseline.values())
            + [0.0]
        )
        plt.ylim(0, top * 1.1 if top > 0 else None)
        self.refresh()
