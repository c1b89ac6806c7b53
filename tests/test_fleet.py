"""The fleet: ``monitor`` over several servers, ``--discover``, one poll loop per
server (a deliberately slow real HTTP server stalls only its own row), and the
TUI's fleet view over the two real shared servers and one that is down, with
a drill-down into each."""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from console.app import ConsoleApp
from console.cli import main
from console.fleet import (
    FleetRow,
    FleetSpec,
    PortRange,
    Target,
    discover,
    parse_port_range,
    render_table,
    row_cells,
    row_from_report,
    start_samplers,
    stop_samplers,
    unique,
)
from console.screens.fleet import FleetScreen, FleetServerDashboard
from console.session import Session
from tests.helpers import wait_for
from tests.screen_helpers import DOWN_URL, wait_until

# --------------------------------------------------------------------------- helpers


class _Gate:
    """Holds the slow server's answers until the test lets them go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.answered = 0


@contextmanager
def slow_http_server(*, body: bytes = b"", content_type: str = "text/plain") -> Iterator[tuple]:
    """A real HTTP server on loopback that holds every request until released."""
    gate = _Gate()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gate.arrived.set()
            gate.release.wait(60)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            gate.answered += 1

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gate
    finally:
        gate.release.set()
        server.shutdown()
        server.server_close()


@contextmanager
def plain_http_server() -> Iterator[str]:
    """A real HTTP server that is not vLLM (404 everywhere)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- core


