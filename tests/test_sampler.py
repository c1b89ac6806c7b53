"""The background ``/metrics`` sampler: against small real HTTP servers (slow,
restarting, going away) and with recorded samples for gaps and resets."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from console.metrics import parse_metrics
from console.sampler import ChartPoint, MetricsSampler, Tick
from console.widgets.throughput_chart import segments
from tests.helpers import wait_for
from tests.test_metrics import build_page


class _Pages(http.server.BaseHTTPRequestHandler):
    """Serves ``page`` at /metrics after ``delay_s``; counts requests in flight."""

    page = build_page(gen=100).encode()
    delay_s = 0.0
    lock = threading.Lock()
    in_flight = max_in_flight = served = 0

    def do_GET(self) -> None:
        cls = type(self)
        if self.path != "/metrics":
            self.send_error(404)
            return
        with cls.lock:
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        time.sleep(cls.delay_s)  # a slow server, not test synchronisation
        with cls.lock:
            cls.in_flight -= 1
            cls.served += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(cls.page)))
        self.end_headers()
        self.wfile.write(cls.page)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler], port: int = 0):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_polls_never_overlap_on_a_slow_server() -> None:
    """Scrapes slower than the poll interval: the next starts only after the last."""

    class Slow(_Pages):
        delay_s = 0.6
        lock = threading.Lock()
        in_flight = max_in_flight = served = 0

    server = _serve(Slow)
    sampler = MetricsSampler(f"http://127.0.0.1:{server.server_address[1]}", poll_s=0.05)
    try:
        sampler.start()
        wait_for(lambda: Slow.served >= 4, timeout=20, what="four scrapes")
        assert Slow.max_in_flight == 1
        assert sampler.last is not None and sampler.last.ok
    finally:
        sampler.stop()
        server.shutdown()
        server.server_close()
    assert not sampler.running


def test_subscribers_get_every_poll_from_the_background_thread() -> None:
    class Counting(_Pages):
        lock = threading.Lock()
        in_flight = max_in_flight = served = 0

    server = _serve(Counting)
    sampler = MetricsSampler(f"http://127.0.0.1:{server.server_address[1]}", poll_s=0.1)
    got: list[tuple[Tick, str]] = []
    unsubscribe = sampler.subscribe(lambda t: got.append((t, threading.current_thread().name)))
    try:
        sampler.start()
        wait_for(lambda: len(got) >= 3, timeout=20, what="three ticks")
        unsubscribe()
        seen = len(got)
        wait_for(lambda: sampler.polls >= seen + 2, timeout=20, what="two more polls")
        assert len(got) == seen, "an unsubscribed callback is not called again"
    finally:
        sampler.stop()
        server.shutdown()
        server.server_close()
    numbers = [t.number for t, _ in got]
    assert numbers == list(range(1, len(numbers) + 1))
    assert all(name.startswith("metrics-sampler") for _, name in got)
    assert got[0][0].ok and got[0][0].interval is not None and got[0][0].point is None
    assert got[1][0].point is not None and got[1][0].point.generation == 0.0


def test_server_down_is_a_gap_then_back_with_a_stall_time() -> None:
    """A real server that goes away and comes back on the same port."""

    class Up(_Pages):
        lock = threading.Lock()
        in_flight = max_in_flight = served = 0

    server = _serve(Up)
    port = server.server_address[1]
    sampler = MetricsSampler(f"http://127.0.0.1:{port}", poll_s=0.1, timeout_s=2.0)
    try:
        sampler.start()
        wait_for(lambda: sampler.polls >= 3, timeout=20, what="three good polls")
        server.shutdown()
        server.server_close()
        # The first failure may be the pooled connection closing under a poll
        # ("disconnected"); the ones after it find nothing listening.
        wait_for(
            lambda: (
                sampler.last is not None
                and not sampler.last.ok
                and "cannot reach" in str(sampler.last.error)
            ),
            timeout=20,
            what="a poll that cannot reach the server",
        )
        down = sampler.last
        assert down is not None
        assert down.point is not None and down.point.gap
        # Stalled: counted from the last good sample, once over 3 s.
        assert down.down_since is not None and down.latest_at is not None
        assert down.stalled_for(down.latest_at + 1) is None
        assert down.stalled_for(down.latest_at + 5) == pytest.approx(5.0)
        # The last good figures are kept, marked stale.
        assert down.window is not None and down.window.stale
        server = _serve(Up, port)
        wait_for(lambda: sampler.last is not None and sampler.last.ok, timeout=20, what="back")
        assert sampler.last.down_since is None
    finally:
        sampler.stop()
        server.shutdown()
        server.server_close()
    points = sampler.points()
    assert any(p.gap for p in points)
    # The chart draws no line across the failed polls.
    assert len(segments(points, 1, max_step_s=5.0)) >= 2


def _sample(t: float, gen: float):
    return parse_metrics(build_page(gen=gen), timestamp=t)


def test_counter_reset_is_flagged_and_the_windows_restart() -> None:
    clock = [0.0]
    sampler = MetricsSampler("http://127.0.0.1:9", window_s=60.0, clock=lambda: clock[0])

    def feed(t: float, gen: float) -> Tick:
        clock[0] = t
        return sampler.record(_sample(t, gen), None)

    for t, gen in ((1.0, 1000.0), (2.0, 1100.0), (3.0, 1200.0)):
        tick = feed(t, gen)
    assert not tick.counter_reset and tick.window and tick.window.window_s == 2.0
    restarted = feed(4.0, 5.0)
    assert restarted.counter_reset and restarted.reset_at == 4.0
    assert restarted.interval is not None and restarted.interval.counter_reset
    assert restarted.interval.window_s is None  # no rate across a restart
    assert restarted.point == ChartPoint(4.0, None, None, reset=True)
    after = feed(5.0, 25.0)
    assert not after.counter_reset
    assert after.interval is not None and not after.interval.counter_reset
    assert after.interval.throughput.generation_tokens_per_s == 20.0
    # The window restarted at the reset: it covers 1 s, and says it began there.
    assert after.window is not None and after.window.counter_reset
    assert after.window.window_s == 1.0
    assert sum(p.reset for p in sampler.points()) == 1


def test_segments_break_at_gaps_and_long_steps() -> None:
    pts = [
        ChartPoint(0.0, 1.0, 1.0),
        ChartPoint(1.0, 2.0, 1.0),
        ChartPoint(2.0, None, None),  # a failed poll
        ChartPoint(3.0, 3.0, 1.0),
        ChartPoint(4.0, 3.0, 1.0),
        ChartPoint(60.0, 9.0, 1.0),  # nobody sampled for 56 s
    ]
    runs = segments(pts, 1, max_step_s=5.0)
    assert runs == [[(0.0, 1.0), (1.0, 2.0)], [(3.0, 3.0), (4.0, 3.0)], [(60.0, 9.0)]]
