"""The dashboard against real vLLM servers (plain and n-gram spec decode), a
server that goes away and comes back, and replays of recorded /metrics pages."""

from __future__ import annotations

import http.server
import itertools
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from console import metrics as M
from console.app import ConsoleApp
from console.screens.dashboard import (
    IDLE_NOTE,
    DashboardScreen,
    MetricsPolled,
    gpu_view_from,
    pick,
)
from console.session import Session
from console.spec_advisor import advise
from console.widgets.acceptance_bars import AcceptanceBars
from console.widgets.k_advisor import KAdvisor
from console.widgets.stat_tile import StatTile
from tests.screen_helpers import DATA, wait_until

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog while the patient farmer counts "
    "his sheep in the green valley below the old stone bridge near the river."
)


def dashboard(app: ConsoleApp) -> DashboardScreen:
    screen = app.screen
    assert isinstance(screen, DashboardScreen), screen
    return screen


def tile(screen: DashboardScreen, wid: str) -> StatTile:
    return screen.query_one(wid, StatTile)


async def repeat_paragraph(url: str, model: str, n: int) -> None:
    """Prompts whose answer repeats the prompt: n-gram drafts get accepted."""
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(n):
            r = await client.post(
                f"{url}/v1/completions",
                json={
                    "model": model,
                    "prompt": f"Repeat this paragraph exactly.\n{PARAGRAPH}\n{PARAGRAPH}\n",
                    "max_tokens": 48,
                    "temperature": 0,
                },
            )
            r.raise_for_status()


