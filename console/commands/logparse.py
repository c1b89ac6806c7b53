"""``vllm-console logs --parse FILE [--json]``: read a saved vLLM server log.

A colleague's failed start, say: print its events (one JSON object per line
with ``--json``) or a short human summary: startup phases with durations, KV
capacity, and readiness or the failure cause. The ``logs`` subcommand itself
is registered by the runtime area, which calls ``run_parse``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from console.errors import ConsoleError
from console.logs import LogEvent, StartupSummary, parse_lines, summarize


def _read_events(path: str) -> list[LogEvent]:
    p = Path(path)
    try:
        with p.open(encoding="utf-8", errors="replace") as fh:
            return list(parse_lines(fh))
    except FileNotFoundError:
        raise ConsoleError(
            f"{path}: no such file", hint="give the path of a saved server log"
        ) from None
    except IsADirectoryError:
        raise ConsoleError(f"{path}: is a folder, not a log file") from None
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot read ({exc.strerror})") from None


def _fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def render_summary(path: str, s: StartupSummary, n_events: int, out: TextIO) -> None:
    """The human view: one line per phase, then the outcome."""
    w = out.write
    w(f"{path}: {n_events} events\n")
    if s.version or s.model:
        w(f"  server      vLLM {s.version or '?'}, model {s.model or '?'}\n")
    if s.max_model_len:
        w(f"  max len     {s.max_model_len:,} tokens\n")
    phases = [
        ("weights", s.weights_seconds, None),
        ("model load", s.model_load_seconds, s.model_memory_gib),
        ("graphs", s.graph_capture_seconds, None),
        ("engine init", s.engine_init_seconds, None),
    ]
    for name, secs, gib in phases:
        if secs is not None:
            extra = f", {gib:.2f} GiB" if gib is not None else ""
            w(f"  {name:<11} {_fmt_s(secs)}{extra}\n")
    if s.kv_cache_memory_gib is not None:
        w(f"  KV memory   {s.kv_cache_memory_gib:.2f} GiB\n")
    if s.kv_cache_tokens is not None:
        conc = f" (max concurrency {s.max_concurrency:.2f}x)" if s.max_concurrency else ""
        w(f"  KV cache    {s.kv_cache_tokens:,} tokens{conc}\n")
    if s.failure is not None:
        f = s.failure
        where = f" [{f.process}{' ' + f.location if f.location else ''}]" if f.process else ""
        w(f"  FAILED      {f.message}{where}\n")
        if f.cause == "free_memory":
            w(
                "  hint        another process holds GPU memory, or --gpu-memory-utilization "
                "is too high for what is free\n"
            )
        elif f.cause == "engine_init" and len(s.failures) == 1:
            w("  hint        the root cause is earlier in the full log (not captured here)\n")
    elif s.ready:
        took = f" after {_fmt_s(s.startup_seconds)}" if s.startup_seconds is not None else ""
        w(f"  ready       listening on {s.listening or '?'}{took}\n")
    else:
        w("  not ready   the log ends before the server was ready\n")
    if s.last_engine_stats is not None:
        e = s.last_engine_stats
        w(
            f"  last stats  {e.generation_tokens_per_s:.1f} gen tok/s, "
            f"{e.prompt_tokens_per_s:.1f} prompt tok/s, running {e.running}, "
            f"waiting {e.waiting}, KV {e.kv_usage:.1%}\n"
        )
    if s.last_spec_decode is not None:
        d = s.last_spec_decode
        mal = "-" if d.mean_acceptance_length is None else f"{d.mean_acceptance_length:.2f}"
        rate = "-" if d.acceptance_rate is None else f"{d.acceptance_rate:.1%}"
        w(f"  spec decode mean acceptance length {mal}, draft acceptance {rate}\n")


def run_parse(path: str, as_json: bool) -> int:
    """Print the log's events; exit 1 when it shows a failed start."""
    events = _read_events(path)
    summary = summarize(events)
    out = sys.stdout
    if as_json:
        for e in events:
            out.write(json.dumps(e.to_dict()) + "\n")
    else:
        render_summary(path, summary, len(events), out)
    out.flush()
    return 1 if summary.failure is not None else 0
