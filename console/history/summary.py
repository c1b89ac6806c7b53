"""``vllm-console history``: what each server did over a span, from the stored rows.

Totals come from the servers' own counters, never from summing rates: the
span is cut into *segments* at each restart (a counter that went down), each
segment contributes ``last - first``, and a segment that begins with a
restart also counts what the fresh server did before its first sample (its
counters started at zero). The first segment starts at the span's first
sample: what the server did before it is not in the span.

- peak tok/s: the highest per-sample-interval rate (about 1 s at the default
  interval); mean tok/s: generated tokens / time up.
- time up: the sum of intervals between consecutive good samples of one
  segment, gaps longer than ``max_gap_s`` (the watcher was not running) left out.
- acceptance length: ``1 + ΣA/ΣD`` over the span, and the same for its first
  and second half (the trend).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from console.history.store import Event, HistoryStore, SampleRow

DEFAULT_MAX_GAP_S = 15.0
_COUNTERS = ("gen_total", "prompt_total", "requests_total", "drafts_total", "accepted_total")


def _is_reset(row: SampleRow, prev: SampleRow | None) -> bool:
    if row.reset:
        return True
    if prev is None:
        return False
    return any(
        getattr(row, k) is not None
        and getattr(prev, k) is not None
        and getattr(row, k) < getattr(prev, k)
        for k in ("gen_total", "prompt_total")
    )


def segments(rows: Sequence[SampleRow]) -> list[tuple[bool, list[SampleRow]]]:
    """Good rows cut at restarts: (began with a restart, rows)."""
    out: list[tuple[bool, list[SampleRow]]] = []
    prev: SampleRow | None = None
    for row in rows:
        if not row.ok:
            continue
        if prev is None or _is_reset(row, prev):
            out.append((prev is not None, [row]))
        else:
            out[-1][1].append(row)
        prev = row
    return out


def counter_totals(rows: Sequence[SampleRow]) -> tuple[dict[str, float | None], int]:
    """Per counter: what the server counted over the rows; and the number of restarts."""
    segs = segments(rows)
    totals: dict[str, float | None] = {k: None for k in _COUNTERS}
    for began_with_restart, seg in segs:
        first, last = seg[0], seg[-1]
        for k in _COUNTERS:
            a, b = getattr(first, k), getattr(last, k)
            if b is None:
                continue
            part = b - (0.0 if began_with_restart or a is None else a)
            totals[k] = (totals[k] or 0.0) + part
    restarts = sum(1 for began, _ in segs if began)
    return totals, restarts


def up_seconds(rows: Sequence[SampleRow], max_gap_s: float = DEFAULT_MAX_GAP_S) -> float:
    total = 0.0
    for _, seg in segments(rows):
        for a, b in itertools.pairwise(seg):
            gap = b.ts - a.ts
            if 0 < gap <= max_gap_s:
                total += gap
    return total


def _accept_len(rows: Sequence[SampleRow]) -> float | None:
    t, _ = counter_totals(rows)
    d, a = t["drafts_total"], t["accepted_total"]
    if d is None or a is None or d <= 0:
        return None
    return 1.0 + a / d


def _max(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def summarize(
    name: str,
    rows: Sequence[SampleRow],
    events: Sequence[Event] = (),
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> dict[str, Any]:
    """The summary of one server over ``rows`` (time order); every key present, None if unknown."""
    totals, restarts = counter_totals(rows)
    up = up_seconds(rows, max_gap_s)
    good = [r for r in rows if r.ok]
    gen = totals["gen_total"]
    accept: dict[str, Any] | None = None
    if any(r.drafts_total is not None for r in good):
        mid = (good[0].ts + good[-1].ts) / 2 if good else 0.0
        first = _accept_len([r for r in good if r.ts <= mid])
        second = _accept_len([r for r in good if r.ts >= mid])
        accept = {
            "mean": _accept_len(good),
            "first_half": first,
            "second_half": second,
            "change": None if first is None or second is None else second - first,
        }
    kinds = Counter(e.kind for e in events)
    return {
        "server": name,
        "first_ts": rows[0].ts if rows else None,
        "last_ts": rows[-1].ts if rows else None,
        "samples": len(rows),
        "failed_samples": len(rows) - len(good),
        "generation_tokens": None if gen is None else round(gen),
        "prompt_tokens": None if totals["prompt_total"] is None else round(totals["prompt_total"]),
        "requests_finished": (
            None if totals["requests_total"] is None else round(totals["requests_total"])
        ),
        "peak_generation_tokens_per_s": _max([r.gen_tps for r in good]),
        "mean_generation_tokens_per_s": (gen / up) if gen is not None and up > 0 else None,
        "peak_prompt_tokens_per_s": _max([r.prompt_tps for r in good]),
        "kv_usage_peak": _max([r.kv_usage for r in good]),
        "waiting_peak": _max([r.waiting for r in good]),  # type: ignore[list-item]
        "acceptance_length": accept,
        "up_s": up,
        "observed_s": (rows[-1].ts - rows[0].ts) if rows else 0.0,
        "restarts": restarts,
        "events": dict(sorted(kinds.items())),
    }


def history_report(
    store: HistoryStore,
    *,
    since: float | None,
    until: float | None,
    server: str | None = None,
) -> dict[str, Any]:
    """Every server (or one) with samples or events in the span."""
    names = [server] if server else list(store.iter_servers_in(since, until))
    known = {s.name: s for s in store.servers()}
    out = []
    for name in names:
        summary = summarize(
            name,
            store.samples(name, since=since, until=until),
            store.events(name, since=since, until=until),
        )
        rec = known.get(name)
        summary["url"] = rec.url if rec else None
        summary["model"] = rec.model if rec else None
        out.append(summary)
    return {"since": since, "until": until, "path": str(store.path), "servers": out}
