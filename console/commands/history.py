"""``history``, ``replay`` and ``record``: look back at what the servers did.

- ``history [--since 24h] [--server S] [--json] [--events] [--export FILE]``
  summarises the history file per server (tokens served, peak and mean tok/s,
  KV peak, acceptance length and its trend, time up, restarts) or copies a
  span to a standalone file to share.
- ``replay FILE | --since 2h [--server S]`` opens the dashboard on recorded
  samples with a time cursor.
- ``record --url URL | --profile NAME`` watches one server in the background
  (``up --record`` starts it) and writes its samples, log events and alerts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError, UsageError
from console.validate import server_url

if TYPE_CHECKING:
    from console.config import ConsoleConfig
    from console.history.store import HistoryStore


def register(subparsers: argparse._SubParsersAction) -> None:
    h = subparsers.add_parser(
        "history",
        help="what each watched server did: tokens, tok/s, KV peak, acceptance, restarts",
        description=(
            "Summarise the history file (written while the console, `monitor` or "
            "`record` watch a server). Times are relative to now."
        ),
    )
    h.add_argument("--since", default="24h", metavar="SPAN", help="how far back (default 24h)")
    h.add_argument("--server", metavar="S", help="one server (its URL, or part of it)")
    h.add_argument("--json", action="store_true", help="JSON")
    h.add_argument("--events", action="store_true", help="list the events too")
    h.add_argument("--file", metavar="FILE", help="read this history file instead")
    h.add_argument(
        "--export", metavar="FILE", help="copy the span into a new file (share it; replay FILE)"
    )
    h.set_defaults(func=run_history)

    r = subparsers.add_parser(
        "replay",
        help="open the dashboard on recorded samples, with a time cursor",
        description=(
            "Replay a history file (or the last --since span of the console's own) on the "
            "dashboard: space plays/pauses, left/right step, n/p jump to the next/previous "
            "event, home/end go to the ends."
        ),
    )
    r.add_argument("file", metavar="FILE", nargs="?", help="a history file (history --export)")
    r.add_argument("--since", metavar="SPAN", help="replay the last SPAN (e.g. 2h) of the history")
    r.add_argument("--server", metavar="S", help="which server (its URL, or part of it)")
    r.add_argument("--speed", type=float, default=1.0, help="play speed (1 = real time)")
    r.set_defaults(func=run_replay)

    rec = subparsers.add_parser(
        "record",
        help="watch one server in the foreground and write its history (up --record runs it)",
    )
    rec.add_argument(
        "--url", type=server_url, dest="record_url", metavar="URL", help="server base URL"
    )
    rec.add_argument("--profile", dest="record_profile", metavar="NAME", help="a profile's server")
    rec.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds (1)")
    rec.add_argument(
        "--on-alert", metavar="CMD", help="run CMD (argv, no shell) with each alert as JSON"
    )
    rec.add_argument("--quiet", action="store_true", help="print nothing per event")
    rec.add_argument(
        "--print-samples",
        action="store_true",
        help="print 'stored TS' once each sample is durable (for scripts and tests)",
    )
    rec.set_defaults(func=run_record)


# --------------------------------------------------------------------------- shared


def open_store(config: ConsoleConfig, file: str | None = None, *, readonly: bool = False):
    """The history file named by ``file``, else the config's (created when writing)."""
    from console.history.store import HistoryStore

    h = config.history
    if file:
        return HistoryStore(Path(file), readonly=True)
    path = h.db_path()
    if readonly and not path.exists():
        raise ConsoleError(
            f"{path}: no history yet",
            hint="it is written while `vllm-console monitor`, `record` or the TUI watch a server",
        )
    return HistoryStore(
        path, max_age_s=h.max_age, max_bytes=int(h.max_size_mb * 2**20), readonly=readonly
    )