def test_port_range_parsing() -> None:
    assert parse_port_range("127.0.0.1:8000-8010") == PortRange("127.0.0.1", 8000, 8010)
    assert parse_port_range("gpu-box:8000") == PortRange("gpu-box", 8000, 8000)
    assert parse_port_range("[::1]:8000-8001").urls == ["http://[::1]:8000", "http://[::1]:8001"]
    for bad, why in (
        ("8000-8010", "HOST:PORT-PORT"),
        ("box:9000-8000", "ends before"),
        ("box:0-10", "1-65535"),
        ("box:1-60000", "at most 4096"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            parse_port_range(bad)


def test_bad_discover_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["monitor", "--discover", "box:9000-8000", "--once"])
    assert info.value.code == 2
    assert "--discover" in capsys.readouterr().err


def test_check_takes_one_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--url", DOWN_URL, "--url", "http://127.0.0.1:10", "--check"]) == 2
    assert "--check watches one server" in capsys.readouterr().err


def test_unique_keeps_order_and_names() -> None:
    got = unique([Target("http://a:1"), Target("http://b:2"), Target("http://a:1", "prof")])
    assert [(t.url, t.name) for t in got] == [("http://a:1", "prof"), ("http://b:2", None)]


def test_rows_from_reports_and_the_table() -> None:
    up = {
        "url": "http://h:1",
        "ok": True,
        "error": None,
        "window_s": 1.0,
        "timestamp": 0.0,
        "server": {"model": "m\x1b[2Jx", "version": "0.32"},
        "requests": {"running": 2, "waiting": 1},
        "kv_cache": {"usage": 0.125},
        "throughput": {"generation_tokens_per_s": 12.5},
        "spec_decode": {
            "num_speculative_tokens": 4,
            "window": {"drafts": 0, "mean_acceptance_length": None},
            "lifetime": {"drafts": 9, "mean_acceptance_length": 2.5},
        },
    }
    row = row_from_report(Target("http://h:1", "prof"), up)
    cells = row_cells(row)
    assert cells == ("prof", "mx", "up", "12.5", "12.5", "2.50*", "2/1", "0.32")
    assert "\x1b" not in cells[1]  # the model name passed the sanitiser
    down = row_from_report(Target("http://d:2"), {"ok": False, "error": "refused", "server": {}})
    assert row_cells(down)[2] == "DOWN" and row_cells(down)[3] == "–"
    table = render_table([row, down])
    assert "d:2: refused" in table and "acc len" in table


async def test_discover_finds_only_vllm_servers(vllm_server, vllm_ngram_server) -> None:
    """The two real servers answer as vLLM; a plain HTTP server and a closed port don't."""
    with plain_http_server() as plain:
        ports = [_port(vllm_server.url), _port(vllm_ngram_server.url), _port(plain)]
        ranges = [PortRange("127.0.0.1", p, p) for p in ports]
        closed = _closed_port()  # one port: a range between two could hold other servers
        ranges.append(PortRange("127.0.0.1", closed, closed))
        found = await discover(ranges)
    assert [t.url for t in found] == [vllm_server.url, vllm_ngram_server.url]
    assert all(t.source == "discover" for t in found)


async def test_discover_is_bounded_by_its_deadline() -> None:
    """A server that holds the probe does not hold discovery past the deadline."""
    with slow_http_server() as (url, gate):
        found = await discover([PortRange("127.0.0.1", _port(url), _port(url))], timeout=0.5)
        assert gate.arrived.is_set() and found == []


def test_a_slow_server_never_holds_up_the_others(vllm_server) -> None:
    """Polls of different servers are independent: while the slow server holds its
    first poll, the real server's row is updated again and again."""
    rows: dict[str, list[FleetRow]] = {}
    lock = threading.Lock()

    def on_row(row: FleetRow) -> None:
        with lock:
            rows.setdefault(row.target.url, []).append(row)

    with slow_http_server() as (slow, gate):
        # A deadline longer than the test: the slow poll stays out.
        samplers = start_samplers(
            [Target(slow), Target(vllm_server.url)], on_row, poll_s=0.05, timeout_s=60
        )
        try:
            wait_for(lambda: len(rows.get(vllm_server.url, [])) >= 3, 60, "3 polls of the server")
            with lock:
                assert gate.arrived.is_set() and gate.answered == 0
                assert slow not in rows  # its first poll is still out
                assert rows[vllm_server.url][-1].state == "up"
                assert rows[vllm_server.url][-1].model
        finally:
            gate.release.set()
            stop_samplers(samplers)


# --------------------------------------------------------------------------- monitor


def test_monitor_two_urls_once_json(vllm_server, capsys) -> None:
    """Both reported, the dead one ok:false, the live one the single-server object
    with the same figures as a run on its own."""
    live = vllm_server.url
    rc = main(["monitor", "--url", DOWN_URL, "--url", live, "--once", "--json",
               "--interval", "0.5", "--no-history"])  # fmt: skip
    fleet = json.loads(capsys.readouterr().out)
    assert rc == 1  # one is down
    assert [s["url"] for s in fleet["servers"]] == [DOWN_URL, live]
    dead, up = fleet["servers"]
    assert dead["ok"] is False and "cannot reach" in dead["error"] and dead["requests"] is None
    assert up["ok"] is True and up["error"] is None

    assert main(["monitor", "--url", live, "--once", "--json", "--interval", "0.5",
                 "--no-history"]) == 0  # fmt: skip
    single = json.loads(capsys.readouterr().out)
    assert set(single) == set(up)
    for key in ("requests", "kv_cache", "throughput", "prefix_cache", "latency"):
        assert set(up[key]) == set(single[key]), key
    assert up["server"] == single["server"] and up["server"]["model"]
    assert up["kv_cache"]["capacity_tokens"] == single["kv_cache"]["capacity_tokens"]
    assert up["spec_decode"] is None and single["spec_decode"] is None
    # Lifetime counts only grow, and the fleet's run came first.
    assert up["latency"]["e2e_s"]["count"] <= single["latency"]["e2e_s"]["count"]


def test_monitor_fleet_text_table(vllm_server, capsys) -> None:
    rc = main(["monitor", "--url", vllm_server.url, "--url", DOWN_URL, "--once",
               "--interval", "0.2", "--no-history"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["server", "model", "state"]
    host = vllm_server.url.split("://")[1]
    assert any(line.startswith(host) and " up " in line for line in lines)
    assert any(line.startswith("127.0.0.1:9") and "DOWN" in line for line in lines)


def test_monitor_discover_once(vllm_server, vllm_ngram_server, capsys) -> None:
    a, b = sorted([_port(vllm_server.url), _port(vllm_ngram_server.url)])
    rc = main(["monitor", "--discover", f"127.0.0.1:{a}-{a}", "--discover",
               f"127.0.0.1:{b}-{b}", "--once", "--json", "--interval", "0.2",
               "--no-history"])  # fmt: skip
    captured = capsys.readouterr()
    fleet = json.loads(captured.out)
    assert rc == 0
    assert sorted(_port(s["url"]) for s in fleet["servers"]) == [a, b]
    assert all(s["ok"] for s in fleet["servers"])
    assert "2 vLLM server(s)" in captured.err


# --------------------------------------------------------------------------- TUI


def fleet_screen(app: ConsoleApp) -> FleetScreen:
    screen = app.screen
    assert isinstance(screen, FleetScreen), screen
    return screen


@pytest.mark.usefixtures("private_state")
async def test_fleet_view_three_real_servers_and_drill_down(vllm_server, vllm_ngram_server) -> None:
    urls = (vllm_server.url, vllm_ngram_server.url, DOWN_URL)
    session = Session(url=urls[0])
    session.fleet = FleetSpec(urls=urls, profiles=True)
    app = ConsoleApp(session=session)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(
            pilot, lambda: isinstance(app.screen, FleetScreen), timeout=10, what="the fleet view"
        )
        screen = fleet_screen(app)

        def states() -> dict[str, str]:
            return {u: screen.rows[u].state for u in urls if u in screen.rows}

        await wait_until(
            pilot,
            lambda: states() == {urls[0]: "up", urls[1]: "up", urls[2]: "down"},
            timeout=60,
            what="two servers up and one down",
        )
        plain, ngram = screen.rows[urls[0]], screen.rows[urls[1]]
        assert plain.model and plain.model == ngram.model
        assert plain.version and plain.mal_scope is None  # no spec decode: "off"
        assert ngram.spec_k == 4 and ngram.mal_scope in ("window", "lifetime")
        assert row_cells(plain)[5] == "off"
        assert plain.kv_usage is not None and plain.running is not None
        assert "3 servers · 2 up · 1 down" in str(screen.query_one("#fleet-status").render())

        for index, url in enumerate(urls):
            screen.query_one("DataTable").move_cursor(row=index)
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, FleetServerDashboard) and app.screen.polls >= 1,
                timeout=30,
                what=f"the dashboard of {url}",
            )
            dash = app.screen
            # The fleet's own sampler for that server, not the session's.
            assert dash.sampler is screen.samplers[url] and dash.sampler.url == url
            assert dash.up is (url != DOWN_URL)
            status = str(dash.query_one("#dash-status").render())
            assert url in status and ("DOWN" in status) is (url == DOWN_URL)
            await pilot.press("escape")
            await wait_until(
                pilot, lambda: app.screen is screen, timeout=5, what="back to the fleet"
            )
        # The session's own server did not move.
        assert app.session.url == urls[0]


@pytest.mark.usefixtures("private_state")
async def test_fleet_view_slow_server_does_not_stall_the_view(vllm_server) -> None:
    with slow_http_server() as (slow, gate):
        session = Session(url=vllm_server.url)
        session.fleet = FleetSpec(urls=(slow, vllm_server.url), profiles=False)
        app = ConsoleApp(session=session)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(
                pilot, lambda: isinstance(app.screen, FleetScreen), timeout=10, what="fleet view"
            )
            screen = fleet_screen(app)
            screen_polls = lambda: screen.rows[vllm_server.url].polls  # noqa: E731
            await wait_until(
                pilot, lambda: screen_polls() >= 3, timeout=60, what="3 polls of the live server"
            )
            assert gate.arrived.is_set() and gate.answered == 0
            assert screen.rows[vllm_server.url].state == "up"
            # Still waiting, or given up at its own deadline: never holding the others.
            row = screen.rows[slow]
            assert row.state == "connecting" or (
                row.state == "down" and "within the 5 s" in (row.error or "")
            ), row


def test_tui_fleet_arguments() -> None:
    """``--url`` twice, ``--discover`` and ``--fleet`` make a fleet; one ``--url`` does
    not; ``web`` hands every one of them on to the TUI it serves."""
    from console.cli import build_parser
    from console.commands.tui import fleet_spec, web_command

    args = build_parser().parse_args(
        ["--url", "http://a:1", "--url", "b:2", "--discover", "127.0.0.1:8000-8002", "--fleet"]
    )
    assert args.url == "http://a:1"  # commands that attach to one server take the first
    spec = fleet_spec(args)
    assert spec is not None and spec.urls == ("http://a:1", "http://b:2") and spec.profiles
    assert spec.ranges == (PortRange("127.0.0.1", 8000, 8002),)
    assert web_command(args)[3:] == ["--url", "http://a:1", "--url", "http://b:2",
                                     "--discover", "127.0.0.1:8000-8002", "--fleet"]  # fmt: skip
    assert fleet_spec(build_parser().parse_args(["--url", "http://a:1"])) is None
