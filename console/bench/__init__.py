"""``vllm-console bench``: A/B a baseline against speculative decoding, headless.

Imports run one way: ``stats`` and ``client`` (no console imports) <- ``model``
(what a bench is and measured) <- ``report`` (summaries, table, JSON) <-
``runner`` (starts arms, runs scenarios). This package re-exports what the
CLI, the Bench screen and the ``bench/`` performance suite use.
"""

from console.bench.model import (
    CONCURRENT,
    SCHEMA,
    SEQUENTIAL,
    ArmInfo,
    ArmSpec,
    BenchConfig,
    BenchResult,
    Prompt,
    PromptPlan,
    RunRecord,
    Scenario,
    load_prompts,
)
from console.bench.report import render_table, summarize, to_json, write_json
from console.bench.runner import BenchEvent, BenchRunner, run_bench

__all__ = [
    "CONCURRENT",
    "SCHEMA",
    "SEQUENTIAL",
    "ArmInfo",
    "ArmSpec",
    "BenchConfig",
    "BenchEvent",
    "BenchResult",
    "BenchRunner",
    "Prompt",
    "PromptPlan",
    "RunRecord",
    "Scenario",
    "load_prompts",
    "render_table",
    "run_bench",
    "summarize",
    "to_json",
    "write_json",
]
