"""Summaries of a bench: per-arm figures, speedups, the lossless check, the table.

Kept apart from the runner so the CLI, the Bench screen and the JSON all
read the same numbers. Conventions:

- wall time and output tok/s are the median over repeats, with min/max;
- TTFT/TPOT percentiles pool every request of every repeat;
- spec-decode figures sum the counter differences of all repeats before
  deriving (console.metrics formulas), so small runs still add up exactly;
- speedup of a scenario = median wall of A / median wall of B (> 1: B faster).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from console import metrics
from console.bench.model import SCHEMA, ArmInfo, BenchResult, RunRecord
from console.bench.stats import percentile, ratio, spread


def _spec_total(runs: list[RunRecord]) -> metrics.SpecDecodeStats | None:
    specs = [r.spec for r in runs if r.spec is not None]
    if not specs:
        return None
    k = max(len(s.accepted_per_position) for s in specs)
    pos = [0.0] * k
    for s in specs:
        for i, v in enumerate(s.accepted_per_position):
            pos[i] += v
    return metrics.SpecDecodeStats.from_counts(
        sum(s.drafts for s in specs),
        sum(s.draft_tokens for s in specs),
        sum(s.accepted_tokens for s in specs),
        tuple(pos),
        sum(r.wall for r in runs if r.spec is not None),
    )


def summarize_runs(runs: list[RunRecord]) -> dict[str, Any] | None:
    """Figures of one arm in one scenario over its repeats; None without runs."""
    if not runs:
        return None
    reqs = [q for r in runs for q in r.requests]
    ok = [q for q in reqs if q.ok]
    walls = spread([r.wall for r in runs])
    tok_s = spread([r.output_tok_s for r in runs if r.output_tok_s is not None])
    ttfts = [q.ttft for q in ok if q.ttft is not None]
    tpots = [q.tpot for q in ok if q.tpot is not None]
    streams = [q.stream_tok_s for q in ok if q.stream_tok_s is not None]
    spec = _spec_total(runs)
    return {
        "runs": len(runs),
        "requests": len(reqs),
        "failed": len(reqs) - len(ok),
        "output_tokens": [r.output_tokens for r in runs],
        "wall_s": walls.to_dict() if walls else None,
        "output_tok_s": tok_s.to_dict() if tok_s else None,
        "ttft_s": {"p50": percentile(ttfts, 50), "p99": percentile(ttfts, 99)},
        "tpot_s": {"p50": percentile(tpots, 50), "p99": percentile(tpots, 99)},
        "stream_tok_s_mean": sum(streams) / len(streams) if streams else None,
        "spec_decode": spec.to_dict() if spec else None,
    }


def summarize(result: BenchResult) -> dict[str, Any]:
    """``{"arms": {label: {scenario: figures}}, "speedup": {scenario: ratios}}``."""
    arms: dict[str, dict[str, Any]] = {}
    speedup: dict[str, Any] = {}
    for arm in result.arms:
        arms[arm.label] = {}
        for sc in result.config.scenarios():
            figs = summarize_runs(result.runs_of(arm.label, sc.name))
            if figs is not None:
                arms[arm.label][sc.name] = figs
    if "A" in arms and "B" in arms:
        for sc in result.config.scenarios():
            a, b = arms["A"].get(sc.name), arms["B"].get(sc.name)
            if not a or not b:
                continue
            pairs = [
                ratio(ra.wall, rb.wall)
                for ra in result.runs_of("A", sc.name)
                for rb in result.runs_of("B", sc.name)
                if ra.repeat == rb.repeat
            ]
            paired = spread([p for p in pairs if p is not None])
            speedup[sc.name] = {
                "wall": ratio(_med(a, "wall_s"), _med(b, "wall_s")),
                # A and B of the same repeat ran back to back (URL arms interleave),
                # so their ratio is less exposed to drift in other load on the box.
                "wall_paired": paired.to_dict() if paired else None,
                "output_tok_s": ratio(_med(b, "output_tok_s"), _med(a, "output_tok_s")),
                "tpot_p50": ratio(a["tpot_s"]["p50"], b["tpot_s"]["p50"]),
                "ttft_p50": ratio(a["ttft_s"]["p50"], b["ttft_s"]["p50"]),
            }
    return {"arms": arms, "speedup": speedup}


def _med(figs: dict[str, Any], key: str) -> float | None:
    value = figs.get(key)
    return value["median"] if value else None


# --------------------------------------------------------------------------- lossless check


def first_difference(a: list[Any] | str, b: list[Any] | str) -> int | None:
    """Index of the first differing element (or the shorter length); None if equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    if len(a) != len(b):
        return min(len(a), len(b))
    return None