@pytest.mark.usefixtures("private_state")
async def test_dashboard_fills_with_real_numbers(vllm_server) -> None:
    app = ConsoleApp(Session(url=vllm_server.url), start_mode="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = dashboard(app)
        await wait_until(pilot, lambda: screen.polls >= 2, timeout=30, what="two scrapes")
        assert screen.up is True, screen.tick.error
        # KV capacity comes from the server's cache_config_info: a real token count.
        capacity = tile(screen, "#kv-capacity").value
        assert capacity.replace(",", "").isdigit() and int(capacity.replace(",", "")) > 0
        assert "running" in tile(screen, "#requests").value
        status = str(screen.query_one("#dash-status").render())
        assert "up" in status and vllm_server.url in status
        # A request shows up in the generation throughput of the window.
        await repeat_paragraph(vllm_server.url, vllm_server.model, 1)
        await wait_until(
            pilot,
            lambda: screen.tick.window and screen.tick.window.throughput.generation_tokens_per_s,
            timeout=30,
            what="generation tokens/s in the window",
        )
        assert tile(screen, "#gen-tps").value not in ("–", "0.0")
        assert tile(screen, "#ttft").value.startswith("p50 ")
        # No spec decode on the plain server: said so, not shown as zeros.
        assert screen.query_one("#spec-absent").display is True


@pytest.mark.usefixtures("private_state")
async def test_acceptance_bars_move_under_ngram(vllm_ngram_server) -> None:
    app = ConsoleApp(Session(url=vllm_ngram_server.url), start_mode="dashboard")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = dashboard(app)
        await wait_until(
            pilot, lambda: screen.polls >= 1 and screen.up, timeout=30, what="first scrape"
        )
        bars = screen.query_one(AcceptanceBars)
        before = screen.tick.lifetime
        assert before is not None
        drafts_before = before.spec_decode.lifetime.drafts

        await repeat_paragraph(vllm_ngram_server.url, vllm_ngram_server.model, 3)

        def window_has_drafts() -> bool:
            w = screen.tick.window
            return bool(
                w and w.spec_decode and w.spec_decode.window and w.spec_decode.window.drafts
            )

        await wait_until(pilot, window_has_drafts, timeout=30, what="drafts in the last 60 s")
        await pilot.pause()
        window = screen.tick.window
        spec = window.spec_decode
        k = spec.num_speculative_tokens
        assert k == 4
        assert spec.lifetime.drafts > drafts_before
        # One bar per position, real rates, scoped to the window and labelled so.
        assert len(bars.rates) == k
        assert all(r is not None and 0.0 <= r <= 1.0 for r in bars.rates)
        assert bars.rates[0] > 0, "a repeated paragraph must get first drafts accepted"
        assert bars.rates == tuple(spec.window.per_position)
        subtitle = str(screen.query_one("#panel-spec").border_subtitle)
        assert subtitle.startswith(f"last {window.window_s:.0f} s") and window.window_s <= 60.5
        mal = tile(screen, "#spec-mal").value
        assert mal.endswith(f"/ {k + 1}") and 1.0 <= float(mal.split()[0]) <= k + 1
        assert tile(screen, "#spec-dar").value.endswith("%")
        assert "tok/s" in tile(screen, "#spec-tps").value
        # Which k: the advisor's view of the same window, labelled an estimate.
        advisor = screen.query_one(KAdvisor)
        assert advisor.display and advisor.advice is not None
        assert advisor.advice == advise(spec.window.per_position, spec.window.drafts)
        text = advisor.render().plain
        if advisor.advice.enough:
            assert len(advisor.advice.curve) == k and "which k (estimate)" in text
            assert f"favours k'={advisor.advice.best_k}" in text and ">4 not measured" in text
        else:
            assert "too few drafts to judge" in text

        # "w": since start: the lifetime counters, marked as such.
        await pilot.press("w")
        await pilot.pause()
        assert "since start" in str(screen.query_one("#panel-spec").border_subtitle)
        assert (
            tile(screen, "#spec-drafts").value == f"{spec.lifetime.drafts:,}"
            or int(tile(screen, "#spec-drafts").value.replace(",", "")) >= spec.lifetime.drafts
        )
        assert "FORMULA" not in bars.tooltip and "A_i / D" in str(bars.tooltip)


@pytest.mark.usefixtures("private_state")
async def test_hidden_dashboard_keeps_real_samples_no_ramp(vllm_server) -> None:
    """Hidden for 90 s (another screen shows) while the server works: sampling
    goes on in the session, so shown again the chart has a real sample about
    every second of the hidden span, and the burst is a burst, not a ramp."""
    from console.widgets.throughput_chart import ThroughputChart

    app = ConsoleApp(Session(url=vllm_server.url), start_mode="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = dashboard(app)
        await wait_until(pilot, lambda: screen.up is True, timeout=30, what="first scrape")
        await app.switch_mode("chat")
        hidden_at = time.time()
        shown_polls = screen.polls
        await repeat_paragraph(vllm_server.url, vllm_server.model, 1)  # work while hidden
        await wait_until(
            pilot, lambda: time.time() - hidden_at >= 90, timeout=150, what="90 s hidden"
        )
        assert screen.polls == shown_polls, "a hidden dashboard renders nothing"
        await app.switch_mode("dashboard")
        shown_at = time.time()
        await pilot.pause()
        chart = screen.query_one(ThroughputChart)
        hidden = [p for p in chart.points if hidden_at <= p.t <= shown_at]
        stamps = [p.t for p in hidden]
        steps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(hidden) >= 60, f"{len(hidden)} samples in 90 s hidden"
        # A slow poll on a loaded box may take a few seconds; a ramp would be one 90 s step.
        assert max(steps) <= 10.0, f"a {max(steps):.1f} s hole in the samples"
        assert sorted(steps)[len(steps) // 2] == pytest.approx(1.0, abs=0.25)
        assert not any(p.gap for p in hidden)
        gens = [p.generation or 0.0 for p in hidden]
        assert max(gens) > 0, "the request made while hidden shows"
        assert gens.count(0.0) >= len(gens) // 3, "idle seconds stay at zero: no ramp"
        # The window's label is the span it covers.
        subtitle = str(screen.query_one("#panel-throughput").border_subtitle)
        span = screen.tick.window.window_s
        assert subtitle.startswith(f"last {span:.0f} s") and 55 <= span <= 60.5


class _RecordedMetrics(http.server.BaseHTTPRequestHandler):
    """Serves a recorded /metrics page of a real vLLM server."""

    page = (DATA / "metrics" / "metrics_ngram.prom").read_bytes()

    delay_s = 0.0
    lock = threading.Lock()
    in_flight = 0
    max_in_flight = 0
    served = 0

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        time.sleep(cls.delay_s)  # a slow server, not test synchronisation
        with cls.lock:
            cls.in_flight -= 1
            cls.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("private_state")
async def test_server_down_then_back_by_itself() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = ConsoleApp(Session(url=url), start_mode="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = dashboard(app)
        await wait_until(pilot, lambda: screen.up is False, timeout=15, what="the DOWN state")
        status = screen.query_one("#dash-status")
        assert "DOWN" in str(status.render()) and status.has_class("-down")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _RecordedMetrics)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            await wait_until(pilot, lambda: screen.up is True, timeout=15, what="the server back")
            await pilot.pause()
            assert "up" in str(status.render()) and not status.has_class("-down")
            assert tile(screen, "#kv-capacity").value == "110,733"
        finally:
            server.shutdown()
            server.server_close()
        await wait_until(pilot, lambda: screen.up is False, timeout=15, what="down again")
        # The last figures stay, marked stale, rather than vanishing.
        assert tile(screen, "#kv-capacity").value == "110,733"
        assert "stale" in tile(screen, "#requests").note


def test_idle_window_falls_back_to_since_start() -> None:
    idle = pick("window", lambda: None, lambda: 0.5)
    assert (idle.value, idle.note) == (0.5, IDLE_NOTE)
    busy = pick("window", lambda: 0.7, lambda: 0.5)
    assert (busy.value, busy.note) == (0.7, "last 60 s")
    assert pick("lifetime", lambda: 0.7, lambda: 0.5).note == "since start"


def _samples(now: float) -> list[M.MetricsSample]:
    pages = ("metrics_idle.prom", "metrics_after_requests.prom")
    return [
        M.parse_metrics((DATA / "metrics" / p).read_text(), timestamp=now - 20 + 10 * i)
        for i, p in enumerate(pages)
    ]


@pytest.mark.usefixtures("private_state")
async def test_idle_server_shows_since_start_marked(tmp_path: Path) -> None:
    """Two identical pages (nothing happened): ratios come from since start, marked."""
    app = ConsoleApp(Session(url="http://127.0.0.1:9"), start_mode="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = DashboardScreen(live=False)
        await app.push_screen(screen)
        page = (DATA / "metrics" / "metrics_after_requests.prom").read_text()
        now = time.time()
        for t in (now - 10, now - 1):
            screen.post_message(MetricsPolled(M.parse_metrics(page, timestamp=t), None))
        await wait_until(pilot, lambda: screen.polls == 2, timeout=5, what="two replayed pages")
        await pilot.pause()
        hit = tile(screen, "#prefix-hit")
        assert hit.value.endswith("%") and hit.note == IDLE_NOTE
        assert tile(screen, "#ttft").value.startswith("p50 ")
        assert screen.query_one("#panel-latency").border_subtitle == IDLE_NOTE
        assert tile(screen, "#gen-tps").value == "0.0"


def test_gpu_view_dedicated_and_unified() -> None:
    from console.gpu import GpuSampler
    from console.gpu_recorded import RecordedNvml

    for name, unified in (
        ("nvml-h200/nvml_busy.json", False),
        ("nvml-gb10/nvml_gb10_handmade.json", True),
    ):
        rec = RecordedNvml.load(DATA / name)
        sample = GpuSampler(
            rec, host_memory=rec.host_memory, process_name=lambda pid: "python"
        ).sample()
        view = gpu_view_from(sample, sample.timestamp)
        assert view.available and view.unified is unified
        if unified:
            assert view.host_total and view.mem_total is None
        else:
            assert view.mem_total and view.mem_used is not None


async def test_chart_redraws_for_new_values_and_settles_for_repeats() -> None:
    """An idle server repeats its sample every poll: the chart does not redraw
    for each repeat (only the time axis would move) but catches up every
    ``settle_s``; a new value redraws once it is a braille dot of the x axis
    past the last drawing (300 s over 80 columns: 1.875 s)."""
    from textual.app import App, ComposeResult

    from console.widgets.throughput_chart import ThroughputChart

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ThroughputChart(settle_s=5.0, id="chart")

    app = One()
    async with app.run_test(size=(80, 24)):
        chart = app.query_one(ThroughputChart)
        assert chart.dot_s() == 300 / 160
        chart.add(100.0, 12.0, 3.0)
        assert chart._drawn_at == 100.0
        chart.add(101.0, 0.0, 0.0)  # new values, less than a dot later: held
        assert chart._drawn_at == 100.0
        chart.add(102.0, 0.0, 0.0)  # a dot since the last drawing
        assert chart._drawn_at == 102.0
        for t in (103.0, 104.0, 105.0, 106.0):  # repeats within settle_s
            chart.add(t, 0.0, 0.0)
        assert chart._drawn_at == 102.0
        chart.add(107.0, 0.0, 0.0)  # settle_s since the last drawing
        assert chart._drawn_at == 107.0
        chart.add(109.0, 5.0, 0.0)
        assert chart._drawn_at == 109.0
        assert len(chart.points) == 9


@pytest.mark.usefixtures("private_state")
async def test_without_a_gpu_the_panel_shows_host_memory_and_server_rss() -> None:
    import psutil

    from console.gpu import GpuSample, HostMemory
    from console.procmem import ServerMemory
    from console.screens.dashboard import GpuSampled
    from console.widgets.gauge import Gauge

    host = HostMemory.from_psutil(psutil.virtual_memory())
    sample = GpuSample(time.time(), available=False, reason="no NVIDIA GPU", host=host)
    server = ServerMemory(pid=4242, processes=3, rss=3 * 2**30)
    app = ConsoleApp(Session(url="http://127.0.0.1:9"), start_mode="build")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = DashboardScreen(live=False)
        await app.push_screen(screen)
        screen.post_message(GpuSampled(gpu_view_from(sample, sample.timestamp, server)))
        await wait_until(
            pilot,
            lambda: screen.query_one("#panel-gpu").border_title == "Memory (host)",
            timeout=10,
            what="the host-memory panel",
        )
        gauge = screen.query_one("#mem-gauge", Gauge)
        assert gauge.label == "host mem" and f"{host.total / 2**30:.1f} GiB" in gauge.detail
        rss = tile(screen, "#mem-alloc")
        assert rss.label == "server RSS" and rss.value == "3.0 GiB" and rss.note == "3 processes"
        assert "host memory" in str(screen.query_one("#mem-note").render())
