"""One answer's speculative-decoding acceptance.

Two honest sources, never mixed:

- ``per-request``: vLLM's own per-request figures, ``metrics.speculative_decoding``
  on the final usage chunk (``--per-request-spec-decode-metrics summary``, vLLM
  0.32 checked; ``vllm/v1/metrics/stats.py`` ``RequestSpecDecodeMetrics``). Its
  histogram counts the verify steps that accepted exactly ``j`` draft tokens.
- ``metrics-delta``: the ``vllm:spec_decode_*`` counter differences around an
  answer that ran alone on the server (nothing running or waiting before, one
  request finished, the generated-token counter grew by exactly this answer's
  tokens). Labelled as such; anything less certain shows nothing.

Formulas (reference/vllm.md §1.3): mean acceptance length = 1 + accepted/steps
(the bonus token included); acceptance rate = accepted/drafted; per-position
rate i = steps that accepted at least i+1 tokens / steps (vLLM's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["per-request", "metrics-delta"]

NEAR_ZERO_RATE = 0.02
"""Below this share of accepted draft tokens the draft is not helping at all."""
NEAR_ZERO_MIN_DRAFTED = 8
"""... once at least this many draft tokens were proposed (a short answer proves nothing)."""
MAX_K = 64
"""A histogram or position list longer than this is not from a real server."""
LABELS: dict[Source, str] = {"per-request": "", "metrics-delta": " (from /metrics, ran alone)"}


@dataclass(frozen=True)
class Acceptance:
    source: Source
    steps: int
    """Verify steps that carried draft tokens (vLLM's ``num_drafts``)."""
    drafted: int
    accepted: int
    per_position: tuple[float, ...]
    histogram: tuple[int, ...] | None = None
    k: int | None = None

    @property
    def mean_length(self) -> float | None:
        return 1 + self.accepted / self.steps if self.steps else None

    @property
    def rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    @property
    def near_zero(self) -> bool:
        """Drafts proposed, (almost) none accepted: a mismatched or broken draft."""
        rate = self.rate
        return rate is not None and self.drafted >= NEAR_ZERO_MIN_DRAFTED and rate < NEAR_ZERO_RATE

    def line(self) -> str:
        """``accept 2.31 · 33 % · pos 0.62 0.41 0.20 0.08`` for the stats line."""
        label = LABELS[self.source]
        if not self.steps:
            return f"no drafts{label}"
        if self.near_zero:
            return (
                f"acceptance ≈0 % ({self.accepted}/{self.drafted} draft tokens) — draft not "
                f"matching the target?{label}"
            )
        rate = self.rate
        pct = "?" if rate is None else f"{100 * rate:.0f} %"
        parts = [f"accept {self.mean_length:.2f}", pct]
        if self.per_position:
            parts.append("pos " + " ".join(f"{p:.2f}" for p in self.per_position))
        return " · ".join(parts) + label

    def to_dict(self) -> dict[str, Any]:
        """For the transcript and JSON output (finite numbers only)."""
        return {
            "source": self.source,
            "mean_acceptance_length": _r(self.mean_length),
            "acceptance_rate": _r(self.rate),
            "per_position": [_r(p) for p in self.per_position],
            "histogram": list(self.histogram) if self.histogram is not None else None,
            "num_spec_steps": self.steps,
            "num_draft_tokens": self.drafted,
            "num_accepted_tokens": self.accepted,
            "num_speculative_tokens": self.k,
            "near_zero": self.near_zero,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _count(value: Any) -> int | None:
    """A non-negative integer from untrusted JSON, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    return None


def from_payload(payload: Any) -> Acceptance | None:
    """The server's ``metrics.speculative_decoding`` object, checked field by field.

    Only the counts are trusted (the server's own derived floats are recomputed
    from them, so a hostile NaN or a contradicting mean never shows).
    """
    if not isinstance(payload, dict):
        return None
    hist_raw = payload.get("acceptance_histogram")
    drafted = _count(payload.get("num_draft_tokens"))
    if not isinstance(hist_raw, list) or not 0 < len(hist_raw) <= MAX_K + 1 or drafted is None:
        return None
    hist = [_count(v) for v in hist_raw]
    if any(v is None for v in hist):
        return None
    counts: tuple[int, ...] = tuple(v for v in hist if v is not None)
    steps = sum(counts)
    accepted = sum(j * n for j, n in enumerate(counts))
    k = len(counts) - 1
    positions = tuple(sum(counts[i + 1 :]) / steps for i in range(k)) if steps else ()
    return Acceptance("per-request", steps, drafted, accepted, positions, counts, k)


def from_counts(
    before: tuple[float, float, float, tuple[float, ...]],
    after: tuple[float, float, float, tuple[float, ...]],
) -> Acceptance | None:
    """Counter differences (drafts, draft tokens, accepted, per position) around one answer."""
    d = after[0] - before[0]
    t = after[1] - before[1]
    a = after[2] - before[2]
    if min(d, t, a) < 0:
        return None  # counters went down: the server restarted in between
    old = before[3] + (0.0,) * (len(after[3]) - len(before[3]))
    per = [x - y for x, y in zip(after[3], old, strict=False)]
    steps = int(d)
    positions = tuple(p / steps for p in per) if steps else ()
    return Acceptance(
        "metrics-delta", steps, int(t), int(a), positions, None, len(after[3]) or None
    )