def equality(result: BenchResult) -> dict[str, Any] | None:
    """Compare A's and B's answers to the same prompts, request by request.

    Greedy speculative decoding must reproduce the baseline exactly. On CPU
    with bf16, batch composition can change rounding and legitimately flip a
    near-tie, so mismatches are reported (with where they start), not fatal.
    """
    if result.arm("A") is None or result.arm("B") is None:
        return None
    checked = 0
    mismatches: list[dict[str, Any]] = []
    by_scenario: dict[str, dict[str, int]] = {}
    for ra in result.runs:
        if ra.arm != "A":
            continue
        rb = next(
            (
                r
                for r in result.runs
                if r.arm == "B" and r.scenario == ra.scenario and r.repeat == ra.repeat
            ),
            None,
        )
        if rb is None:
            continue
        stats = by_scenario.setdefault(ra.scenario, {"checked": 0, "mismatched": 0})
        for i, (qa, qb) in enumerate(zip(ra.requests, rb.requests, strict=False)):
            if not (qa.ok and qb.ok):
                continue
            checked += 1
            stats["checked"] += 1
            if qa.token_ids is not None and qb.token_ids is not None:
                pos, unit = first_difference(qa.token_ids, qb.token_ids), "token"
            else:
                pos, unit = first_difference(qa.text, qb.text), "char"
            if pos is None:
                continue
            stats["mismatched"] += 1
            cpos = first_difference(qa.text, qb.text)
            at = cpos if cpos is not None else 0
            mismatches.append(
                {
                    "scenario": ra.scenario,
                    "repeat": ra.repeat,
                    "index": i,
                    "prompt_id": qa.prompt_id,
                    "first_difference": pos,
                    "unit": unit,
                    "a": qa.text[max(0, at - 20) : at + 40],
                    "b": qb.text[max(0, at - 20) : at + 40],
                }
            )
    return {
        "greedy": result.config.temperature == 0,
        "checked": checked,
        "identical": checked - len(mismatches),
        "by_scenario": by_scenario,
        "mismatches": mismatches,
    }


# --------------------------------------------------------------------------- table


def _s(x: float | None, unit: str = " s", digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}{unit}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x * 1000:.0f}"


def _x(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}x"


def _range(fig: dict[str, Any] | None, unit: str) -> str:
    if not fig:
        return "–"
    if fig["n"] < 2:
        return f"{fig['median']:.1f}{unit}"
    return f"{fig['median']:.1f}{unit} [{fig['min']:.1f}–{fig['max']:.1f}]"


