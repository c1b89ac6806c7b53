"""Bench by task category: acceptance and speed-up per kind of prompt.

Acceptance depends strongly on what is asked (JSON and code draft well,
creative writing much less), so one number hides what a user will see. This
runs each category's prompts one at a time (one stream, so the server's
spec-decode counters around a category belong to it alone) and reports, per
category and overall: mean acceptance length and rate (``/metrics`` deltas
over the category), output tok/s, TTFT, TPOT and decode-window TPOT.

- TPOT (e2e): latency / output tokens — what a reader waits per token;
- decode TPOT: (last token - first token) / (output tokens - 1) — the decode
  window only, what users compare under spec decode (vllm#51454);
- speed-up of arm B over arm A: the ratio of their decode tok/s (1 / decode
  TPOT), per category and overall.

:func:`run_categories` is the reusable core (one server, one pass); a k-sweep
calls it once per server.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from console import metrics
from console.bench.client import ChatRequest, RequestResult, stream_chat
from console.bench.model import Prompt, load_prompts

CATEGORIES = (
    "coding",
    "maths",
    "extraction",
    "summarising",
    "translation",
    "qa",
    "writing",
    "multi-turn",
)
"""The shipped categories, in report order (the field's usual set)."""


def shipped_dataset() -> Path:
    return Path(str(resources.files("console") / "data" / "prompts" / "categories"))


def load_dataset(path: str | Path | None = None) -> list[Prompt]:
    """Prompts with a category each (``category`` or ``kind`` per JSONL line).

    Without ``path``: the shipped set, ~10 realistic chat prompts per category.
    """
    return load_prompts(path if path is not None else shipped_dataset() / "categories.jsonl")


def by_category(prompts: Sequence[Prompt]) -> dict[str, list[Prompt]]:
    """Prompts grouped by category: shipped categories first, then the file's order."""
    groups: dict[str, list[Prompt]] = {}
    for p in prompts:
        groups.setdefault(p.kind, []).append(p)
    order = [c for c in CATEGORIES if c in groups] + [c for c in groups if c not in CATEGORIES]
    return {c: groups[c] for c in order}


@dataclass
class CategoryRun:
    """One category on one server: its requests and the spec counters around them."""

    category: str
    requests: list[RequestResult] = field(default_factory=list)
    spec: metrics.SpecDecodeStats | None = None

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.requests if r.ok and r.output_tokens]

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens or 0 for r in self.ok)

    @property
    def decode_tok_s(self) -> float | None:
        """Decode-window tokens per second over the category (tokens after the first)."""
        span = sum((r.latency or 0) - (r.ttft or 0) for r in self.ok)
        tokens = sum((r.output_tokens or 1) - 1 for r in self.ok)
        return tokens / span if span > 0 and tokens > 0 else None

    @property
    def e2e_tok_s(self) -> float | None:
        span = sum(r.latency or 0 for r in self.ok)
        return self.output_tokens / span if span > 0 else None

    def _mean(self, values: list[float | None]) -> float | None:
        found = [v for v in values if v is not None]
        return statistics.fmean(found) if found else None

    @property
    def ttft(self) -> float | None:
        return self._mean([r.ttft for r in self.ok])

    @property
    def tpot_e2e(self) -> float | None:
        return self._mean(
            [r.latency / r.output_tokens for r in self.ok if r.latency and r.output_tokens]
        )

    @property
    def decode_tpot(self) -> float | None:
        return self._mean([r.tpot for r in self.ok])

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "requests": len(self.requests),
            "failed": len(self.requests) - len(self.ok),
            "output_tokens": self.output_tokens,
            "decode_tok_s": self.decode_tok_s,
            "e2e_tok_s": self.e2e_tok_s,
            "ttft_s": self.ttft,
            "tpot_e2e_s": self.tpot_e2e,
            "decode_tpot_s": self.decode_tpot,
            "spec_decode": self.spec.to_dict() if self.spec else None,
            "per_request": [r.to_dict() for r in self.requests],
        }


def merged(runs: Sequence[CategoryRun], name: str = "overall") -> CategoryRun:
    """All categories as one (the overall row): requests pooled, counters summed."""
    out = CategoryRun(name, [r for run in runs for r in run.requests])
    specs = [r.spec for r in runs if r.spec is not None]
    if specs:
        k = max(len(s.accepted_per_position) for s in specs)
        pos = tuple(
            sum(s.accepted_per_position[i] for s in specs if i < len(s.accepted_per_position))
            for i in range(k)
        )
        out.spec = metrics.SpecDecodeStats.from_counts(
            sum(s.drafts for s in specs),
            sum(s.draft_tokens for s in specs),
            sum(s.accepted_tokens for s in specs),
            pos,
            None,
        )
    return out


