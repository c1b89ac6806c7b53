"""Which k? An estimate of the best ``num_speculative_tokens`` from live acceptance.

Why: the best k depends on the model, the prompts and the load, and users find
it by trial. The per-position acceptance the server already exports answers the
first half of the question without a restart: a draft of length k' yields
``1 + a_1 + ... + a_k'`` tokens per verification step on average, where
``a_i = A_i / D`` is vLLM's per-position rate (steps whose i-th draft token was
accepted, over all steps with drafts). A shorter draft stops earlier, so its
positions' rates are the same, which makes the curve for every k' <= k exact in
expectation for the prompts seen. Beyond the configured k nothing was measured;
the advisor never reports a k' > k.

The second half, throughput, needs a cost model and is an *estimate*:

    relative throughput(k') = tokens per step(k') / (1 + k' * c)

where ``c`` is the cost of producing one draft token relative to one target
(verification) step. It assumes the verification step costs the same whatever
k' (true while decode is memory-bound: one stream or a light batch); under a
heavy batch verification grows with k' and the estimate favours too large a k.
The sweep (``bench --sweep-k``) measures what this only estimates.

Default ``c`` per method (override with a measured figure when there is one):

- ``ngram``: 0.0 — prompt lookup on the CPU, no model forward; nearly free.
  With c = 0 the estimate can only grow with k', so it favours the configured k
  (with a tolerance; see ``TIE``) and only the verification cost decides.
- ``mtp`` (and eagle-style heads): 0.05 — one extra decoder layer plus the LM
  head per draft token, a few per cent of a target step for a 20-60 layer target.
- ``draft_model``: 0.10 — a separate small model run once per draft token,
  typically 5-15 % of the target's step time.
- unknown method: the draft-model figure (the most conservative of the three),
  labelled as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_DRAFT_COST: dict[str, float] = {"ngram": 0.0, "mtp": 0.05, "draft_model": 0.10}
"""Cost of one draft token relative to one target step, per method (module docstring)."""
_METHOD_ALIASES = {
    "ngram_gpu": "ngram",
    "suffix": "ngram",
    "eagle": "mtp",
    "eagle3": "mtp",
    "deepseek_mtp": "mtp",
    "mimo_mtp": "mtp",
    "medusa": "mtp",
    "draft": "draft_model",
}
UNKNOWN_METHOD_COST = DEFAULT_DRAFT_COST["draft_model"]
MIN_DRAFTS = 100
"""Fewer verification steps with drafts than this: too few to judge. At 100 the
standard error of each per-position rate is at most 0.05 (sqrt(0.25/100))."""
TIE = 0.02
"""A longer draft is favoured only when it beats the best shorter one by more than
this share: a gain inside the rates' noise is not worth the extra verification."""


@dataclass(frozen=True)
class KPoint:
    k: int
    tokens_per_step: float
    relative_throughput: float
    """Estimate, relative to running without speculation (= 1.0)."""


@dataclass(frozen=True)
class Advice:
    """The advisor's answer for one span of counts (a window or since start)."""

    configured_k: int
    drafts: int
    method: str | None
    draft_cost: float
    draft_cost_source: str
    """'measured', 'default for <method>' or 'default, method unknown'."""
    curve: tuple[KPoint, ...]
    """k' = 1 .. configured k; empty when too few drafts."""
    best_k: int | None
    enough: bool

    @property
    def label(self) -> str:
        """One line naming the inputs, so the figure reads as what it is."""
        if not self.enough:
            return f"too few drafts to judge ({self.drafts} < {MIN_DRAFTS})"
        return (
            f"estimate from {self.drafts} drafts, draft cost {self.draft_cost:g}×target step "
            f"({self.draft_cost_source}); k' > {self.configured_k} not measured"
        )

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-safe (every float finite or None)."""
        return {
            "estimate": True,
            "configured_k": self.configured_k,
            "drafts": self.drafts,
            "min_drafts": MIN_DRAFTS,
            "enough_drafts": self.enough,
            "method": self.method,
            "draft_cost": _r(self.draft_cost),
            "draft_cost_source": self.draft_cost_source,
            "curve": [
                {
                    "k": p.k,
                    "tokens_per_step": _r(p.tokens_per_step),
                    "relative_throughput": _r(p.relative_throughput),
                }
                for p in self.curve
            ],
            "best_k": self.best_k,
            "beyond_configured_k": "not measured",
            "label": self.label,
        }


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


def draft_cost_for(method: str | None) -> tuple[float, str]:
    """The stated default cost and where it came from."""
    m = (method or "").strip().lower()
    m = _METHOD_ALIASES.get(m, m)
    if m in DEFAULT_DRAFT_COST:
        return DEFAULT_DRAFT_COST[m], f"default for {m}"
    return UNKNOWN_METHOD_COST, "default, method unknown"


def tokens_per_step(per_position: Sequence[float], k: int) -> float:
    """1 + a_1 + ... + a_k: expected tokens per verification step with a draft of k."""
    if not 0 <= k <= len(per_position):
        raise ValueError(f"k={k} outside the measured 0..{len(per_position)}")
    return 1.0 + sum(per_position[:k])


def advise(
    per_position: Sequence[float] | None,
    drafts: int,
    *,
    method: str | None = None,
    draft_cost: float | None = None,
    min_drafts: int = MIN_DRAFTS,
) -> Advice | None:
    """The curve and favoured k' for k' = 1 .. len(per_position).

    ``min_drafts``: the live views keep the default; the k-sweep lowers it to
    show the estimate beside its own measurement, saying how few drafts it had.
    None when there is nothing to advise on (no positions). Rates that are not
    finite or fall outside [0, 1] are not from a real server: None as well.
    """
    if not per_position:
        return None
    rates = [float(a) for a in per_position]
    if any(not math.isfinite(a) or not 0.0 <= a <= 1.0 for a in rates):
        return None
    if draft_cost is not None and math.isfinite(draft_cost) and draft_cost >= 0:
        cost, source = float(draft_cost), "measured"
    else:
        cost, source = draft_cost_for(method)
    k = len(rates)
    enough = drafts >= min_drafts
    curve: tuple[KPoint, ...] = ()
    best: int | None = None
    if enough:
        curve = tuple(
            KPoint(j, tokens_per_step(rates, j), tokens_per_step(rates, j) / (1.0 + j * cost))
            for j in range(1, k + 1)
        )
        best_point = curve[0]
        for p in curve[1:]:
            if p.relative_throughput > best_point.relative_throughput * (1.0 + TIE):
                best_point = p
        best = best_point.k
    return Advice(k, drafts, method, cost, source, curve, best, enough)