def headline(result: BenchResult) -> list[str]:
    """The seed's lines: ``Sequential ×3 wall: 23.2 s → 9.9 s (2.34x)``."""
    summary = summarize(result)
    arms = summary["arms"]
    lines = []
    for sc in result.config.scenarios():
        a = arms.get("A", {}).get(sc.name)
        b = arms.get("B", {}).get(sc.name)
        if a and b:
            sp = summary["speedup"].get(sc.name, {})
            lines.append(
                f"{sc.title} wall: {_s(_med(a, 'wall_s'))} → {_s(_med(b, 'wall_s'))} "
                f"({_x(sp.get('wall'))})"
            )
        elif a:
            lines.append(f"{sc.title} wall: {_s(_med(a, 'wall_s'))}")
    seq_a = arms.get("A", {}).get("sequential")
    seq_b = arms.get("B", {}).get("sequential")
    if seq_a and seq_b and seq_a["stream_tok_s_mean"] and seq_b["stream_tok_s_mean"]:
        gain = seq_b["stream_tok_s_mean"] / seq_a["stream_tok_s_mean"] - 1
        lines.append(
            f"Avg sequential tok/s: {seq_a['stream_tok_s_mean']:.1f} → "
            f"{seq_b['stream_tok_s_mean']:.1f} ({gain:+.0%})"
        )
    return lines


Row = tuple[str, list[str], str]
"""(label, one cell per arm, B-vs-A cell): one line of the report table."""


def arm_line(a: ArmInfo) -> str:
    kv = (
        f"KV cache {a.kv_cache_tokens:,} tokens"
        + (f" ({a.kv_max_concurrency:.1f}x max-len requests)" if a.kv_max_concurrency else "")
        if a.kv_cache_tokens
        else "KV cache size unknown"
    )
    spec = f"spec decode k={a.num_speculative_tokens}" if a.spec_decode else "no spec decode"
    return f"{a.label}: {a.name}  [{a.model}, vLLM {a.version or '?'}; {kv}; {spec}]"


def config_line(result: BenchResult) -> str:
    c = result.config
    return (
        f"max_tokens {c.max_tokens} (ignore_eos), temperature {c.temperature:g}, "
        f"{c.repeats} repeat(s), {c.warmup} warm-up; median [min–max] over repeats"
    )


def table_rows(result: BenchResult) -> list[Row]:
    """The per-scenario table, shared by the CLI text and the Bench screen."""
    summary = summarize(result)
    arms = summary["arms"]
    labels = [a.label for a in result.arms]
    rows: list[Row] = []
    for sc in result.config.scenarios():
        figs = [arms.get(lab, {}).get(sc.name) for lab in labels]
        if not any(figs):
            continue
        sp = summary["speedup"].get(sc.name, {})
        rows += [
            (
                f"{sc.title} wall",
                [_range(f and f["wall_s"], " s") for f in figs],
                _x(sp.get("wall")),
            ),
            (
                "  output tok/s",
                [_range(f and f["output_tok_s"], "") for f in figs],
                _x(sp.get("output_tok_s")),
            ),
            *(
                [("  wall A/B, paired repeats", ["", _ratios(sp["wall_paired"])], "")]
                if sp.get("wall_paired") and sp["wall_paired"]["n"] > 1 and len(figs) == 2
                else []
            ),
            (
                "  TTFT p50 / p99 (ms)",
                [
                    f"{_ms(f['ttft_s']['p50'])} / {_ms(f['ttft_s']['p99'])}" if f else "–"
                    for f in figs
                ],
                "",
            ),
            (
                "  TPOT p50 / p99 (ms)",
                [
                    f"{_ms(f['tpot_s']['p50'])} / {_ms(f['tpot_s']['p99'])}" if f else "–"
                    for f in figs
                ],
                _x(sp.get("tpot_p50")),
            ),
        ]
        if any(f and f["spec_decode"] for f in figs):
            rows.append(("  acceptance length", [_accept(f) for f in figs], ""))
            rows.append(("  draft acceptance", [_rate(f) for f in figs], ""))
            rows.append(("  per position", [_pos(f) for f in figs], ""))
        if any(f and f["failed"] for f in figs):
            rows.append(("  failed requests", [str(f["failed"]) if f else "–" for f in figs], ""))
    return rows


