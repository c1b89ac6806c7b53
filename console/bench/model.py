"""What a bench is and what it measured: configuration, arms, prompts, results.

Plain data with no I/O beyond reading prompt files, so the runner
(console.bench.runner), the report (console.bench.report), the CLI and the
Bench screen share one vocabulary without importing each other.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from console import metrics
from console.bench.client import RequestResult
from console.errors import ConsoleError, UsageError

SCHEMA = "vllm-console.bench/1"
SEQUENTIAL = "sequential"
CONCURRENT = "concurrent"


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BenchConfig:
    sequential: int = 3
    concurrent: int = 8
    max_tokens: int = 256
    repeats: int = 3
    warmup: int = 2
    warmup_max_tokens: int = 32
    """Warm-up answers only have to reach every code path once; kept short."""
    temperature: float = 0.0
    prompts: str | None = None
    """A JSONL prompt file; None uses the shipped chat prompts."""
    categories: bool = False
    """Bench by category (console.bench.categories) instead of the two scenarios."""
    dataset: str | None = None
    """The category prompts (JSONL with ``category``); None: the shipped set."""
    request_timeout: float = 900.0
    server_timeout: float = 900.0
    """How long a profile's server may take to become ready."""

    def check(self) -> None:
        if self.sequential < 0 or self.concurrent < 0:
            raise UsageError("--sequential and --concurrent must be 0 or more")
        if self.dataset is not None and not self.categories:
            raise UsageError("--dataset goes with --categories")
        if self.sequential == 0 and self.concurrent == 0 and not self.categories:
            raise UsageError("nothing to run: --sequential and --concurrent are both 0")
        if self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.repeats < 1:
            raise UsageError("--repeats must be at least 1")
        if self.warmup < 0:
            raise UsageError("--warmup must be 0 or more")
        if self.temperature < 0:
            raise UsageError("--temperature must be 0 or more")

    def scenarios(self) -> list[Scenario]:
        out: list[Scenario] = []
        if self.categories:
            return out  # one request at a time per category instead
        if self.sequential:
            out.append(Scenario(SEQUENTIAL, self.sequential, 1))
        if self.concurrent:
            out.append(Scenario(CONCURRENT, self.concurrent, self.concurrent))
        return out


@dataclass(frozen=True)
class Scenario:
    name: str
    requests: int
    concurrency: int

    @property
    def title(self) -> str:
        return f"{self.name.capitalize()} ×{self.requests}"


@dataclass(frozen=True)
class ArmSpec:
    """One side of the comparison: a running server (``url``) or a profile to start."""

    label: str  # "A" or "B"
    url: str | None = None
    profile: str | None = None
    port: int | None = None
    """Port override for a profile's server (so a bench doesn't collide with one running)."""

    @property
    def name(self) -> str:
        return self.profile or self.url or self.label


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    id: str
    kind: str
    messages: list[dict[str, Any]]


def load_prompts(path: str | Path | None = None) -> list[Prompt]:
    """Prompts from a JSONL file (``id``, ``kind``, ``messages`` or ``prompt`` per line).

    Without ``path``, the chat prompts shipped in ``console/data/prompts``.
    """
    if path is None:
        folder = resources.files("console") / "data" / "prompts"
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".jsonl")), key=lambda f: f.name
        )
        sources = [(f"console/data/prompts/{f.name}", f.read_text("utf-8")) for f in files]
    else:
        p = Path(path).expanduser()
        try:
            sources = [(str(p), p.read_text("utf-8"))]
        except OSError as exc:
            raise ConsoleError(f"cannot read prompt file {p}: {exc.strerror}") from exc
    prompts: list[Prompt] = []
    for where, text in sources:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConsoleError(f"{where}:{lineno}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ConsoleError(f"{where}:{lineno}: each line must be a JSON object")
            messages = row.get("messages")
            if messages is None and isinstance(row.get("prompt"), str):
                messages = [{"role": "user", "content": row["prompt"]}]
            if not isinstance(messages, list) or not messages:
                raise ConsoleError(
                    f"{where}:{lineno}: needs `messages` (a chat list) or `prompt` (a string)"
                )
            pid = str(row.get("id") or f"{Path(where).stem}-{lineno}")
            kind = row.get("category") or row.get("kind") or "chat"
            prompts.append(Prompt(id=pid, kind=str(kind), messages=messages))
    if not prompts:
        raise ConsoleError(f"no prompts in {path or 'console/data/prompts'}")
    return prompts


@dataclass(frozen=True)
class PromptPlan:
    """Which prompt each request gets; identical for both arms.

    Requests across scenarios and repeats get distinct prompts while the set
    lasts (so prefix caching can't favour later repeats); warm-up takes its
    prompts from the end of the list.
    """

    prompts: tuple[Prompt, ...]
    config: BenchConfig

    @property
    def needed(self) -> int:
        c = self.config
        return c.repeats * (c.sequential + c.concurrent) + c.warmup

    @property
    def reused(self) -> bool:
        return self.needed > len(self.prompts)

    def warmup(self) -> list[Prompt]:
        n = len(self.prompts)
        return [self.prompts[(n - 1 - i) % n] for i in range(self.config.warmup)]

    def for_run(self, scenario: Scenario, repeat: int) -> list[Prompt]:
        c = self.config
        offset = repeat * scenario.requests
        if scenario.name == CONCURRENT:
            offset += c.repeats * c.sequential
        n = len(self.prompts)
        return [self.prompts[(offset + i) % n] for i in range(scenario.requests)]


# --------------------------------------------------------------------------- results


@dataclass
class RunRecord:
    """One scenario run of one arm (one repeat)."""

    arm: str
    scenario: str
    repeat: int
    wall: float
    requests: list[RequestResult]
    spec: metrics.SpecDecodeStats | None = None
    load_average: float | None = None
    """The host's 1-minute load average at the end of the run (other work on the box)."""

    @property
    def failed(self) -> int:
        return sum(1 for r in self.requests if not r.ok)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens or 0 for r in self.requests if r.ok)

    @property
    def output_tok_s(self) -> float | None:
        return self.output_tokens / self.wall if self.wall > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "scenario": self.scenario,
            "repeat": self.repeat,
            "wall_s": self.wall,
            "requests": len(self.requests),
            "failed": self.failed,
            "output_tokens": self.output_tokens,
            "output_tok_s": self.output_tok_s,
            "spec_decode": self.spec.to_dict() if self.spec else None,
            "load_average": self.load_average,
            "per_request": [r.to_dict() for r in self.requests],
        }


@dataclass
class ArmInfo:
    label: str
    name: str
    url: str | None = None
    profile: str | None = None
    model: str | None = None
    version: str | None = None
    max_model_len: int | None = None
    kv_cache_tokens: int | None = None
    kv_max_concurrency: float | None = None
    kv_source: str | None = None
    spec_decode: bool | None = None
    num_speculative_tokens: int | None = None
    started_by_bench: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    config: BenchConfig
    arms: list[ArmInfo] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: utc_now())
    finished: str | None = None
    prompts_reused: bool = False
    categories: dict[str, list[Any]] = field(default_factory=dict)
    """Arm label -> its CategoryRun per category (bench by category)."""

    @property
    def complete(self) -> bool:
        return self.finished is not None

    def arm(self, label: str) -> ArmInfo | None:
        return next((a for a in self.arms if a.label == label), None)

    def runs_of(self, label: str, scenario: str) -> list[RunRecord]:
        return [r for r in self.runs if r.arm == label and r.scenario == scenario]


def utc_now() -> str:
    """Timestamps in results: UTC, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
