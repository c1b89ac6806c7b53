"""``vllm-console monitor``: the dashboard's numbers without the TUI.

``--once`` takes two scrapes ``--interval`` apart (rates and acceptance need a
window) and prints one report, as JSON with ``--json``. Without ``--once`` it
keeps a live plain-text view (redrawn in place on a terminal, appended
otherwise). ``--record FILE`` appends one JSON line per sample, flushed as
written. A server that is down gives ``ok: false`` and the error (exit 1 with
``--once``); the live view keeps trying and shows the last good figures as stale.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any

from console.errors import UsageError
from console.fleet import parse_port_range
from console.monitor_report import (
    build_report,
    collect_once,
    open_record,
    render_text,
    strict_json,
    write_record,
)
from console.server_client import DEFAULT_URL
from console.validate import server_url

# httpx, prometheus_client (console.metrics) and psutil (console.gpu) are imported
# inside the functions: every CLI start builds this parser, few runs monitor. The
# report itself lives in console.monitor_report (core), shared with the fleet.


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "monitor",
        help="watch a running vLLM server's numbers (plain text or JSON)",
        description=(
            "Scrape /metrics (plus /version, /v1/models and the local GPUs) and show "
            "requests, KV cache, throughput, prefix cache, latency and speculative "
            "decoding. API key: VLLM_API_KEY or OPENAI_API_KEY."
        ),
    )
    p.add_argument(
        "--url",
        type=server_url,
        dest="monitor_url",
        action="append",
        metavar="URL",
        help=f"server base URL (default {DEFAULT_URL}); more than once: a fleet "
        '(--json prints {"servers": [...]})',
    )
    p.add_argument(
        "--discover",
        type=parse_port_range,
        action="append",
        dest="monitor_discover",
        metavar="HOST:PORT-PORT",
        help="probe a port range for vLLM servers and watch them all (repeatable)",
    )
    p.add_argument(
        "--fleet",
        action="store_true",
        dest="monitor_fleet",
        help="watch every --url, every --discover find and every running profile's server",
    )
    p.add_argument("--once", action="store_true", help="two scrapes --interval apart, one report")
    p.add_argument("--json", action="store_true", help="JSON (one object per sample)")
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between scrapes (1)"
    )
    p.add_argument("--record", metavar="FILE", help="append one JSON line per sample to FILE")
    p.add_argument(
        "--check",
        action="store_true",
        help="one check (two scrapes --interval apart) against the config's alert "
        "thresholds: exit 1 if one is crossed or the server is down, 0 otherwise",
    )
    p.add_argument(
        "--on-alert",
        metavar="CMD",
        help="run CMD for each alert, the event as JSON on stdin (argv, no shell)",
    )
    p.add_argument(
        "--no-history", action="store_true", help="do not write the history file (docs/history.md)"
    )
    p.set_defaults(func=run_monitor)


# --------------------------------------------------------------------------- run


def _emit(report: dict[str, Any], as_json: bool, out: IO[str], redraw: bool) -> None:
    if as_json:
        out.write(strict_json(report) + "\n")
    else:
        if redraw:
            out.write("\x1b[H\x1b[2J")  # home + clear: redraw in place
        out.write(render_text(report) + "\n" + ("" if redraw else "\n"))
    out.flush()


def run_monitor(args: argparse.Namespace) -> int:
    from console import metrics as M

    if not args.interval > 0:
        raise UsageError(f"--interval {args.interval}: must be a positive number of seconds")
    from console.commands import monitor_fleet

    fleet = monitor_fleet.fleet_request(args)
    if fleet is not None:
        return monitor_fleet.run(args, fleet)
    url = M.base_url((args.monitor_url or [None])[0] or getattr(args, "url", None) or DEFAULT_URL)
    if args.check:
        from console.commands.history import run_check

        return run_check(
            url,
            interval=args.interval,
            as_json=args.json,
            on_alert=args.on_alert,
            history=not args.no_history,
        )
    from console.commands.history import Watch

    record = open_record(args.record)
    out = sys.stdout
    watch = None if args.once else Watch(url, history=not args.no_history, on_alert=args.on_alert)
    try:
        if args.once:
            report = collect_once(url, interval=args.interval)
            write_record(record, report)
            _emit(report, args.json, out, redraw=False)
            return 0 if report["ok"] else 1
        return _live(url, args.interval, args.json, record, out, watch)
    finally:
        if watch is not None:
            watch.close()
        if record is not None:
            record.close()


def _live(
    url: str,
    interval: float,
    as_json: bool,
    record: IO[str] | None,
    out: IO[str],
    watch: Any = None,
) -> int:
    """Scrape every ``interval`` s (never overlapping) until interrupted."""
    from console import metrics as M
    from console.gpu import GpuSampler
    from console.server_client import SyncServerClient

    tracker = M.MetricsTracker(window_s=60.0, stale_after_s=max(3 * interval, 5.0))
    parser = M.PageParser()  # label sets parsed once; an unchanged page not at all
    sampler = GpuSampler()
    redraw = out.isatty() and not as_json
    # The per-interval figures go to --json and --record only: the text view
    # shows the window, so without them they are not derived at all.
    per_interval_wanted = as_json or record is not None
    server: M.ServerInfo | None = None
    next_at = time.monotonic()
    # A live view should say "down" soon: the deadline is a few intervals, not 10 s.
    deadline = min(M.DEFAULT_TIMEOUT, max(3 * interval, 5.0))
    with SyncServerClient(url) as client:
        try:
            while True:
                error: M.MetricsError | None = None
                try:
                    sample = M.scrape(url, client=client, timeout=deadline, parser=parser)
                    tracker.add(sample)
                    if watch is not None:
                        watch.feed(sample)
                    if server is None:
                        server = M.fetch_server_info(url, client=client)
                except M.MetricsError as exc:
                    tracker.feed_error(exc)
                    if watch is not None:
                        watch.feed_error(exc.message)
                    error = exc
                    server = None
                gpu = sampler.sample()
                # --json and the record get the per-interval figures (sums of
                # intervals rebuild any window); the text view the smoother window
                # over up to 60 s.
                if per_interval_wanted:
                    per_interval = build_report(
                        url, figures=tracker.last_interval(), server=server, gpu=gpu, error=error
                    )
                    write_record(record, per_interval)
                if as_json:
                    _emit(per_interval, True, out, redraw=False)
                else:
                    windowed = build_report(
                        url, figures=tracker.window(), server=server, gpu=gpu, error=error
                    )
                    if watch is not None:
                        windowed["events"] = [e.to_dict() for e in watch.recorder.events[-3:]]
                    _emit(windowed, False, out, redraw)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < 0:  # a slow scrape: skip missed ticks, never overlap
                    next_at = time.monotonic()
                    delay = 0.0
                time.sleep(delay)
        except KeyboardInterrupt:
            return 0
