"""Reading a k-sweep: figures per k and load, the best k, the advisor beside it.

Pure functions of a :class:`console.bench.sweep.SweepResult` (no I/O), shared
by the CLI table, the results JSON (``summary``), the Bench screen's plot and
``--apply``. Definitions:

- **tok/s**: output tokens / wall time of the requests of one category at one
  load (all of them, in flight together at the concurrent load); overall: the
  categories' tokens over their summed wall time. Throughput the user sees.
- **TPOT**: mean decode time per output token after the first,
  ``(latency - TTFT) / (tokens - 1)`` per request.
- **acceptance length**: ``1 + accepted / drafts`` from the server's counters
  over the cell (the requests of one category at one load ran alone on it).
- **speed-up**: tok/s over the baseline's at the same load and category.
- **best k**: the highest tok/s among the servers whose cell had no failed
  request; the baseline can win (then speculation does not pay there).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console import spec_advisor
from console.bench.categories import CategoryRun, merged
from console.bench.sweep import SweepResult, SweepServer

OVERALL = "overall"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOISE = 0.05
"""Two tok/s figures of one run closer than this share are called a tie in the
advisor note: single runs on a shared box move by that much."""


@dataclass(frozen=True)
class Figure:
    """One server at one load over one category (or overall)."""

    k: int | None
    load: int
    category: str
    requests: int
    failed: int
    output_tokens: int
    wall: float
    tok_s: float | None
    tpot: float | None
    ttft: float | None
    acceptance_length: float | None
    load_average: float | None = None
    """Mean of the host's 1-minute load average at the end of each cell."""
    speedup: float | None = None

    @property
    def label(self) -> str:
        return label(self.k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "requests": self.requests,
            "failed": self.failed,
            "output_tokens": self.output_tokens,
            "wall_s": _r(self.wall),
            "tok_s": _r(self.tok_s),
            "tpot_ms": _r(None if self.tpot is None else self.tpot * 1e3),
            "ttft_ms": _r(None if self.ttft is None else self.ttft * 1e3),
            "acceptance_length": _r(self.acceptance_length),
            "speedup": _r(self.speedup),
            "load_average": _r(self.load_average, 2),
        }


def label(k: int | None) -> str:
    return "base" if k is None else f"k={k}"


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _figure(server: SweepServer, load: int, category: str) -> Figure | None:
    cells = [c for c in server.cells if c.load == load]
    if category != OVERALL:
        cells = [c for c in cells if c.category == category]
    if not cells:
        return None
    run: CategoryRun = cells[0].run if len(cells) == 1 else merged([c.run for c in cells])
    tokens = sum(c.output_tokens for c in cells)
    wall = sum(c.wall for c in cells)
    return Figure(
        k=server.k,
        load=load,
        category=category,
        requests=sum(len(c.requests) for c in cells),
        failed=sum(c.failed for c in cells),
        output_tokens=tokens,
        wall=wall,
        tok_s=tokens / wall if wall > 0 and tokens else None,
        tpot=run.decode_tpot,
        ttft=run.ttft,
        acceptance_length=run.spec.mean_acceptance_length if run.spec else None,
        load_average=_mean([c.load_average for c in cells]),
    )


def _mean(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None and math.isfinite(v)]
    return sum(found) / len(found) if found else None


def figures(result: SweepResult, load: int, category: str = OVERALL) -> list[Figure]:
    """Every server measured at ``load`` over ``category``, baseline first, with speed-ups."""
    out = [f for s in result.servers if (f := _figure(s, load, category)) is not None]
    base = next((f for f in out if f.k is None), None)
    if base is None or not base.tok_s or base.failed:
        return out
    return [
        Figure(**{**f.__dict__, "speedup": f.tok_s / base.tok_s if f.tok_s else None}) for f in out
    ]


def best(rows: Sequence[Figure]) -> Figure | None:
    """The fastest server with every request answered (the baseline may win)."""
    valid = [f for f in rows if f.tok_s and not f.failed]
    return max(valid, key=lambda f: f.tok_s or 0.0) if valid else None


def best_table(result: SweepResult) -> dict[int, dict[str, Figure | None]]:
    """load -> category (and ``overall``) -> the best server there."""
    return {
        load: {cat: best(figures(result, load, cat)) for cat in [*result.categories, OVERALL]}
        for load in result.config.loads
    }


# --------------------------------------------------------------------------- the advisor


