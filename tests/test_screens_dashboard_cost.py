"""What the dashboard redraws when figures move (the CPU it costs lives in bench/).

A loaded server changes most figures every second; these tests pin the rules
that keep that cheap: a line shown or hidden is toggled only when that
changes (a toggle lays the screen out), bars and the k advisor lay out only
when their height changes, a move below what is drawn repaints nothing, and
the chart redraws once the newest point is a braille dot further, never
losing a point.
"""

from __future__ import annotations

from dataclasses import asdict

from textual.app import App, ComposeResult
from textual.widget import Widget

from console import metrics as M
from console.sampler import ChartPoint
from console.widgets.acceptance_bars import AcceptanceBars
from console.widgets.gauge import Gauge
from console.widgets.memory_panel import GpuView, MemoryPanel
from console.widgets.throughput_chart import ThroughputChart
from tests.screen_helpers import DATA, wait_until

GIB = 2**30


class Layouts:
    """Counts layout refreshes asked of the app's widgets (a spy on Widget.refresh)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __enter__(self) -> Layouts:
        self._orig = Widget.refresh
        spy = self

        def refresh(widget: Widget, *regions, layout: bool = False, **kw):
            if layout:
                spy.asked.append(type(widget).__name__ + "#" + str(widget.id))
            return spy._orig(widget, *regions, layout=layout, **kw)

        Widget.refresh = refresh  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Widget.refresh = self._orig  # type: ignore[method-assign]


def host_view(rss_gib: float, used_gib: float) -> GpuView:
    return GpuView(
        available=False,
        reason="no NVIDIA GPU",
        host_used=int(used_gib * GIB),
        host_total=24 * GIB,
        host_cached=GIB,
        server_rss=int(rss_gib * GIB),
        server_processes=3,
        server_pid=42,
    )


class Panel(App[None]):
    def compose(self) -> ComposeResult:
        yield MemoryPanel(id="memory")
        yield AcceptanceBars(id="bars")
        yield Gauge("KV cache", id="kv")


async def test_memory_panel_moves_repaint_but_do_not_lay_out() -> None:
    app = Panel()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(MemoryPanel)
        panel.show(host_view(2.0, 8.0))
        await pilot.pause()
        alloc, load = app.query_one("#mem-alloc"), app.query_one("#mem-load")
        assert alloc.display and not load.display
        with Layouts() as layouts:
            for i in range(5):  # the server's RSS and host memory move every reading
                panel.show(host_view(2.0 + 0.3 * i, 8.0 + 0.2 * i))
                await pilot.pause()
        assert layouts.asked == []
        assert "3.2" in str(alloc.render())  # the last reading is shown
        assert alloc.display and not load.display
        # A GPU appearing changes which lines show: that does lay out.
        with Layouts() as layouts:
            panel.show(GpuView(available=True, name="H200", mem_used=GIB, mem_total=80 * GIB))
            await pilot.pause()
        assert layouts.asked
        assert not alloc.display and load.display


async def test_bars_lay_out_only_when_k_changes_and_ignore_moves_below_a_tenth() -> None:
    app = Panel()
    async with app.run_test(size=(80, 24)) as pilot:
        bars = app.query_one(AcceptanceBars)
        bars.set([0.8, 0.5, 0.3, 0.1])
        await pilot.pause()
        with Layouts() as layouts:
            bars.set([0.7, 0.45, 0.2, 0.05])
            await pilot.pause()
        assert layouts.asked == []
        assert bars.rates == (0.7, 0.45, 0.2, 0.05)
        bars.set([0.70004, 0.45, 0.2, 0.05])  # below the 0.1 % drawn
        assert bars.rates == (0.7, 0.45, 0.2, 0.05)
        with Layouts() as layouts:
            bars.set([0.7, 0.45])  # k changed: two lines fewer
            await pilot.pause()
        assert any("AcceptanceBars" in w for w in layouts.asked)
        kv = app.query_one(Gauge)
        kv.set(0.25031)
        assert kv.fraction == 0.25


class Chart(App[None]):
    def compose(self) -> ComposeResult:
        yield ThroughputChart(settle_s=5.0, id="chart")


async def test_chart_redraws_per_dot_of_time_and_draws_a_held_point() -> None:
    app = Chart()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(ThroughputChart)
        # Five minutes of history with values moving every second.
        chart.set_points(history(300))
        dot = chart.dot_s()
        assert dot > 1.0  # 300 s over at most 160 dots
        draws = chart.draws
        for i in range(30):
            chart.add(1300.0 + i, 10.0 + i % 7, 3.0)
        # About one drawing per dot of time, not one per sample.
        assert chart.draws - draws <= 30 / dot + 1
        assert chart.draws - draws >= 30 / dot - 2
        assert len(chart.points) >= 300
        # A point less than a dot after the last drawing is held back: a timer
        # draws it even if nothing follows.
        assert chart._drawn_at is not None
        t = chart._drawn_at + dot / 2
        chart.add(t, 99.0, 3.0)
        held = chart.draws
        assert chart._drawn_at < t
        await wait_until(pilot, lambda: chart._drawn_at == t, timeout=10, what="catch-up")
        assert chart.draws == held + 1
        # A restart marker draws at once.
        chart.add_point(ChartPoint(t + 0.1, None, None, reset=True))
        assert chart._drawn_at == t + 0.1


def history(n: int) -> list[ChartPoint]:
    return [ChartPoint(1000.0 + i, float(i % 5), 1.0) for i in range(n)]


def test_to_dict_is_asdict_on_real_figures() -> None:
    pages = [
        (DATA / "vllm-0.32-cpu" / name).read_text()
        for name in ("metrics_idle.prom", "metrics_ngram.prom")
    ]
    a = M.parse_metrics(pages[0], timestamp=1.0)
    b = M.parse_metrics(pages[1], timestamp=31.0)
    for figures in (M.derive(b, a), M.derive(b), M.derive(a)):
        assert repr(figures.to_dict()) == repr(asdict(figures))


def test_tracker_add_derives_nothing_and_feed_still_gives_the_interval() -> None:
    page = (DATA / "vllm-0.32-cpu" / "metrics_ngram.prom").read_text()
    s1, s2 = (M.parse_metrics(page, timestamp=t) for t in (1.0, 2.0))
    t1, t2 = M.MetricsTracker(), M.MetricsTracker()
    t1.add(s1)
    t1.add(s2)
    t2.feed(s1)
    interval = t2.feed(s2)
    assert interval.window_s == 1.0
    assert t1.last_interval(now=3.0) == t2.last_interval(now=3.0)
    assert t1.window(now=3.0) == t2.window(now=3.0)


def test_per_dot_averages_within_fixed_columns_and_keeps_the_rate() -> None:
    from console.widgets.throughput_chart import per_dot, segments

    # Samples a second apart, columns of 3 s fixed in time (t // 3).
    rates = [3, 0, 6, 1, 1, 1, 9, 0, 0, 5]
    run = [(float(30 + i), float(v)) for i, v in enumerate(rates)]
    out = per_dot(run, 3.0)
    assert [round(t, 3) for t, _ in out] == [31.0, 34.0, 37.0, 39.0]
    assert [v for _, v in out] == [3.0, 1.0, 3.0, 5.0]
    # The mean of the rates of equal intervals is the rate over the column: same tokens.
    assert sum(v for _, v in run) == sum(v * n for (_, v), n in zip(out, (3, 3, 3, 1), strict=True))
    # A gap still breaks the line: runs are averaged one by one.
    points = [ChartPoint(30.0 + i, None if i == 4 else 1.0, 1.0) for i in range(9)]
    runs = [per_dot(r, 3.0) for r in segments(points, 1, 5.0)]
    assert len(runs) == 2
    assert runs[0][-1][0] < 34.0 < runs[1][0][0]
    assert per_dot(run, 0.0) == run


def test_a_full_window_keeps_its_label_through_poll_jitter() -> None:
    """Polls a second apart, each up to 0.3 s late: the full window's label stays
    "last 60 s" (it spans 59.5-60.5 s), so the panels showing it do not repaint."""
    import random

    page = (DATA / "vllm-0.32-cpu" / "metrics_ngram.prom").read_text()
    sample = M.parse_metrics(page, timestamp=0.0)
    rng = random.Random(7)
    tracker = M.MetricsTracker(window_s=60.0)
    labels = set()
    for i in range(200):
        t = 1000.0 + i + rng.uniform(0.0, 0.3)
        tracker.add(M.MetricsSample(timestamp=t, series=sample.series))
        w = tracker.window(now=t)
        if i >= 70:
            assert w is not None and w.window_s is not None and w.window_s <= 60.5
            labels.add(M.window_label(w.window_s))
    assert labels == {"last 60 s"}