def since_ts(text: str | None, *, flag: str = "--since") -> float | None:
    from console.config import parse_duration

    if text is None:
        return None
    try:
        return time.time() - parse_duration(text, what=flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def pick_server(store: HistoryStore, wanted: str | None, since: float | None) -> str:
    """The one server ``wanted`` names (exactly, or as a unique part), or the only one."""
    names = list(store.iter_servers_in(since, None))
    if wanted is not None:
        if wanted in names:
            return wanted
        hits = [n for n in names if wanted in n]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise UsageError(
                f"--server {wanted}: no such server in {store.path}"
                + (f" (known: {', '.join(names)})" if names else " (it holds no samples)")
            )
        raise UsageError(f"--server {wanted}: matches {', '.join(hits)}; be more specific")
    if not names:
        raise ConsoleError(f"{store.path}: no samples in that span", exit_code=1)
    if len(names) > 1:
        raise UsageError(f"{store.path} holds several servers ({', '.join(names)}); pick --server")
    return names[0]


def server_key(url: str) -> str:
    """History rows are keyed by the server's base URL, whoever watched it."""
    from console import metrics as M

    return M.base_url(url)


def _fmt_when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _n(v: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _span(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def render_history(report: dict[str, Any], events: dict[str, list[Any]] | None = None) -> str:
    from console import sanitize

    lines = [f"history {report['path']} since {_fmt_when(report['since'])}"]
    if not report["servers"]:
        lines.append("  no server was watched in that span")
    for s in report["servers"]:
        head = sanitize.clean(s["server"])
        if s.get("model"):
            head += f"  {sanitize.clean(s['model'])}"
        lines.append(head)
        lines.append(
            f"  watched   {_fmt_when(s['first_ts'])} to {_fmt_when(s['last_ts'])}"
            f"  up {_span(s['up_s'])} of {_span(s['observed_s'])}"
            f"  restarts {s['restarts']}  failed scrapes {s['failed_samples']}"
        )
        lines.append(
            f"  tokens    generated {_n(s['generation_tokens'], '{:,}')}"
            f"  prompt {_n(s['prompt_tokens'], '{:,}')}"
            f"  requests {_n(s['requests_finished'], '{:,}')}"
        )
        lines.append(
            f"  tok/s     generation peak {_n(s['peak_generation_tokens_per_s'])}"
            f" mean {_n(s['mean_generation_tokens_per_s'])}"
            f"  prompt peak {_n(s['peak_prompt_tokens_per_s'])}"
        )
        kv = s["kv_usage_peak"]
        lines.append(
            f"  KV peak   {_n(None if kv is None else kv * 100, '{:.1f} %')}"
            f"  waiting peak {_n(s['waiting_peak'], '{:.0f}')}"
        )
        acc = s["acceptance_length"]
        if acc is None:
            lines.append("  spec dec  off")
        else:
            lines.append(
                f"  accept    mean length {_n(acc['mean'], '{:.2f}')}"
                f"  first half {_n(acc['first_half'], '{:.2f}')}"
                f" -> second half {_n(acc['second_half'], '{:.2f}')}"
            )
        if s["events"]:
            lines.append("  events    " + ", ".join(f"{k} {v}" for k, v in s["events"].items()))
        for ev in (events or {}).get(s["server"], []):
            lines.append(
                f"    {_fmt_when(ev.ts)}  {ev.severity:<8} {ev.kind:<20} "
                f"{sanitize.clean(ev.message)}"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- history


def run_history(args: argparse.Namespace) -> int:
    from console.config import load_config
    from console.history.summary import history_report

    since = since_ts(args.since)
    config = load_config()
    with open_store(config, args.file, readonly=not args.export) as store:
        server = pick_server(store, args.server, since) if args.server else None
        if args.export:
            n = store.export(args.export, server=server, since=since)
            print(f"{n} samples written to {args.export}")
            return 0
        report = history_report(store, since=since, until=None, server=server)
        events = None
        if args.events or args.json:
            events = {
                s["server"]: store.events(s["server"], since=since) for s in report["servers"]
            }
    if args.json:
        if events is not None:
            for s in report["servers"]:
                s["event_list"] = [e.to_dict() for e in events[s["server"]]]
        json.dump(_strict(report), sys.stdout, allow_nan=False, indent=2)
        print()
    else:
        print(render_history(report, events if args.events else None))
    return 0


def _strict(value: Any) -> Any:
    from console.history.store import _strict as strict

    return strict(value)


# --------------------------------------------------------------------------- replay


def run_replay(args: argparse.Namespace) -> int:
    from console.config import load_config

    if args.file and args.since:
        raise UsageError("replay takes FILE or --since, not both")
    if not args.file and not args.since:
        raise UsageError("replay needs a FILE (history --export) or --since SPAN (e.g. 2h)")
    if not args.speed > 0:
        raise UsageError(f"--speed {args.speed}: must be a positive number")
    since = since_ts(args.since)
    store = open_store(load_config(), args.file, readonly=True)
    try:
        server = pick_server(store, args.server, since)
        from console.history.replay import ReplaySource

        source = ReplaySource.load(store, server, since=since)
    finally:
        store.close()
    if not source.frames:
        raise ConsoleError(f"{server}: no samples to replay in that span")
    from console.screens.replay import ReplayApp

    ReplayApp(source, speed=args.speed).run()
    return 0


# --------------------------------------------------------------------------- record


def _follow_logs(profile: Any, recorder: Any, stop: threading.Event) -> None:
    """Feed the profile's server log to the recorder, across restarts (new log files)."""
    from console.runtime import runtime_for

    runtime = runtime_for(profile)
    seen: dict[str, int] = {}
    while not stop.is_set():
        rec = getattr(runtime, "record", None)
        path = None
        try:
            r = rec(profile) if callable(rec) else None
            path = str(getattr(r, "log_path", None) or "")
            skip = seen.get(path, 0)
            for i, line in enumerate(runtime.logs(profile, follow=True)):
                if stop.is_set():
                    return
                if i >= skip:
                    recorder.feed_log_line(line)
                    seen[path] = i + 1
        except ConsoleError:
            pass
        stop.wait(2.0)


class Watch:
    """A recorder with its store and alert hook, as ``monitor`` and ``record`` set it up."""

    def __init__(
        self,
        url: str,
        *,
        history: bool = True,
        on_alert: str | None = None,
        down_after: int | None = None,
        say: Any = None,
    ) -> None:
        from console.config import load_config
        from console.history.alerts import AlertCommand, parse_command
        from console.history.recorder import Recorder

        config = load_config()
        argv = parse_command(on_alert) if on_alert else config.alerts.on_alert
        self.store = open_store(config) if history and config.history.enabled else None
        self.alert = (
            AlertCommand(argv, report=lambda line: print(line, file=sys.stderr)) if argv else None
        )
        hooks: list[Any] = [h for h in (say, self.alert) if h is not None]
        self.recorder = Recorder(
            server_key(url),
            url=url,
            store=self.store,
            settings=config.alerts,
            down_after=down_after,
            on_event=hooks,
        )
        self._warned = False

    def feed(self, sample: Any) -> list[Any]:
        out = self.recorder.feed(sample)
        self._warn()
        return out

    def feed_error(self, message: str) -> list[Any]:
        out = self.recorder.feed_error(message)
        self._warn()
        return out

    def _warn(self) -> None:
        if self.recorder.store_error and not self._warned:
            print(f"warning: {self.recorder.store_error}", file=sys.stderr)
            self._warned = True

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.alert is not None:
            self.alert.wait(10.0)


def run_check(
    url: str,
    *,
    interval: float,
    as_json: bool,
    on_alert: str | None = None,
    history: bool = True,
) -> int:
    """``monitor --check``: two scrapes ``interval`` apart against the alert thresholds.

    Exit 1 when an alert fired (a threshold crossed, the server down), else 0.
    A failed scrape is ``down`` at once (no waiting for ``down_after``).
    """
    import httpx

    from console import metrics as M
    from console.history.events import is_alert

    watch = Watch(url, history=history, on_alert=on_alert, down_after=1)
    try:
        with httpx.Client(timeout=M.DEFAULT_TIMEOUT) as client:
            for i in range(2):
                if i:
                    time.sleep(interval)
                try:
                    watch.feed(M.scrape(url, client=client))
                except M.MetricsError as exc:
                    watch.feed_error(exc.message)
                    break
    finally:
        watch.close()
    alerts = [e for e in watch.recorder.events if is_alert(e)]
    if as_json:
        doc = {"url": url, "ok": not alerts, "alerts": [e.to_dict() for e in alerts]}
        print(json.dumps(_strict(doc), allow_nan=False))
    elif alerts:
        for ev in alerts:
            print(f"ALERT {url} " + event_line(ev))
    else:
        print(f"OK {url}: no alert threshold crossed")
    return 1 if alerts else 0


def fleet_history(*, no_history: bool = False, on_alert: str | None = None) -> Any:
    """A SessionHistory for ``monitor``'s fleet view: each server's polls recorded,
    alerts to ``--on-alert`` (or the config's ``alerts.on_alert``)."""
    from console.config import load_config
    from console.history.alerts import AlertCommand, parse_command
    from console.history.live import SessionHistory

    config = load_config()
    argv = parse_command(on_alert) if on_alert else config.alerts.on_alert
    hook = AlertCommand(argv, report=lambda line: print(line, file=sys.stderr)) if argv else None
    history = SessionHistory.from_config(on_event=hook)
    if no_history and history.store is not None:
        history.store.close()
        history.store = None
    return history


def event_line(ev: Any) -> str:
    from console import sanitize

    return f"{_fmt_when(ev.ts)} {ev.severity} {ev.kind}: {sanitize.clean_line(ev.message)}"


def run_record(args: argparse.Namespace) -> int:
    import httpx

    from console import metrics as M

    if not args.record_url and not args.record_profile:
        raise UsageError("record needs --url URL or --profile NAME")
    if not args.interval > 0:
        raise UsageError(f"--interval {args.interval}: must be a positive number of seconds")
    profile = None
    if args.record_profile:
        from console.session import load_profile_by_name

        profile = load_profile_by_name(args.record_profile)
    url = args.record_url or profile.url
    url = M.base_url(url)
    say = None if args.quiet else (lambda ev: print(event_line(ev), flush=True))
    watch = Watch(url, on_alert=args.on_alert, say=say)
    recorder = watch.recorder
    stop = threading.Event()

    def _term(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    if profile is not None:
        threading.Thread(
            target=_follow_logs, args=(profile, recorder, stop), daemon=True, name="record-logs"
        ).start()
    where = watch.store.path if watch.store else "nowhere (history disabled in the config)"
    if not args.quiet:
        print(f"recording {url} every {args.interval:g} s into {where}", flush=True)
    info_known = False
    next_at = time.monotonic()
    try:
        with httpx.Client(timeout=min(M.DEFAULT_TIMEOUT, max(args.interval, 1.0))) as client:
            while not stop.is_set():
                try:
                    sample = M.scrape(url, client=client)
                    watch.feed(sample)
                    if args.print_samples and watch.store and not watch.recorder.store_error:
                        print(f"stored {sample.timestamp!r}", flush=True)
                except M.MetricsError as exc:
                    watch.feed_error(exc.message)
                    info_known = False
                else:
                    if not info_known:
                        with contextlib.suppress(M.MetricsError):
                            recorder.note_info(M.fetch_server_info(url, client=client))
                            info_known = True
                next_at += args.interval
                delay = next_at - time.monotonic()
                if delay < 0:
                    next_at, delay = time.monotonic(), 0.0
                stop.wait(delay)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        watch.close()
    return 0