@dataclass(frozen=True)
class AdvisorCheck:
    """The advisor's estimate (from the largest measured k's rates) beside the sweep."""

    source_k: int
    advice: spec_advisor.Advice
    predicted: int | None
    """The advisor's favourite among the swept ks (its tie rule)."""
    predicted_order: tuple[int, ...]
    measured: dict[int, int | None]
    """load -> the measured best k (None: the baseline was fastest)."""
    measured_order: dict[int, tuple[int | None, ...]]
    notes: tuple[str, ...]

    def agrees(self, load: int) -> bool:
        return self.predicted is not None and self.measured.get(load) == self.predicted

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_k": self.source_k,
            "advice": self.advice.to_dict(),
            "predicted_best_k": self.predicted,
            "predicted_order": list(self.predicted_order),
            "measured_best_k": {str(load): k for load, k in self.measured.items()},
            "measured_order": {str(ld): list(o) for ld, o in self.measured_order.items()},
            "agrees": {str(load): self.agrees(load) for load in self.measured},
            "notes": list(self.notes),
        }


def advisor_check(result: SweepResult) -> AdvisorCheck | None:
    """What the live advisor would have said, from the largest k's per-position
    rates over the whole sweep of that server, and how it compares."""
    spec_servers = [s for s in result.servers if s.k is not None and s.cells]
    if not spec_servers:
        return None
    source = max(spec_servers, key=lambda s: s.k or 0)
    pooled = merged([c.run for c in source.cells])
    spec = pooled.spec
    if spec is None or not spec.per_position:
        return None
    advice = spec_advisor.advise(spec.per_position, spec.drafts, method=result.method)
    few = advice is not None and not advice.enough and spec.drafts > 0
    if few:  # the measurement stands beside it: show the estimate, say how rough it is
        advice = spec_advisor.advise(
            spec.per_position, spec.drafts, method=result.method, min_drafts=1
        )
    if advice is None:
        return None
    swept = sorted(s.k for s in spec_servers if s.k is not None and s.k <= advice.configured_k)
    by_k = {p.k: p for p in advice.curve}
    predicted: int | None = None
    if advice.enough and swept:
        top = by_k[swept[0]]
        for k in swept[1:]:
            if by_k[k].relative_throughput > top.relative_throughput * (1 + spec_advisor.TIE):
                top = by_k[k]
        predicted = top.k
    order = tuple(
        sorted((k for k in swept if k in by_k), key=lambda k: -by_k[k].relative_throughput)
    )
    measured: dict[int, int | None] = {}
    measured_order: dict[int, tuple[int | None, ...]] = {}
    notes: list[str] = []
    for load in result.config.loads:
        rows = [f for f in figures(result, load) if f.tok_s and not f.failed]
        ranked = sorted(rows, key=lambda f: -(f.tok_s or 0.0))
        measured_order[load] = tuple(f.k for f in ranked)
        top_fig = ranked[0] if ranked else None
        measured[load] = top_fig.k if top_fig else None
        if top_fig is None or predicted is None or top_fig.k == predicted:
            continue
        pred_fig = next((f for f in rows if f.k == predicted), None)
        notes.append(_why(load, top_fig, pred_fig, advice))
    if few:
        notes.append(
            f"k={source.k} drafted only {spec.drafts} times over the sweep (the live "
            f"advisor waits for {spec_advisor.MIN_DRAFTS}): a rough estimate; more prompts "
            "or tokens (--per-category, --max-tokens) make it firmer"
        )
    return AdvisorCheck(
        source.k or 0, advice, predicted, order, measured, measured_order, tuple(notes)
    )


def _where(load: int) -> str:
    return "1 stream" if load == 1 else f"{load} concurrent"


def _why(load: int, top: Figure, pred: Figure | None, advice: spec_advisor.Advice) -> str:
    """Why the measured best differs from the advisor's, as far as the figures say."""
    at = _where(load)
    if pred is None or not pred.tok_s or not top.tok_s:
        return f"at {at}: k={advice.best_k} was not measured cleanly; no comparison"
    gap = top.tok_s / pred.tok_s - 1
    head = (
        f"at {at}: measured best {top.label} ({top.tok_s:.1f} tok/s) vs the advisor's "
        f"{pred.label} ({pred.tok_s:.1f} tok/s, {gap:+.0%})"
    )
    if gap <= NOISE:
        return head + f": within {NOISE:.0%}, i.e. within one run's noise on a shared box"
    reasons = []
    la, lb = top.load_average, pred.load_average
    if la is not None and lb is not None and max(la, lb) > 1.25 * min(la, lb):
        reasons.append(
            f"the two ran under different load (load average {la:.1f} vs {lb:.1f}): the "
            "box's other work, not k, may explain much of the gap; rerun on a quiet box"
        )
    if top.k is None or (pred.k is not None and top.k < pred.k):
        reasons.append(
            "the estimate counts only the draft's cost "
            f"({advice.draft_cost:g}× a target step, {advice.draft_cost_source}) and takes "
            "verification as free of k; here verifying k+1 tokens per step costs more "
            "for a larger k (compute-bound CPU decode, or a batch), so a shorter draft can win"
        )
    else:
        reasons.append(
            "a longer draft paid more than its acceptance predicts: "
            "the estimate's draft cost is too high for this box"
        )
    return head + ": " + "; ".join(reasons)


