"""Replay: the dashboard on recorded samples, with a time cursor.

Not a second dashboard: :class:`ReplayScreen` *is* the dashboard
(:class:`~console.screens.dashboard.DashboardScreen` with ``live=False``)
whose data source is a :class:`~console.history.replay.ReplaySource` instead
of the network. Same panels, same tracker, same formulas; the clock is the
cursor, so figures are as fresh as they were when recorded.

Keys: space play/pause, left/right one sample, shift+left/right one minute,
n/p the next/previous event, home/end the ends, +/- play speed. Stepping
forward feeds one sample, as live polling did; any other jump rebuilds the
dashboard's state at the cursor from the recording
(:meth:`ReplaySource.tracker_frames`, :meth:`ReplaySource.chart_points`).
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Static

from console import metrics as M
from console.history.replay import ReplaySource
from console.history.store import Event
from console.sampler import WINDOW_S, MetricsSampler
from console.screens.dashboard import DashboardScreen, MetricsPolled
from console.session import Session
from console.widgets.events_panel import EventsPanel
from console.widgets.memory_panel import GpuView, MemoryPanel
from console.widgets.throughput_chart import ThroughputChart

SPEEDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _span(s: float) -> str:
    s = max(0.0, s)
    h, rest = divmod(int(s), 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ReplayScreen(DashboardScreen):
    """The dashboard, fed from a recording; see the module docstring."""

    DEFAULT_CSS = """
    ReplayScreen #replay-cursor { height: 1; padding: 0 1; background: $accent 30%; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "play", "Play/pause"),
        Binding("left", "step(-1)", "Back", show=False),
        Binding("right", "step(1)", "Step"),
        Binding("shift+left", "jump(-60)", "-1 min", show=False),
        Binding("shift+right", "jump(60)", "+1 min", show=False),
        Binding("n", "event(1)", "Next event"),
        Binding("p", "event(-1)", "Prev event"),
        Binding("home", "ends(0)", "Start", show=False),
        Binding("end", "ends(1)", "End", show=False),
        Binding("plus,equals_sign", "speed(1)", "Faster", show=False),
        Binding("minus", "speed(-1)", "Slower", show=False),
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("escape", "close", "Back", show=False),
        Binding("f", "nothing", "", show=False),
    ]

    def __init__(self, source: ReplaySource, *, speed: float = 1.0, closable: bool = False) -> None:
        super().__init__(live=False, clock=self._cursor_ts)
        self.closable = closable
        """Pushed over another screen (the Bench screen): Esc goes back to it."""
        self.source = source
        self.index = -1
        """The frame the dashboard shows (-1 before the first one)."""
        self.playing = False
        self.speed = speed
        self._timer: Timer | None = None

    def _cursor_ts(self) -> float:
        if self.index < 0:
            return self.source.start
        return self.source.frames[self.index].ts

    # -- layout --------------------------------------------------------------

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            yield widget
            if widget.id == "dash-status":  # the cursor right under the status line
                yield Static("", id="replay-cursor")

    def on_mount(self) -> None:
        # Textual runs DashboardScreen.on_mount after this one (every class's handler
        # in the MRO): set the replay up once the dashboard has mounted.
        self.call_later(self._start_replay)

    def _start_replay(self) -> None:
        self.sampler = self._new_sampler()
        self.query_one(ThroughputChart).span = 300
        self.query_one(MemoryPanel).show(
            GpuView(available=False, reason="GPU readings are not part of the history")
        )
        events = self.query_one("#dash-events", EventsPanel)
        events.border_title = "Events (n/p jump)"
        events.add_class("-shown")
        self.seek(0)

    def events(self) -> list[Event]:
        """The recording's events up to the cursor."""
        return self.source.events_until(self.index) if self.index >= 0 else []

    def _new_sampler(self) -> MetricsSampler:
        """A sampler that is never started: the recording feeds it, frame by frame."""
        sampler = MetricsSampler(self.source.server, window_s=WINDOW_S, clock=self._cursor_ts)
        sampler.info = M.ServerInfo(model=self.source.model, version=self.source.version)
        return sampler

    # -- moving the cursor ---------------------------------------------------

    def seek(self, index: int, *, notify: bool = False) -> None:
        """Show the dashboard as it was at frame ``index``."""
        index = max(0, min(index, len(self.source.frames) - 1))
        if index == self.index:
            self._render_cursor()
            return
        before = self._cursor_ts() if self.index >= 0 else None
        if index == self.index + 1:
            frame = self.source.frames[index]
            self.index = index
            # The live path: one poll's outcome, as the sampler delivered it.
            error = None if frame.sample else _Err(frame.error)
            self._replayed(MetricsPolled(frame.sample, error, at=frame.ts))
        else:
            self.index = index
            self._rebuild(index)
        if notify and before is not None:
            now = self._cursor_ts()
            for ev in self.source.events:
                if before < ev.ts <= now:
                    self.notify(
                        ev.message,
                        title=ev.kind,
                        severity="error"
                        if ev.severity == "critical"
                        else "warning"
                        if ev.severity == "warning"
                        else "information",
                        timeout=4,
                    )
        self._render_cursor()

    def _rebuild(self, index: int) -> None:
        """The sampler, chart and status as live polling had them at ``index``."""
        sampler = self._new_sampler()
        tick = None
        for f in self.source.tracker_frames(index, WINDOW_S):
            tick = sampler.record(f.sample, None if f.sample else _Err(f.error), at=f.ts)
        self.sampler = sampler
        chart = self.query_one(ThroughputChart)
        chart.set_points(self.source.chart_points(index, chart.span))
        if tick is None:
            self.render_figures()
            return
        # Rebuilt, not lived through: no notices for the state it lands in.
        self.tick, self.up, self.polls = None, tick.ok, index
        self._show(tick)

    def _render_cursor(self) -> None:
        src = self.source
        ts = self._cursor_ts()
        state = "▶" if self.playing else "⏸"
        passed = src.events_until(self.index) if self.index >= 0 else []
        self.query_one("#replay-cursor", Static).update(
            f"{state} replay {_clock(ts)}  {_span(ts - src.start)} / {_span(src.end - src.start)}"
            f"  sample {self.index + 1}/{len(src.frames)}  ×{self.speed:g}"
            f"  events {len(passed)}/{len(src.events)}"
        )
        self._render_events()

    # -- actions -------------------------------------------------------------

    def action_play(self) -> None:
        self.playing = not self.playing
        if self.playing and self.index >= len(self.source.frames) - 1:
            self.seek(0)
        self._schedule()
        self._render_cursor()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.playing or self.index >= len(self.source.frames) - 1:
            self.playing = False
            return
        gap = self.source.frames[self.index + 1].ts - self._cursor_ts()
        delay = min(max(gap / self.speed, 0.02), 2.0)
        self._timer = self.set_timer(delay, self._advance)

    def _advance(self) -> None:
        self._timer = None
        if not self.playing:
            return
        self.seek(self.index + 1, notify=True)
        self._schedule()
        if not self.playing:
            self._render_cursor()

    def action_step(self, delta: int) -> None:
        self.seek(self.index + delta, notify=delta > 0)

    def action_jump(self, seconds: float) -> None:
        self.seek(self.source.index_at(self._cursor_ts() + seconds))

    def action_event(self, direction: int) -> None:
        target = (
            self.source.next_event(self.index)
            if direction > 0
            else self.source.previous_event(self.index)
        )
        if target is None:
            self.notify("no more events that way", timeout=2)
            return
        self.seek(target)

    def action_ends(self, end: int) -> None:
        self.seek(len(self.source.frames) - 1 if end else 0)

    def action_speed(self, direction: int) -> None:
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + direction))]
        self._render_cursor()

    def action_close(self) -> None:
        if self.closable:
            self.playing = False
            self.app.pop_screen()

    def action_nothing(self) -> None:
        """Keys of the live dashboard that mean nothing in a recording (f: fleet)."""

    def action_refresh_now(self) -> None:
        """Nothing to refresh in a recording."""


class _Err(Exception):
    """A recorded failed scrape (its message, as the dashboard shows errors)."""

    def __init__(self, message: str | None) -> None:
        super().__init__(message or "scrape failed")


class ReplayApp(App[None]):
    """``vllm-console replay``: one replay screen, nothing live."""

    CSS_PATH = str(__import__("pathlib").Path(__file__).parent.parent / "app.tcss")
    TITLE = "vllm-console replay"

    def __init__(self, source: ReplaySource, *, speed: float = 1.0) -> None:
        super().__init__()
        self.source = source
        self.speed = speed
        self.session = Session(url=source.server, url_pinned=True)

    def on_mount(self) -> None:
        self.sub_title = self.source.server
        self.push_screen(ReplayScreen(self.source, speed=self.speed))