async def run_categories(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    prompts: Sequence[Prompt],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    on_category: Callable[[CategoryRun], None] | None = None,
    only: Sequence[str] | None = None,
) -> list[CategoryRun]:
    """Each category's prompts one at a time on ``url``; counters scraped around each.

    ``only`` limits the pass to some categories (an interleaving caller runs one
    category per call).
    """
    runs: list[CategoryRun] = []
    for category, group in by_category(prompts).items():
        if only is not None and category not in only:
            continue
        run = CategoryRun(category)
        before = await metrics.ascrape(client, url)
        for prompt in group:
            request = ChatRequest(
                model=model, messages=prompt.messages, max_tokens=max_tokens,
                temperature=temperature,
            )  # fmt: skip
            run.requests.append(await stream_chat(client, url, request, prompt_id=prompt.id))
        after = await metrics.ascrape(client, url)
        figures = metrics.derive(after, before)
        if figures.spec_decode is not None and not figures.counter_reset:
            run.spec = figures.spec_decode.window
        runs.append(run)
        if on_category is not None:
            on_category(run)
    return runs


# --------------------------------------------------------------------------- report


def _f(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, fmt)


def category_rows(
    a: Sequence[CategoryRun], b: Sequence[CategoryRun] | None
) -> list[tuple[CategoryRun, CategoryRun | None]]:
    """(A, B) per category in A's order, then the overall pair."""
    b_by = {r.category: r for r in b or []}
    rows: list[tuple[CategoryRun, CategoryRun | None]] = [(r, b_by.get(r.category)) for r in a]
    rows.append((merged(a), merged(list(b_by.values())) if b is not None else None))
    return rows


def speedup(a: CategoryRun, b: CategoryRun | None) -> float | None:
    if b is None or not a.decode_tok_s or not b.decode_tok_s:
        return None
    return b.decode_tok_s / a.decode_tok_s


def render_category_table(
    a: Sequence[CategoryRun], b: Sequence[CategoryRun] | None = None, *, labels: str = "AB"
) -> str:
    """Per category: acceptance (the spec arm), tok/s of each arm, speed-up, TPOTs."""
    spec_side = b if b is not None else a
    head = (
        f"{'category':<12} {'n':>3} {'accept len':>10} {'rate':>6}"
        f" {labels[0] + ' tok/s':>9}"
        + (f" {labels[1] + ' tok/s':>9} {'speed-up':>8}" if b is not None else "")
        + f" {'TPOT ms':>13} {'decode TPOT ms':>14}"
    )
    lines = [head, "-" * len(head)]
    spec_by = {r.category: r for r in spec_side}
    for ra, rb in category_rows(a, b):
        spec_run = spec_by.get(ra.category) or (rb if b is not None else ra)
        spec = spec_run.spec if spec_run is not None else None
        shown = rb if rb is not None else ra
        tpot = f"{_f(ra.tpot_e2e, '.1f', 1e3)}"
        dtpot = f"{_f(ra.decode_tpot, '.1f', 1e3)}"
        if rb is not None:
            tpot += f"/{_f(rb.tpot_e2e, '.1f', 1e3)}"
            dtpot += f"/{_f(rb.decode_tpot, '.1f', 1e3)}"
        line = (
            f"{ra.category:<12} {len(shown.requests):>3}"
            f" {_f(spec.mean_acceptance_length if spec else None, '.2f'):>10}"
            f" {_f(spec.draft_acceptance_rate if spec else None, '.0%'):>6}"
            f" {_f(ra.decode_tok_s, '.1f'):>9}"
        )
        if b is not None:
            line += f" {_f(rb.decode_tok_s if rb else None, '.1f'):>9}"
            line += f" {_f(speedup(ra, rb), '.2f'):>7}x"
        line += f" {tpot:>13} {dtpot:>14}"
        if ra.category == "overall":
            lines.append("-" * len(head))
        lines.append(line)
    lines.append(
        "tok/s: decode window (tokens after the first / time after the first token); "
        "speed-up: B over A; TPOT = latency/tokens, decode TPOT = (end - first token)/"
        "(tokens - 1), A/B; acceptance: /metrics deltas over each category (one request "
        "at a time)"
    )
    return "\n".join(lines)
