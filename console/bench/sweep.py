"""Which k, measured: a sweep of ``num_speculative_tokens`` over one profile.

Why: the advisor (``console.spec_advisor``) only *estimates* the best k from
per-position acceptance, and the estimate cannot see the verification cost
that grows with k under a batch. The sweep measures it on the user's own box,
model and prompts: the profile is started once per k (and once without
speculation, the baseline), each server on the profile's port in turn, the
same prompts are sent per category at one stream and at a named concurrency,
and the server is stopped before the next one starts.

What it is made of, so the CLI and the Bench screen share one core:

- :class:`SweepConfig` — which ks, the loads, the prompts and their length;
- :func:`sweep_profiles` — the profile rewritten per k (only
  ``speculative_config.num_speculative_tokens``, the server's name and its
  container name differ) and the baseline (the speculative config and the
  flags that only make sense with it removed);
- ``sweep_run.SweepRunner`` — starts each server through the runtime API
  (``console.runtime``), measures, and ends it (``down``) whatever happens:
  a failed start, a failed request, Ctrl-C or a cancelled worker;
- :class:`SweepResult` — what was measured, written to JSON after every cell
  so a cut-off sweep keeps the finished ks (``sweep_report.write_json``).

The report (table, best k, the advisor next to the measurement, plot data) is
``console.bench.sweep_report``; ``--apply`` is ``console.bench.sweep_apply``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from console.bench.categories import CategoryRun, by_category, load_dataset
from console.bench.client import RequestResult
from console.bench.model import Prompt, utc_now
from console.errors import ConsoleError, UsageError

if TYPE_CHECKING:
    from console.profiles.schema import Profile

SCHEMA = "vllm-console.sweep-k/1"
SPEC_ONLY_ARGS = ("per-request-spec-decode-metrics",)
"""Engine flags that only make sense with speculative decoding: the baseline drops them."""
MAX_K = 32
"""No method drafts more than this usefully; a bigger number is a typo."""
_NAME_MAX = 64


# --------------------------------------------------------------------------- input


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,2,3,4,6"`` -> (1, 2, 3, 4, 6): distinct whole numbers 1..MAX_K, sorted."""
    ks: set[int] = set()
    for part in str(text).split(","):
        item = part.strip()
        try:
            k = int(item)
        except ValueError:
            raise UsageError(
                f"--sweep-k: {item!r} is not a whole number",
                hint="give the draft lengths to try, e.g. --sweep-k 1,2,3,4,6",
            ) from None
        if not 1 <= k <= MAX_K:
            raise UsageError(
                f"--sweep-k: {k} is out of range (each k is 1..{MAX_K}; the baseline "
                "without speculation is always included)",
                hint="e.g. --sweep-k 1,2,3,4,6",
            )
        ks.add(k)
    if not ks:
        raise UsageError("--sweep-k: no k given", hint="e.g. --sweep-k 1,2,3,4,6")
    return tuple(sorted(ks))


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs; the defaults suit a GPU box, the CLI exposes every knob."""

    ks: tuple[int, ...]
    concurrency: int = 8
    """The second load (the seed's 8); 1 runs one stream only."""
    per_category: int = 3
    """Prompts per category at one stream (the concurrent load sends at least
    ``concurrency`` prompts of the category, the same first ones and more)."""
    categories: tuple[str, ...] | None = None
    """Only these categories (None: every category of the dataset)."""
    max_tokens: int = 128
    warmup: int = 1
    warmup_max_tokens: int = 16
    temperature: float = 0.0
    dataset: str | None = None
    """Category prompts (JSONL); None: the shipped set (console.bench.categories)."""
    port: int | None = None
    """Serve every k on this port instead of the profile's own."""
    server_timeout: float = 900.0
    request_timeout: float = 900.0

    def check(self) -> None:
        if not self.ks:
            raise UsageError("--sweep-k: no k given", hint="e.g. --sweep-k 1,2,3,4,6")
        if self.concurrency < 1:
            raise UsageError("--concurrent must be at least 1 (1: one stream only)")
        if self.per_category < 1:
            raise UsageError("--per-category must be at least 1")
        if self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.warmup < 0:
            raise UsageError("--warmup must be 0 or more")
        if self.temperature < 0:
            raise UsageError("--temperature must be 0 or more")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise UsageError(f"--port {self.port}: a port is 1..65535")

    @property
    def loads(self) -> tuple[int, ...]:
        """Concurrency levels measured: one stream, then the named concurrency."""
        return (1,) if self.concurrency == 1 else (1, self.concurrency)

    def prompts_for(self, group: Sequence[Prompt], load: int) -> list[Prompt]:
        """The category's prompts at ``load``: the first ``per_category`` at one
        stream; at a higher load at least ``load`` of them (cycling when the
        category has fewer), so ``load`` requests are really in flight."""
        n = self.per_category if load == 1 else max(load, self.per_category)
        return [group[i % len(group)] for i in range(n)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ks"] = list(self.ks)
        data["loads"] = list(self.loads)
        data["categories"] = list(self.categories) if self.categories else None
        return data


def select_dataset(config: SweepConfig) -> dict[str, list[Prompt]]:
    """The prompts per category the sweep sends (one dataset for every k)."""
    groups = by_category(load_dataset(config.dataset))
    if config.categories:
        unknown = [c for c in config.categories if c not in groups]
        if unknown:
            raise UsageError(
                f"--categories: unknown {', '.join(unknown)} (the dataset has {', '.join(groups)})"
            )
        groups = {c: groups[c] for c in config.categories}
    return groups


# --------------------------------------------------------------------------- profiles


def spec_method(profile: Profile) -> str:
    """The speculative method as the advisor names it: ``ngram``, ``mtp``,
    ``draft_model`` or vLLM's own word. A draft model without a method is what
    vLLM detects from the draft's config: MTP for an MTP head or an
    ``-assistant`` (Gemma 4), else a separate draft model."""
    spec = profile.serve.speculative_config or {}
    method = spec.get("method")
    if isinstance(method, str) and method.strip():
        return method.strip().lower()
    model = str(spec.get("model") or "").lower()
    if "mtp" in model or "assistant" in model:
        return "mtp"
    return "draft_model" if model else "unknown"


def require_speculation(profile: Profile) -> int:
    """The profile's configured k; a clear usage error when it has no speculation."""
    spec = profile.serve.speculative_config
    if not spec:
        raise UsageError(
            f"profile {profile.name} has no serve.speculative_config: there is no k to sweep "
            f"({profile.source or 'profile'})",
            hint="sweep a profile with speculative decoding, e.g. gemma3-270m-cpu-ngram",
        )
    k = spec.get("num_speculative_tokens")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UsageError(
            f"profile {profile.name}: serve.speculative_config.num_speculative_tokens is "
            f"{k!r}, not a whole number >= 1 ({profile.source or 'profile'})",
            hint="set num_speculative_tokens in the profile, then sweep it",
        )
    return k


def variant_name(profile: Profile, k: int | None) -> str:
    """The server's name for one k (``None``: the baseline); a plain file name.

    Distinct from the profile's own name, so a running server of the profile
    is never re-attached to (and never stopped) by the sweep."""
    tail = "-sweep-base" if k is None else f"-sweep-k{k}"
    return profile.name[: _NAME_MAX - len(tail)] + tail


def _variant(profile: Profile, k: int | None, port: int | None) -> Profile:
    from console.profiles.render import container_name, with_overrides

    serve = profile.serve
    fields: dict[str, Any] = {}
    if k is None:
        fields["speculative_config"] = None
        fields["engine_args"] = {
            name: value for name, value in serve.engine_args.items() if name not in SPEC_ONLY_ARGS
        }
    else:
        fields["speculative_config"] = {
            **(serve.speculative_config or {}),
            "num_speculative_tokens": k,
        }
    if port is not None:
        fields["port"] = port
    name = variant_name(profile, k)
    if profile.runtime == "docker":
        container = serve.container.model_dump()
        container["name"] = f"{container_name(profile)}-sweep-{'base' if k is None else f'k{k}'}"
        fields["container"] = container
    new = with_overrides(profile, **fields)
    return new.model_copy(update={"name": name})


def sweep_profiles(
    profile: Profile, ks: Sequence[int], port: int | None = None
) -> list[tuple[int | None, Profile]]:
    """(k, the profile to start) for the baseline (k None) and every k, in run order."""
    require_speculation(profile)
    return [(None, _variant(profile, None, port))] + [(k, _variant(profile, k, port)) for k in ks]


def load_sweep_profile(ref: str) -> Profile:
    """The profile to sweep by name or path; unknown or not speculative: usage error."""
    from console.profiles.loader import load_profile

    try:
        profile = load_profile(ref)
    except ConsoleError as exc:
        if str(exc.message).startswith("no profile named"):
            raise UsageError(exc.message, hint=exc.hint) from None
        raise
    require_speculation(profile)
    return profile


# --------------------------------------------------------------------------- results


ServerPhase = Literal["pending", "starting", "measuring", "done", "failed"]


@dataclass
class SweepCell:
    """One category at one load on one server: its requests and the counters around them."""

    category: str
    load: int
    run: CategoryRun
    wall: float
    load_average: float | None = None

    @property
    def requests(self) -> list[RequestResult]:
        return self.run.requests

    @property
    def failed(self) -> int:
        return len(self.run.requests) - len(self.run.ok)

    @property
    def output_tokens(self) -> int:
        return self.run.output_tokens

    @property
    def tok_s(self) -> float | None:
        """Output tokens / wall time of the cell (all its requests, at its load)."""
        return self.output_tokens / self.wall if self.wall > 0 and self.output_tokens else None

    @property
    def acceptance_length(self) -> float | None:
        spec = self.run.spec
        return spec.mean_acceptance_length if spec is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "load": self.load,
            "wall_s": self.wall,
            "tok_s": self.tok_s,
            "load_average": self.load_average,
            **{k: v for k, v in self.run.to_dict().items() if k != "category"},
        }


@dataclass
class SweepServer:
    """One server of the sweep: the baseline (``k`` None) or one k."""

    k: int | None
    name: str
    phase: ServerPhase = "pending"
    url: str | None = None
    pid: int | None = None
    spawned: bool = False
    """``up`` got as far as starting a process or container (a start that fails
    before that, e.g. on a taken port, would fail the same way for every k)."""
    ready_s: float | None = None
    """Seconds from ``up`` to ready."""
    measured_k: int | None = None
    """k as the server's ``/metrics`` reports it (positions exported); None for no spec."""
    cells: list[SweepCell] = field(default_factory=list)
    error: str | None = None
    stopped: str | None = None
    """What ``down`` said (every process of the server ended, or what was left)."""

    @property
    def label(self) -> str:
        return "base" if self.k is None else f"k={self.k}"

    def cell(self, load: int, category: str) -> SweepCell | None:
        return next((c for c in self.cells if c.load == load and c.category == category), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "baseline": self.k is None,
            "name": self.name,
            "phase": self.phase,
            "url": self.url,
            "pid": self.pid,
            "ready_s": self.ready_s,
            "measured_k": self.measured_k,
            "error": self.error,
            "stopped": self.stopped,
            "cells": [c.to_dict() for c in self.cells],
        }


@dataclass
class SweepResult:
    profile: str
    method: str
    configured_k: int
    config: SweepConfig
    categories: list[str] = field(default_factory=list)
    servers: list[SweepServer] = field(default_factory=list)
    model: str | None = None
    version: str | None = None
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=utc_now)
    finished: str | None = None
    load_average_start: float | None = None
    load_average_end: float | None = None
    json_path: str | None = None

    @property
    def complete(self) -> bool:
        return self.finished is not None and all(s.phase == "done" for s in self.servers)

    @property
    def baseline(self) -> SweepServer | None:
        return next((s for s in self.servers if s.k is None), None)

    def server(self, k: int | None) -> SweepServer | None:
        return next((s for s in self.servers if s.k == k), None)

    def to_dict(self) -> dict[str, Any]:
        """The raw result; ``sweep_report.to_json`` adds the summary read from it."""
        return {
            "schema": SCHEMA,
            "profile": self.profile,
            "method": self.method,
            "configured_k": self.configured_k,
            "config": self.config.to_dict(),
            "categories": self.categories,
            "model": self.model,
            "version": self.version,
            "started": self.started,
            "finished": self.finished,
            "complete": self.complete,
            "load_average_start": self.load_average_start,
            "load_average_end": self.load_average_end,
            "notes": self.notes,
            "servers": [s.to_dict() for s in self.servers],
        }


def loadavg() -> float | None:
    """The host's 1-minute load average (other work on the box), where there is one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