def render_table(result: BenchResult) -> str:
    """The whole report as plain text: arms, headline, per-scenario table, checks."""
    labels = [a.label for a in result.arms]
    out: list[str] = [arm_line(a) for a in result.arms]
    if result.config.categories:
        from console.bench.categories import render_category_table

        a = result.categories.get(labels[0], []) if labels else []
        b = result.categories.get(labels[1], []) if len(labels) > 1 else None
        out += [
            f"bench by category: one request at a time, max_tokens {result.config.max_tokens}, "
            f"temperature {result.config.temperature:g}",
            "",
            render_category_table(a, b),
        ]
        out += [f"note: {n}" for n in result.notes]
        return "\n".join(out)
    out += [config_line(result), "", *headline(result), ""]
    head = f"{'':24}" + "".join(f" {lab:>22}" for lab in labels)
    if len(labels) == 2:
        head += f" {'B vs A':>8}"
    out.append(head)
    for name, cells, ratio_cell in table_rows(result):
        line = f"{name:24}" + "".join(f" {cell:>22}" for cell in cells)
        if len(labels) == 2:
            line += f" {ratio_cell:>8}"
        out.append(line)
    eq = equality(result)
    if eq is not None:
        out.append("")
        out.append(equality_line(eq))
        for m in eq["mismatches"][:5]:
            out.append(
                f"  {m['scenario']} #{m['repeat'] + 1} [{m['index']}] {m['prompt_id']}: "
                f"first difference at {m['unit']} {m['first_difference']}: "
                f"A {m['a']!r} vs B {m['b']!r}"
            )
        if len(eq["mismatches"]) > 5:
            out.append(f"  … {len(eq['mismatches']) - 5} more in the JSON")
    for note in result.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


def _ratios(fig: dict[str, Any]) -> str:
    return f"{fig['median']:.2f}x [{fig['min']:.2f}–{fig['max']:.2f}]"


def _accept(f: dict[str, Any] | None) -> str:
    s = f and f["spec_decode"]
    if not s or s["mean_acceptance_length"] is None:
        return "–"
    k = len(s["accepted_per_position"])
    return f"{s['mean_acceptance_length']:.2f} / {k + 1}"


def _rate(f: dict[str, Any] | None) -> str:
    s = f and f["spec_decode"]
    if not s or s["draft_acceptance_rate"] is None:
        return "–"
    return f"{s['draft_acceptance_rate']:.0%}"


def _pos(f: dict[str, Any] | None) -> str:
    s = f and f["spec_decode"]
    if not s or not s["per_position"]:
        return "–"
    return "/".join(f"{p:.2f}" for p in s["per_position"])


def equality_line(eq: dict[str, Any]) -> str:
    kind = "greedy" if eq["greedy"] else "sampled (temperature > 0: differences expected)"
    if not eq["checked"]:
        return f"Lossless check ({kind}): nothing to compare"
    parts = [
        f"{sc} {v['checked'] - v['mismatched']}/{v['checked']}"
        for sc, v in eq["by_scenario"].items()
    ]
    return (
        f"Lossless check ({kind}): {eq['identical']}/{eq['checked']} answers identical "
        f"({', '.join(parts)})"
    )


# --------------------------------------------------------------------------- JSON


def to_json(result: BenchResult) -> dict[str, Any]:
    """The results file's content: the raw runs plus the summaries read from them."""
    return {
        "schema": SCHEMA,
        "started": result.started,
        "finished": result.finished,
        "complete": result.complete,
        "config": asdict(result.config),
        "scenarios": [asdict(s) for s in result.config.scenarios()],
        "prompts_reused": result.prompts_reused,
        "arms": [a.to_dict() for a in result.arms],
        "summary": summarize(result),
        "equality": equality(result),
        "notes": list(result.notes),
        "runs": [r.to_dict() for r in result.runs],
        "categories": {
            label: [run.to_dict() for run in runs] for label, runs in result.categories.items()
        },
    }


def write_json(result: BenchResult, path: Path) -> None:
    """Replace ``path`` atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