# --------------------------------------------------------------------------- JSON, table


def summary(result: SweepResult) -> dict[str, Any]:
    """The summary block of the results file (recomputed from the raw cells)."""
    out: dict[str, Any] = {"loads": {}}
    bests = best_table(result)
    for load in result.config.loads:
        cats = {
            cat: [f.to_dict() for f in figures(result, load, cat)]
            for cat in [*result.categories, OVERALL]
        }
        out["loads"][str(load)] = {
            "figures": cats,
            "best": {
                cat: (
                    None
                    if b is None
                    else {
                        "k": b.k,
                        "baseline": b.k is None,
                        "tok_s": _r(b.tok_s),
                        "speedup": _r(b.speedup),
                    }
                )
                for cat, b in bests[load].items()
            },
        }
    check = advisor_check(result)
    out["advisor"] = check.to_dict() if check is not None else None
    return out


def _finite(value: Any) -> Any:
    """NaN/Inf is unknown: None in the JSON (strict JSON, ``allow_nan=False``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(result: SweepResult) -> dict[str, Any]:
    """The results file: the raw servers and cells plus the summary read from them."""
    return _finite({**result.to_dict(), "summary": summary(result)})


def write_json(result: SweepResult, path: Path) -> None:
    """Atomically (temp file + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _f(x: float | None, fmt: str, scale: float = 1.0) -> str:
    return "—" if x is None or not math.isfinite(x) else format(x * scale, fmt)


def render_table(result: SweepResult) -> str:
    """The sweep as text: overall per load, best k per category, tok/s matrix, advisor."""
    c = result.config
    lines = [
        f"Sweep of num_speculative_tokens: {result.profile} ({result.method}, configured "
        f"k={result.configured_k}); model {result.model or '?'}, vLLM {result.version or '?'}",
        f"prompts: {c.per_category} per category at 1 stream"
        + (
            f", {max(c.concurrency, c.per_category)} at {c.concurrency} concurrent"
            if c.concurrency > 1
            else ""
        )
        + f"; {len(result.categories)} categories ({', '.join(result.categories)}); "
        f"{c.max_tokens} tokens each (ignore_eos), temperature {c.temperature:g}",
        f"load average {_f(result.load_average_start, '.2f')} at the start, "
        f"{_f(result.load_average_end, '.2f')} at the end"
        + ("" if result.complete else "  (INCOMPLETE: some servers not measured)"),
    ]
    check = advisor_check(result)
    est = {p.k: p.relative_throughput for p in check.advice.curve} if check else {}
    for load in c.loads:
        rows = figures(result, load)
        lines += ["", f"At {_where(load)} (all categories)"]
        head = (
            f"  {'':<6} {'tok/s':>8} {'speed-up':>9} {'TPOT ms':>8} {'accept len':>10}"
            f" {'failed':>6} {'load':>5}" + (f" {'advisor est.':>12}" if load == 1 and est else "")
        )
        lines += [head, "  " + "-" * (len(head) - 2)]
        for f in rows:
            line = (
                f"  {f.label:<6} {_f(f.tok_s, '.2f'):>8} {_f(f.speedup, '.2f') + 'x':>9}"
                f" {_f(f.tpot, '.1f', 1e3):>8} {_f(f.acceptance_length, '.2f'):>10}"
                f" {f.failed:>6} {_f(f.load_average, '.1f'):>5}"
            )
            if load == 1 and est:
                line += f" {(_f(est.get(f.k), '.2f') + 'x') if f.k in est else '—':>12}"
            lines.append(line)
        b = best(rows)
        lines.append(
            "  best: —"
            if b is None
            else f"  best: {b.label} ({b.tok_s:.2f} tok/s"
            + (f", {b.speedup:.2f}x the baseline)" if b.speedup else ")")
        )
    bests = best_table(result)
    lines += ["", "Best k per category (tok/s, speed-up vs base)"]
    head = f"  {'category':<12}" + "".join(f" {_where(ld):>22}" for ld in c.loads)
    lines += [head, "  " + "-" * (len(head) - 2)]
    for cat in [*result.categories, OVERALL]:
        cells = []
        for load in c.loads:
            b = bests[load][cat]
            cells.append(
                "—"
                if b is None
                else f"{b.label} {b.tok_s:.1f} " + (f"{b.speedup:.2f}x" if b.speedup else "")
            )
        lines.append(f"  {cat:<12}" + "".join(f" {x:>22}" for x in cells))
    labels = [s.label for s in result.servers]
    lines += ["", "tok/s per category and k"]
    for load in c.loads:
        head = f"  {_where(load):<14}" + "".join(f" {lb:>7}" for lb in labels)
        lines.append(head)
        for cat in result.categories:
            by = {f.k: f for f in figures(result, load, cat)}
            lines.append(
                f"  {cat:<14}"
                + "".join(
                    f" {_f(by[s.k].tok_s if s.k in by else None, '.1f'):>7}" for s in result.servers
                )
            )
    if check is not None:
        a = check.advice
        rates = " / ".join(f"{x:.2f}" for x in (p.tokens_per_step for p in a.curve))
        lines += [
            "",
            f"Advisor (estimate) from k={check.source_k}'s per-position rates: "
            + (a.label if not a.enough else f"{a.label}; tokens/step {rates}"),
        ]
        if check.predicted is not None:
            order = " > ".join(f"k={k}" for k in check.predicted_order)
            lines.append(f"  predicts best k={check.predicted} (order {order})")
            for load in c.loads:
                m = check.measured.get(load)
                mo = " > ".join(label(k) for k in check.measured_order.get(load, ()))
                verdict = "agrees" if check.agrees(load) else "differs"
                lines.append(f"  measured at {_where(load)}: best {label(m)} ({mo}): {verdict}")
        lines += [f"  {n}" for n in check.notes]
    for s in result.servers:
        if s.error:
            lines.append(f"{s.label} failed: {s.error}")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(
        "tok/s: output tokens / wall time of a category's requests at that load; TPOT: "
        "decode time per token after the first; acceptance length: 1 + accepted/drafts "
        "from /metrics over the cell; speed-up: over the baseline at the same load; load: "
        "the host's load average while it ran (other work on the box moves tok/s)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- plot data


def plot_series(result: SweepResult) -> tuple[dict[int, list[tuple[int, float]]], dict[int, float]]:
    """(load -> [(k, overall tok/s)], load -> baseline tok/s): what the plot draws."""
    series: dict[int, list[tuple[int, float]]] = {}
    base: dict[int, float] = {}
    for load in result.config.loads:
        for f in figures(result, load):
            if not f.tok_s or f.failed:
                continue
            if f.k is None:
                base[load] = f.tok_s
            else:
                series.setdefault(load, []).append((f.k, f.tok_s))
    return series, base


def render_plot(result: SweepResult, width: int = 72, height: int = 18) -> str:
    """tok/s against k as text (plotext): one line per load, the baseline dashed."""
    import plotext as plt

    series, base = plot_series(result)
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    ks = sorted({k for pts in series.values() for k, _ in pts})
    markers = ["dot", "x", "+", "o"]
    for i, (load, pts) in enumerate(sorted(series.items())):
        plt.plot(
            [k for k, _ in pts],
            [v for _, v in pts],
            marker=markers[i % len(markers)],
            label=f"{_where(load)}",
        )
    for load, value in sorted(base.items()):
        if ks:
            plt.plot([ks[0], ks[-1]], [value, value], marker="-", label=f"base {_where(load)}")
    if ks:
        plt.xticks(ks)
    plt.xlabel("k (num_speculative_tokens)")
    plt.ylabel("tok/s")
    plt.title(f"tok/s against k: {result.profile}")
    return _ANSI.sub("", plt.build())


# --------------------------------------------------------------------------- reading files back


def from_json(data: dict[str, Any], source: str = "results file") -> SweepResult:
    """A results file back into a :class:`SweepResult` (to print it again or merge
    the ks of a cut-off sweep with a later one); a file that is not one says so."""
    from console import metrics
    from console.bench.client import RequestResult
    from console.bench.sweep import SCHEMA, SweepCell, SweepConfig
    from console.errors import ConsoleError

    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConsoleError(f"{source}: not a k-sweep results file (schema {SCHEMA})")
    try:
        c = data["config"]
        config = SweepConfig(
            ks=tuple(c["ks"]),
            concurrency=c["concurrency"],
            per_category=c["per_category"],
            categories=tuple(c["categories"]) if c.get("categories") else None,
            max_tokens=c["max_tokens"],
            warmup=c["warmup"],
            temperature=c["temperature"],
            dataset=c.get("dataset"),
            port=c.get("port"),
        )
        result = SweepResult(
            profile=data["profile"],
            method=data["method"],
            configured_k=data["configured_k"],
            config=config,
            categories=list(data["categories"]),
            model=data.get("model"),
            version=data.get("version"),
            notes=list(data.get("notes") or []),
            started=data["started"],
            finished=data.get("finished"),
            load_average_start=data.get("load_average_start"),
            load_average_end=data.get("load_average_end"),
            json_path=source,
        )
        for s in data["servers"]:
            server = SweepServer(
                s["k"],
                s["name"],
                phase=s["phase"],
                url=s.get("url"),
                pid=s.get("pid"),
                ready_s=s.get("ready_s"),
                measured_k=s.get("measured_k"),
                error=s.get("error"),
                stopped=s.get("stopped"),
            )
            for cell in s["cells"]:
                reqs = [
                    RequestResult(
                        prompt_id=r["prompt_id"],
                        start=r.get("start_s") or 0.0,
                        ttft=r.get("ttft_s"),
                        latency=r.get("latency_s"),
                        output_tokens=r.get("output_tokens"),
                        prompt_tokens=r.get("prompt_tokens"),
                        finish_reason=r.get("finish_reason"),
                        error=r.get("error"),
                    )
                    for r in cell["per_request"]
                ]
                sd = cell.get("spec_decode")
                spec = (
                    metrics.SpecDecodeStats.from_counts(
                        sd["drafts"],
                        sd["draft_tokens"],
                        sd["accepted_tokens"],
                        tuple(sd["accepted_per_position"]),
                        None,
                    )
                    if sd
                    else None
                )
                run = CategoryRun(cell["category"], reqs, spec)
                server.cells.append(
                    SweepCell(
                        cell["category"],
                        cell["load"],
                        run,
                        cell["wall_s"],
                        cell.get("load_average"),
                    )
                )
            result.servers.append(server)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsoleError(f"{source}: a k-sweep results file with a bad field ({exc})") from None
    return result


def merge(results: Sequence[SweepResult]) -> SweepResult:
    """Several sweeps of one profile and settings as one: each k from the first file
    that measured it completely (the later files' other servers are left out, and
    a note says so, with the baselines' tok/s as a drift check)."""
    from console.errors import ConsoleError

    first = results[0]
    same = ("profile", "categories")
    for other in results[1:]:
        if any(getattr(other, f) != getattr(first, f) for f in same) or (
            other.config.loads,
            other.config.per_category,
            other.config.max_tokens,
        ) != (first.config.loads, first.config.per_category, first.config.max_tokens):
            raise ConsoleError(
                f"{other.json_path}: another profile or other settings than {first.json_path}; "
                "only sweeps of the same profile, categories, loads, prompts and tokens merge"
            )
    servers: dict[int | None, SweepServer] = {}
    notes = list(first.notes)
    for res in results:
        for s in res.servers:
            if s.phase != "done":
                continue
            if s.k in servers:
                if s.k is None:
                    tok = {
                        ld: f.tok_s
                        for ld in res.config.loads
                        if (f := _figure(s, ld, OVERALL)) is not None
                    }
                    kept = {
                        ld: f.tok_s
                        for ld in res.config.loads
                        if (f := _figure(servers[None], ld, OVERALL)) is not None
                    }
                    notes.append(
                        f"baseline measured again in {res.json_path} ({res.started}): "
                        + ", ".join(
                            f"{_where(ld)} {_f(tok.get(ld), '.2f')} tok/s (kept: "
                            f"{_f(kept.get(ld), '.2f')})"
                            for ld in res.config.loads
                        )
                        + "; the difference is the box's drift between the runs"
                    )
                continue
            servers[s.k] = s
    ks = tuple(sorted(k for k in servers if k is not None))
    merged_result = SweepResult(
        profile=first.profile,
        method=first.method,
        configured_k=first.configured_k,
        config=dataclasses.replace(first.config, ks=ks),
        categories=list(first.categories),
        servers=[servers[k] for k in (None, *ks) if k in servers],
        model=first.model,
        version=first.version,
        notes=notes,
        started=first.started,
        finished=results[-1].finished,
        load_average_start=first.load_average_start,
        load_average_end=results[-1].load_average_end,
        json_path=", ".join(str(r.json_path) for r in results),
    )
    merged_result.notes.append(
        "merged from " + ", ".join(f"{r.json_path} ({r.started})" for r in results)
    )
    return merged_result
