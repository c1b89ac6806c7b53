"""``monitor`` over a fleet: several ``--url``, ``--discover`` or ``--fleet``.

``--once --json`` prints ``{"servers": [...]}``, each element exactly the
single-server report (a server that is down: ``ok: false`` and its error; the
others unaffected); the exit status is 1 when any server is down. The text
view is one table row per server (``console.fleet``). The live view polls
every server on its own sampler thread, so a slow one never holds up the
others' rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import IO, Any

from console.errors import UsageError
from console.fleet import (
    FleetRow,
    FleetSpec,
    Target,
    collect_fleet_once,
    render_table,
    report_from_tick,
    resolve_spec,
    row_from_report,
    start_samplers,
    stop_samplers,
)
from console.server_client import api_key_from_env


def fleet_request(args: argparse.Namespace) -> FleetSpec | None:
    """The fleet ``monitor`` was asked for, or None for today's single server."""
    from console import metrics as M

    urls = [M.base_url(u) for u in (args.monitor_url or [])]
    ranges = list(args.monitor_discover or getattr(args, "discover", None) or [])
    profiles = bool(args.monitor_fleet or getattr(args, "fleet", False))
    if not urls:
        urls = [M.base_url(u) for u in (getattr(args, "urls", None) or [])]
    if len(urls) <= 1 and not ranges and not profiles:
        return None
    if args.check:
        raise UsageError("--check watches one server; drop the other --url/--discover/--fleet")
    return FleetSpec(tuple(urls), tuple(ranges), profiles)


def resolve(spec: FleetSpec) -> list[Target]:
    """Every target: the URLs, then what the probes found, then running profiles."""
    targets, notes = asyncio.run(resolve_spec(spec, api_key=api_key_from_env()))
    for note in notes:
        _say(note)
    return targets


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, allow_nan=False)


def run(args: argparse.Namespace, spec: FleetSpec) -> int:
    from console.monitor_report import collect_once, open_record

    targets = resolve(spec)
    if not targets:
        _say("no servers: nothing answered in the --discover ranges and no profile runs")
        return 1
    record = open_record(args.record)
    out = sys.stdout
    try:
        if args.once:
            result = collect_fleet_once(targets, interval=args.interval, collect=collect_once)
            if record is not None:
                record.write(_dump(result) + "\n")
                record.flush()
            if args.json:
                out.write(_dump(result) + "\n")
            else:
                rows = [
                    row_from_report(t, r) for t, r in zip(targets, result["servers"], strict=True)
                ]
                out.write(render_table(rows) + "\n")
            out.flush()
            return 0 if all(r["ok"] for r in result["servers"]) else 1
        from console.commands.history import fleet_history

        history = fleet_history(no_history=args.no_history, on_alert=args.on_alert)
        return _live(targets, args.interval, args.json, record, out, history)
    finally:
        if record is not None:
            record.close()


def _live(
    targets: list[Target],
    interval: float,
    as_json: bool,
    record: IO[str] | None,
    out: IO[str],
    history: Any = None,
) -> int:
    """Every server on its own sampler; the table (or a JSON line) every ``interval``."""
    rows: dict[str, FleetRow] = {t.url: FleetRow(target=t, state="connecting") for t in targets}
    lock = threading.Lock()

    def on_row(row: FleetRow) -> None:
        with lock:
            rows[row.target.url] = row

    samplers = start_samplers(targets, on_row, api_key=api_key_from_env(), poll_s=interval)
    if history is not None:  # every server's polls to the history file (docs/history.md)
        for sampler in samplers.values():
            history.attach(sampler)
    redraw = out.isatty() and not as_json
    try:
        while True:
            time.sleep(interval)
            if as_json or record is not None:
                # The servers whose first poll has ended, each the single-server report.
                ticks = [(t.url, samplers[t.url].last) for t in targets]
                line = _dump(
                    {"servers": [report_from_tick(u, k) for u, k in ticks if k is not None]}
                )
                if record is not None:
                    record.write(line + "\n")
                    record.flush()
                if as_json:
                    out.write(line + "\n")
            if not as_json:
                if redraw:
                    out.write("\x1b[H\x1b[2J")
                with lock:
                    table = render_table([rows[t.url] for t in targets])
                stamp = time.strftime("%H:%M:%S")
                out.write(f"vllm-console monitor  {len(targets)} servers  {stamp}\n{table}\n")
                if not redraw:
                    out.write("\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_samplers(samplers)
        if history is not None:
            history.close()
