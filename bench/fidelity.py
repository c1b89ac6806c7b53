"""Fidelity: the console's bench client against vLLM's own ``vllm bench serve``.

This runs the product's own comparison (``vllm-console bench --compare-vllm``,
``console.bench.compare``): the same shipped chat prompts, one request at a
time, the same fixed output length (``ignore_eos``), greedy, on the same server;
rounds alternate who goes first and the verdict is the median of the per-round
ratios console / vLLM. A round whose two sides produced different token counts
compares nothing and is left out (the note says how many).

Goal: |console / vLLM − 1| ≤ 3%.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from bench.results import Goal, record
from console.bench.compare import compare_with_vllm, served_models, tokenizer_for
from console.bench.model import load_prompts
from console.runtime.provision import runtime_python

URL = os.environ.get("BENCH_VLLM_URL", "http://127.0.0.1:8100")
ROUNDS = int(os.environ.get("BENCH_FIDELITY_ROUNDS", "7"))
PROMPTS = 4
MAX_TOKENS = 48


async def run(url: str = URL, rounds: int = ROUNDS) -> dict[str, Any]:
    python = runtime_python("cpu")
    if not python.is_file():
        raise RuntimeError(
            f"no managed runtime at {python}: run `vllm-console runtime install cpu`"
        )
    served = await served_models(url)
    if not served:
        raise RuntimeError(f"no vLLM server with a model at {url}: set BENCH_VLLM_URL")
    model = served[0]["id"]
    result = await compare_with_vllm(
        url, model, load_prompts()[:PROMPTS], python=str(python),
        tokenizer=tokenizer_for(served, model), max_tokens=MAX_TOKENS, rounds=rounds,
    )  # fmt: skip
    return {**result.to_dict(), "load_average": os.getloadavg()}


async def main() -> dict[str, Any]:
    m = await run()
    ratio = m["median_ratio"]
    counted = sum(1 for r in m["rounds"] if r["ratio"] is not None)
    if ratio is None:
        raise RuntimeError("no round compared equal work (every round's token counts differed)")
    return record(
        "fidelity",
        title="Fidelity vs vllm bench serve",
        goals=[Goal("output tok/s, console vs vLLM", (ratio - 1) * 100, "%", "within", 3)],
        metrics=m,
        note=(
            f"`bench --compare-vllm` path: {m['prompts']} prompts one at a time, "
            f"{m['max_tokens']} tokens each (ignore_eos, greedy) against {m['url']}; median of "
            f"{counted}/{len(m['rounds'])} alternating rounds' ratios {ratio:.3f}; per-round "
            + ", ".join("—" if r["ratio"] is None else f"{r['ratio']:.3f}" for r in m["rounds"])
            + f"; load average {m['load_average'][0]:.1f} on {os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
