"""The dashboard: one vLLM server's memory, load, throughput, latency and
speculative decoding, live.

Figures come from the session's :class:`console.sampler.MetricsSampler`,
which scrapes ``/metrics`` once a second in its own thread whatever screen
shows; this screen subscribes to it while shown and, shown again, catches up
from the sampler's history (so a hidden minute is real samples, not a ramp).
A failed poll is a gap in the chart; a counter reset (server restart) is a
marker there and a note in the status line, and the windows restart.
GPU readings come from a thread worker (NVML calls block); without a GPU the
memory panel shows the host's memory and the server process tree's RSS.

Scope: ``w`` switches between the window (counter differences over at most
the last 60 s, labelled with the span it really covers) and "since start"
(the server's lifetime counters). When nothing happened in the window, ratio
figures fall back to since-start values and say so, rather than showing
blanks.

Idle cost: a poll changes few of the figures, so every widget is touched only
when what it shows changes, and the tiles, gauges and status line have fixed
sizes: a change repaints that one line instead of laying the screen out again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Header, Static
from textual.worker import get_current_worker

from console import spec_advisor
from console.sanitize import clean_line
from console.screens.base import session_of
from console.screens.messages import ActiveProfileChanged, ServerStatusBroadcast
from console.widgets.acceptance_bars import FORMULA, AcceptanceBars
from console.widgets.cluster_panel import ClusterStrip
from console.widgets.events_panel import EventsPanel
from console.widgets.footer import Footer
from console.widgets.gauge import Gauge
from console.widgets.k_advisor import KAdvisor
from console.widgets.memory_panel import GpuView, MemoryPanel, ProcessAlloc
from console.widgets.stat_tile import StatTile

if TYPE_CHECKING:
    # Loaded when first used, after the first frame: metrics (prometheus_client),
    # the sampler, NVML, psutil, SQLite and plotext are what made start-up slow.
    from console import metrics as M
    from console import procmem
    from console.gpu import GpuSample
    from console.history.store import Event
    from console.sampler import MetricsSampler, Tick
    from console.widgets.throughput_chart import ThroughputChart

GPU_POLL_S = 1.0
W = TypeVar("W", bound=Widget)

WINDOW = "window"
LIFETIME = "lifetime"
SINCE_START = "since start"
IDLE_NOTE = "idle: since start"


# --------------------------------------------------------------------------- formatting


def fmt_seconds(s: float | None) -> str:
    """Latency with a unit that keeps three significant figures readable."""
    if s is None:
        return "–"
    if s < 1.0:
        return f"{s * 1000:.0f}ms" if s >= 0.01 else f"{s * 1000:.1f}ms"
    return f"{s:.2f}s"


def fmt_rate(x: float | None) -> str | None:
    return None if x is None else f"{x:,.1f}"


def fmt_pct(x: float | None) -> str | None:
    return None if x is None else f"{x * 100:.1f} %"


def fmt_quantiles(q: M.Quantiles | None) -> str | None:
    if q is None or q.count == 0:
        return None
    return f"p50 {fmt_seconds(q.p50)} p90 {fmt_seconds(q.p90)} p99 {fmt_seconds(q.p99)}"


def fmt_age(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


@dataclass(frozen=True)
class Scoped:
    """A figure and the note saying which scope it really covers."""

    value: Any
    note: str


def pick(
    scope: str,
    window: Callable[[], Any],
    lifetime: Callable[[], Any],
    *,
    empty: Callable[[Any], bool] = lambda v: v is None,
    label: str = "last 60 s",
) -> Scoped:
    """The window figure (noted with ``label``, the span it covers), or the
    since-start one (marked) when the window is empty."""
    if scope == WINDOW:
        value = window()
        if not empty(value):
            return Scoped(value, label)
        value = lifetime()
        return Scoped(value, IDLE_NOTE if not empty(value) else label)
    return Scoped(lifetime(), SINCE_START)


def window_note(figures: M.Figures | None) -> str:
    """The label of window figures: the span they cover, and a restart if they began at one."""
    span = None if figures is None else figures.window_s
    from console import metrics as M

    text = M.window_label(span)
    if figures is not None and figures.counter_reset:
        text += " since restart" if span else " (restarted)"
    return text


def _empty_q(q: M.Quantiles | None) -> bool:
    return q is None or q.count == 0


def _empty_spec(s: M.SpecDecodeStats | None) -> bool:
    return s is None or s.drafts == 0


# --------------------------------------------------------------------------- messages


class SamplerTicked(Message):
    """The session's sampler finished a poll (posted from the sampler's thread)."""

    def __init__(self, tick: Tick) -> None:
        super().__init__()
        self.tick = tick


class MetricsPolled(Message):
    """A recorded scrape to replay (tests, replays): a sample, or the error instead,
    and when the poll ended (``at``; default: the screen's clock)."""

    def __init__(
        self, sample: M.MetricsSample | None, error: Exception | None, at: float | None = None
    ) -> None:
        super().__init__()
        self.sample = sample
        self.error = error
        self.at = at


class LiveReady(Message):
    """What a live dashboard needs is imported: the chart, sampling and GPU reading start."""


class GpuSampled(Message):
    def __init__(self, view: GpuView) -> None:
        super().__init__()
        self.view = view


# --------------------------------------------------------------------------- GPU adapter


def gpu_view_from(
    sample: GpuSample | None,
    now: float | None = None,
    server: procmem.ServerMemory | None = None,
) -> GpuView:
    """The memory panel's view of one :class:`console.gpu.GpuSample` (first device);
    without a GPU, the host's memory and ``server`` (its process tree's RSS)."""
    if sample is None:
        return GpuView(available=False, reason="reading GPU…")
    age = None if now is None else max(0.0, now - sample.timestamp)
    host = sample.host
    if not sample.available or not sample.devices:
        return GpuView(
            available=False,
            reason=sample.reason or "no GPU",
            age_s=age,
            host_used=host.used if host else None,
            host_total=host.total if host else None,
            host_cached=host.cached if host else None,
            server_rss=server.rss if server else None,
            server_processes=server.processes if server else 0,
            server_pid=server.pid if server else None,
            server_note=server.reason if server else "",
        )
    dev = sample.devices[0]
    procs = tuple(
        ProcessAlloc(pid=p.pid, name=p.name or "?", used_bytes=p.used_bytes) for p in dev.processes
    )
    name = dev.name or f"GPU {dev.index}"
    if len(sample.devices) > 1:
        name += f" (1 of {len(sample.devices)})"
    return GpuView(
        available=True,
        name=name,
        unified=dev.unified,
        mem_used=dev.mem_used,
        mem_total=dev.mem_total,
        host_used=host.used if host else None,
        host_total=host.total if host else None,
        host_cached=host.cached if host else None,
        processes=procs,
        util_pct=dev.util_pct,
        temp_c=dev.temp_c,
        power_w=dev.power_w,
        power_limit_w=dev.power_limit_w,
        age_s=age,
    )


# --------------------------------------------------------------------------- screen


class DashboardScreen(Screen):
    """Live figures of the session's server."""

    DEFAULT_CSS = """
    DashboardScreen #dash-status { height: 1; width: 1fr; padding: 0 1; background: $boost; }
    DashboardScreen #chart-slot { height: 1fr; min-height: 6; }
    DashboardScreen #dash-status.-down { background: $error 30%; }
    DashboardScreen #dash-status.-stale { background: $warning 25%; }
    DashboardScreen #dash-grid {
        grid-size: 2;
        grid-columns: 1fr 1fr;
        grid-rows: auto 1fr auto;
        height: 1fr;
    }
    DashboardScreen .panel {
        border: round $primary 50%;
        border-title-color: $text-accent;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        height: auto;
    }
    DashboardScreen #panel-throughput { height: 1fr; }
    DashboardScreen #panel-latency { height: 1fr; }
    DashboardScreen #panel-spec { column-span: 2; }
    DashboardScreen #spec-body { height: auto; }
    DashboardScreen #spec-figures { width: 1fr; height: auto; }
    DashboardScreen #spec-bars { width: 1fr; }
    DashboardScreen #spec-absent { height: auto; color: $text-muted; }
    DashboardScreen.-wide #spec-figures { width: 2fr; }
    DashboardScreen.-wide #spec-bars { width: 3fr; }
    DashboardScreen .tput { height: 1; }
    DashboardScreen #dash-events {
        border: round $primary 50%; border-title-color: $text-accent; padding: 0 1;
        display: none;
    }
    DashboardScreen #dash-events.-shown { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "toggle_scope", "Last 60 s / since start"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("e", "toggle_events", "Events"),
        Binding("f", "app.fleet", "Fleet"),
    ]

    scope: reactive[str] = reactive(WINDOW)
    """``window`` (last 60 s) or ``lifetime`` (since the server started)."""

    def __init__(
        self,
        *,
        gpu_poll_s: float = GPU_POLL_S,
        live: bool = True,
        gpu_sampler: Callable[[], GpuSample] | None = None,
        clock: Callable[[], float] = time.time,
        sampler: MetricsSampler | None = None,
    ) -> None:
        super().__init__()
        self.fixed_sampler = sampler
        """A fleet server's running sampler (the fleet view's drill-down); None: the
        session's server."""
        self.clock = clock
        """Wall clock for the age of figures (fixed in snapshot tests)."""
        self.gpu_sampler = gpu_sampler
        """Returns one GPU reading (default: the process-wide NVML sampler)."""
        self.live = live
        """False: no workers start (replay and snapshot tests post the messages)."""
        self.gpu_poll_s = gpu_poll_s
        self.sampler: MetricsSampler | None = None
        """The session's sampler this screen follows (live), or its own for replays."""
        self.tick: Tick | None = None
        """The latest poll shown."""
        self.polls = 0
        """Polls shown (good or failed); tests wait on it."""
        self.up: bool | None = None
        self._visible = threading.Event()
        self._live = False
        """Following the sampler (a live screen, from just after its first frame)."""
        self._unsubscribe: Callable[[], None] | None = None
        self._widgets: dict[tuple[Any, Any], Any] = {}
        self._shown: dict[tuple[str, str], Any] = {}
        """What each widget attribute was last set to: unchanged figures cost nothing."""

    @property
    def info(self) -> M.ServerInfo | None:
        return self.tick.info if self.tick is not None else None

    @property
    def tracker(self) -> M.MetricsTracker | None:
        """The followed sampler's tracker (read-only use: tests, diagnostics;
        figures to show come with each tick)."""
        return self.sampler.tracker if self.sampler is not None else None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="dash-status")
        yield ClusterStrip(
            lambda: getattr(session_of(self.app), "profile", None), id="dash-cluster"
        )
        with Grid(id="dash-grid"):
            with Vertical(id="panel-gpu", classes="panel") as p:
                p.border_title = "GPU"
                yield MemoryPanel(id="memory")
            with Vertical(id="panel-engine", classes="panel") as p:
                p.border_title = "Engine"
                yield Gauge("KV cache", id="kv-gauge")
                yield StatTile("KV capacity", id="kv-capacity", unit="tokens", label_width=12)
                yield StatTile("requests", id="requests", label_width=12)
                yield StatTile(
                    "prefix hit",
                    id="prefix-hit",
                    label_width=12,
                    tooltip="Prefix-cache hit rate = Δhits / Δqueries (tokens)",
                )
            with Vertical(id="panel-throughput", classes="panel") as p:
                p.border_title = "Throughput (tok/s; x: seconds ago)"
                with Horizontal(classes="tput"):
                    yield StatTile("gen", id="gen-tps", unit="tok/s", label_width=4)
                    yield StatTile("prompt", id="prompt-tps", unit="tok/s", label_width=7)
                if self.live:
                    # plotext is slow to import: the chart comes after the first frame
                    yield Static(id="chart-slot")
                else:
                    yield self._new_chart()
            with Vertical(id="panel-latency", classes="panel") as p:
                p.border_title = "Latency"
                yield StatTile(
                    "TTFT", id="ttft", label_width=5, tooltip="time to first token, per request"
                )
                yield StatTile(
                    "TPOT",
                    id="tpot",
                    label_width=5,
                    tooltip="time per output token after the first, per finished request",
                )
                yield StatTile(
                    "ITL",
                    id="itl",
                    label_width=5,
                    tooltip="inter-token latency per engine step "
                    "(one step yields several tokens with spec decode)",
                )
                yield StatTile(
                    "E2E", id="e2e", label_width=5, tooltip="request latency, end to end"
                )
                yield StatTile("done", id="req-count", label_width=5, unit="requests")
                yield StatTile(
                    "preempted",
                    id="preempt",
                    label_width=10,
                    tooltip="requests preempted (KV cache full): a sign to lower load or max len",
                )
            with Vertical(id="panel-spec", classes="panel") as p:
                p.border_title = "Speculative decoding"
                yield Static(
                    "not enabled on this server (no --speculative-config: counters absent)",
                    id="spec-absent",
                )
                with Horizontal(id="spec-body"):
                    with Vertical(id="spec-figures"):
                        yield StatTile(
                            "mean accept len",
                            id="spec-mal",
                            label_width=18,
                            tooltip="1 + A / D: tokens per verify step, bonus token included",
                        )
                        yield StatTile(
                            "draft accept rate",
                            id="spec-dar",
                            label_width=18,
                            tooltip="A / T: accepted draft tokens / drafted tokens",
                        )
                        yield StatTile(
                            "accepted/drafted",
                            id="spec-tps",
                            label_width=18,
                            tooltip="A/Δt vs T/Δt over the window; token counts since start",
                        )
                        yield StatTile("drafts", id="spec-drafts", label_width=18)
                    yield AcceptanceBars(id="spec-bars")
                yield KAdvisor(id="spec-advisor")
        events = EventsPanel(id="dash-events", lines=3)
        events.border_title = "Events"
        yield events
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#panel-spec").tooltip = FORMULA
        self.query_one("#spec-body").display = False
        self.query_one("#spec-advisor").display = False
        self.query_one(MemoryPanel).show(gpu_view_from(None))
        self._visible.set()
        if self.live:
            # The first frame comes first: then the chart, the sampler (its first
            # scrape) and the GPU readings, whose imports are what is slow.
            self.call_after_refresh(self._prepare_live)

    @work(thread=True, exclusive=True, group="dashboard-live", exit_on_error=False)
    def _prepare_live(self) -> None:
        """Import what the live figures need off the UI thread (plotext, the
        sampler and prometheus_client, NVML, psutil), then go live on it."""
        import console.gpu
        import console.procmem
        import console.sampler
        import console.widgets.throughput_chart  # noqa: F401

        self.post_message(LiveReady())

    @staticmethod
    def _new_chart() -> ThroughputChart:
        from console.widgets.throughput_chart import ThroughputChart

        return ThroughputChart(id="chart")

    @property
    def chart(self) -> ThroughputChart:
        return self.query_one("#chart")  # type: ignore[return-value]

    @on(LiveReady)
    async def _go_live(self) -> None:
        slot = self.query_one("#chart-slot")
        await self.query_one("#panel-throughput").mount(self._new_chart(), after=slot)
        await slot.remove()
        self._live = True
        self._follow()
        self.sample_gpu()
        # A poll stuck in flight sends no tick: the stall still shows, by the clock.
        self.set_interval(1.0, self._render_status_if_shown)

    def on_unmount(self) -> None:
        self._visible.clear()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_screen_suspend(self) -> None:
        self._visible.clear()

    def on_screen_resume(self) -> None:
        self._visible.set()
        if self._live:
            self._follow(catch_up=True)

    # -- following the session's sampler -----------------------------------------

    def _source(self) -> MetricsSampler:
        """The sampler to follow: the fleet's one for its server, else the session's."""
        return self.fixed_sampler or session_of(self).sampler

    def _follow(self, *, catch_up: bool = False) -> None:
        """Subscribe to the session's sampler (a new one when the URL changed) and
        show what it has: its history and its latest poll."""
        sampler = self._source()
        if sampler is not self.sampler:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.sampler = sampler
            self.tick = None
            self.up = None
            self._unsubscribe = sampler.subscribe(self._ticked)
            catch_up = True
        if catch_up:
            self.chart.set_points(sampler.points())
            last = sampler.last
            if last is not None:
                self._show(last)
            else:
                self.render_figures()

    def _source_url(self) -> str:
        return self.fixed_sampler.url if self.fixed_sampler else session_of(self).url

    def _render_status_if_shown(self) -> None:
        if self._visible.is_set() and self.tick is not None:
            self._render_status()

    def _ticked(self, tick: Tick) -> None:
        """Called in the sampler's thread after each poll: on to the UI while shown."""
        if self._visible.is_set():
            self.post_message(SamplerTicked(tick))

    @work(
        thread=True, exclusive=True, group="dashboard-gpu", exit_on_error=False, description="GPU"
    )
    def sample_gpu(self) -> None:
        """Read NVML once a second in a thread (its calls block); without a GPU,
        the host's memory and the server process tree's RSS."""
        from console import procmem
        from console.gpu import default_sampler

        worker = get_current_worker()
        sampler = self.gpu_sampler or default_sampler().sample
        finder = procmem.ServerProcessFinder()
        while not worker.is_cancelled:
            if self._visible.is_set():
                sample = sampler()
                server = None
                if not sample.available:
                    session = session_of(self)
                    server = finder.memory(session.url, session.server_pid)
                self.post_message(GpuSampled(gpu_view_from(sample, time.time(), server)))
            deadline = time.monotonic() + self.gpu_poll_s
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.1)

    # -- handlers ------------------------------------------------------------

    @on(GpuSampled)
    def _gpu(self, event: GpuSampled) -> None:
        self.query_one(MemoryPanel).show(event.view)
        # Without a GPU reading the panel shows host memory: its title says so.
        title = "GPU" if event.view.available else "Memory (host)"
        if self._changed(("#panel-gpu", "title"), title):
            self.query_one("#panel-gpu").border_title = title

    @on(SamplerTicked)
    def _sampled(self, event: SamplerTicked) -> None:
        if event.tick.url != (self.sampler.url if self.sampler else None):
            return  # a poll of a sampler this screen no longer follows
        point = event.tick.point
        if point is not None:
            self.chart.add_point(point)
        self._show(event.tick)

    @on(MetricsPolled)
    def _replayed(self, event: MetricsPolled) -> None:
        """A recorded poll: through a sampler of the screen's own, never started."""
        if self.sampler is None:
            from console.sampler import MetricsSampler

            self.sampler = MetricsSampler(session_of(self).url, clock=self.clock)
        tick = self.sampler.record(event.sample, event.error, at=event.at)
        if tick.point is not None:
            self.chart.add_point(tick.point)
        self._show(tick)

    def _show(self, tick: Tick) -> None:
        """Show one poll: notices on up/down changes, then the figures."""
        self.polls += 1
        url = tick.url
        if tick.ok:
            if self.up is False:
                self.notify(f"server back: {url}", timeout=4)
            if tick.counter_reset and self.tick is not None:
                self.notify(
                    f"{url}: counters went down (server restarted); windows restart",
                    severity="warning",
                    timeout=8,
                )
            self.up = True
        else:
            if self.up is not False and self.polls > 1:
                self.notify(f"server down: {tick.error}", severity="warning", timeout=6)
            self.up = False
        self.tick = tick
        self.render_figures()

    def action_toggle_scope(self) -> None:
        self.scope = LIFETIME if self.scope == WINDOW else WINDOW

    def watch_scope(self) -> None:
        if self.is_mounted:
            self.render_figures()

    def action_refresh_now(self) -> None:
        if self.sampler is not None:
            self.sampler.wake()

    @on(ActiveProfileChanged)
    @on(ServerStatusBroadcast)
    def _server_news(self, _: ActiveProfileChanged | ServerStatusBroadcast) -> None:
        """A new profile or a server that just came up: follow its URL, poll now."""
        if self._live:  # (before going live, _go_live follows the URL of the moment)
            self._follow()
        self.action_refresh_now()

    # -- rendering -----------------------------------------------------------

    def _q(self, selector: str | type[W], expect: type[W] | None = None) -> W:
        """``query_one`` remembered: the screen's widgets never change, and a
        tick sets some 25 of them (a DOM query each, every second, otherwise)."""
        key = (selector, expect)
        widget = self._widgets.get(key)
        if widget is None:
            widget = self._widgets[key] = (
                self.query_one(selector, expect) if expect else self.query_one(selector)
            )
        return widget  # type: ignore[return-value]

    def _changed(self, key: tuple[str, str], value: Any) -> bool:
        """True (and remembered) when ``value`` differs from what ``key`` shows."""
        if key in self._shown and self._shown[key] == value:
            return False
        self._shown[key] = value
        return True

    def _subtitle(self, selector: str, text: str) -> None:
        """Set a panel's border subtitle; setting one repaints the whole panel."""
        if self._changed((selector, "subtitle"), text):
            self._q(selector).border_subtitle = text

    def _display(self, selector: str, shown: bool) -> None:
        if self._changed((selector, "display"), shown):
            self._q(selector).display = shown

    def action_toggle_events(self) -> None:
        """Show or hide the Events panel (restarts, KV high, queue growing, ...)."""
        self._q("#dash-events").toggle_class("-shown")
        self._render_events()

    def events(self) -> list[Event]:
        """What the session's history detected for this screen's server."""
        history = getattr(session_of(self), "history", None)
        if history is None or self.sampler is None:
            return []
        return history.events(self.sampler.url)

    def _render_events(self) -> None:
        panel = self._q("#dash-events", EventsPanel)
        if panel.has_class("-shown"):
            panel.show(self.events())

    def render_figures(self) -> None:
        """Push the latest poll's figures into the widgets, in the current scope."""
        self._render_status()
        self._render_events()
        tick = self.tick
        if tick is None or tick.lifetime is None:
            return
        lifetime = tick.lifetime
        window = tick.window or lifetime
        wnote = window_note(tick.window)
        scope = self.scope
        stale = self.up is False

        def note(n: str) -> str:
            return f"{n}, stale" if stale else n

        # Engine
        kv = window.kv_cache
        cap = None
        if kv.capacity_tokens is not None:
            cap = f"{kv.capacity_tokens:,}"
        self._q("#kv-gauge", Gauge).set(kv.usage, "stale" if stale else "")
        cap_tile = self._q("#kv-capacity", StatTile)
        cap_tile.set(cap, "from log" if kv.capacity_source == "log" else "")
        if kv.max_concurrency:
            tip = (
                f"KV cache holds {cap} tokens: {kv.max_concurrency:.1f} requests "
                "of the maximum model length at once."
            )
            if self._changed(("#kv-capacity", "tooltip"), tip):
                cap_tile.tooltip = tip
        r = window.requests
        req = None
        if r.running is not None:
            req = f"{r.running} running · {r.waiting if r.waiting is not None else '–'} waiting"
        self._q("#requests", StatTile).set(req, "stale" if stale else "")
        hit = pick(
            scope,
            lambda: window.prefix_cache.hit_rate,
            lambda: lifetime.prefix_cache.hit_rate_lifetime,
            label=wnote,
        )
        self._q("#prefix-hit", StatTile).set(fmt_pct(hit.value), note(hit.note))

        # Throughput: the window's average rates; since start, the average since attach.
        if scope == WINDOW:
            tp, tnote = window.throughput, wnote
        else:
            since = tick.since_start
            from console.metrics import ThroughputFigures

            tp, tnote = (since.throughput if since else ThroughputFigures()), "since attach"
        self._q("#gen-tps", StatTile).set(fmt_rate(tp.generation_tokens_per_s))
        self._q("#prompt-tps", StatTile).set(fmt_rate(tp.prompt_tokens_per_s))
        self._subtitle("#panel-throughput", note(tnote))

        # Latency
        lat_w, lat_l = window.latency, lifetime.latency
        for wid, attr in (
            ("#ttft", "ttft_s"),
            ("#tpot", "tpot_s"),
            ("#itl", "itl_s"),
            ("#e2e", "e2e_s"),
        ):
            q = pick(
                scope,
                lambda a=attr: getattr(lat_w, a),
                lambda a=attr: getattr(lat_l, a),
                empty=_empty_q,
                label=wnote,
            )
            self._q(wid, StatTile).set(fmt_quantiles(q.value))
        e2e = pick(scope, lambda: lat_w.e2e_s, lambda: lat_l.e2e_s, empty=_empty_q, label=wnote)
        self._q("#req-count", StatTile).set(None if e2e.value is None else f"{e2e.value.count:,}")
        self._subtitle("#panel-latency", note(e2e.note))
        pre = window.preemptions if scope == WINDOW else lifetime.preemptions
        count = pre.window if scope == WINDOW else pre.lifetime
        self._q("#preempt", StatTile).set(None if count is None else f"{count:,}")

        self._render_spec(window, lifetime, scope, note, wnote)

    def _render_spec(
        self,
        window: M.Figures,
        lifetime: M.Figures,
        scope: str,
        note: Callable[[str], str],
        wnote: str,
    ) -> None:
        spec_w, spec_l = window.spec_decode, lifetime.spec_decode
        absent = spec_l is None
        self._display("#spec-absent", absent)
        self._display("#spec-body", not absent)
        self._display("#spec-advisor", not absent)
        if absent or spec_l is None:
            self._subtitle("#panel-spec", "")
            return
        k = spec_l.num_speculative_tokens
        chosen = pick(
            scope,
            lambda: spec_w.window if spec_w else None,
            lambda: spec_l.lifetime,
            empty=_empty_spec,
            label=wnote,
        )
        s: M.SpecDecodeStats | None = chosen.value
        self._subtitle("#panel-spec", note(f"{chosen.note} · k={k}"))
        if s is None or s.drafts == 0:
            self._q("#spec-mal", StatTile).set(None)
            self._q("#spec-dar", StatTile).set(None)
            self._q("#spec-tps", StatTile).set(None)
            self._q("#spec-drafts", StatTile).set("0")
            self._q(AcceptanceBars).set([None] * k)
            self._q(KAdvisor).set(None)
            return
        mal = s.mean_acceptance_length
        self._q("#spec-mal", StatTile).set(None if mal is None else f"{mal:.2f} / {k + 1}")
        self._q("#spec-dar", StatTile).set(fmt_pct(s.draft_acceptance_rate))
        if s.accepted_tokens_per_s is not None and s.draft_tokens_per_s is not None:
            tps = f"{s.accepted_tokens_per_s:,.1f} / {s.draft_tokens_per_s:,.1f} tok/s"
        else:
            tps = f"{s.accepted_tokens:,} / {s.draft_tokens:,} tok"
        self._q("#spec-tps", StatTile).set(tps)
        self._q("#spec-drafts", StatTile).set(f"{s.drafts:,}")
        per = list(s.per_position or ())
        per += [None] * (k - len(per))
        self._q(AcceptanceBars).set(per)
        self._q(KAdvisor).set(
            spec_advisor.advise(s.per_position, s.drafts, method=self._spec_method())
        )

    def _spec_method(self) -> str | None:
        """The active profile's speculative method (None when attached by URL only)."""
        profile = getattr(session_of(self.app), "profile", None)
        spec = getattr(getattr(profile, "serve", None), "speculative_config", None) or {}
        method = spec.get("method") if isinstance(spec, dict) else None
        return method if isinstance(method, str) else None

    def _render_status(self) -> None:
        down, stale, text = self._status_line()
        if not self._changed(("#dash-status", "line"), (down, stale, text)):
            return
        status = self._q("#dash-status", Static)
        status.set_class(down, "-down")
        status.set_class(stale, "-stale")
        # One fixed-size line: repaint it, no layout pass.
        status.update(text, layout=False)

    def _status_line(self) -> tuple[bool, bool, str]:
        """(down, stale, text) of the status line."""
        tick = self.tick
        url = tick.url if tick is not None else self._source_url()
        now = self.clock()
        label = window_note(tick.window if tick else None) if self.scope == WINDOW else SINCE_START
        scope = f"[{label} · w]"
        if tick is None or self.up is None:
            return False, False, f"connecting to {url}…"
        age = tick.age(now)
        stalled = tick.stalled_for(now)
        stall = f"stalled for {fmt_age(stalled)}" if stalled is not None else ""
        if self.up is False:
            data = (
                "no data yet" if age is None else f"stalled for {fmt_age(age)}, last figures kept"
            )
            text = f"● DOWN {url}: {_short(tick.error)} · {data} · retrying {scope}"
            return True, False, text
        bits = [f"● up {url}"]
        info = tick.info
        if info is not None:
            if info.model:
                bits.append(clean_line(info.model))  # the server's words: untrusted
            if info.version:
                bits.append(f"vLLM {clean_line(info.version)}")
        if tick.reset_at is not None and now - tick.reset_at < 120:
            bits.append(f"⟲ restarted {fmt_age(max(0.0, now - tick.reset_at))} ago")
        if stall:
            # A poll still in flight (a slow or dripping server): the last good figures stay.
            bits.append(stall)
        bits.append(scope)
        return False, bool(stall), " · ".join(bits)


def _short(err: Exception | None) -> str:
    if err is None:
        return "no answer"
    text = clean_line(str(err).split("\n", 1)[0])
    return text if len(text) <= 70 else text[:67] + "…"
