"""``bench --compare-vllm``: the console's client against ``vllm bench serve``.

Both send the same prompts (each as one user message), one request at a time,
with the same fixed output length (``ignore_eos``), greedy, to the same server;
each reports output throughput = output tokens / wall time of the run.
``vllm bench serve`` runs from the runtime's own vLLM through
``console/data/launchers/vllm_cli.py`` (the CPU build's ``vllm`` command cannot
start: reference/multi-node.md §4). Rounds alternate which goes first, so slow
drift on the box falls on both; the verdict is the median of the per-round
ratios console / vLLM.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from console.bench.client import ChatRequest, stream_chat
from console.bench.model import Prompt
from console.errors import ConsoleError

LAUNCHER = Path(__file__).resolve().parent.parent / "data" / "launchers" / "vllm_cli.py"
"""The same launcher the cluster runtime uses (console.runtime.cluster.LAUNCHER)."""
VLLM_TIMEOUT_S = 1800.0


@dataclass
class Round:
    index: int
    first: str  # "console" | "vllm"
    console_tok_s: float | None = None
    vllm_tok_s: float | None = None
    console_tokens: int = 0
    vllm_tokens: int = 0
    load_average: float | None = None

    @property
    def same_work(self) -> bool:
        """Both sides produced the same number of tokens (a failed request breaks it)."""
        return self.console_tokens == self.vllm_tokens > 0

    @property
    def ratio(self) -> float | None:
        if not self.console_tok_s or not self.vllm_tok_s or not self.same_work:
            return None  # a round whose sides did different work compares nothing
        return self.console_tok_s / self.vllm_tok_s


@dataclass
class Comparison:
    url: str
    model: str
    prompts: int
    max_tokens: int
    rounds: list[Round] = field(default_factory=list)

    @property
    def median_ratio(self) -> float | None:
        ratios = [r.ratio for r in self.rounds if r.ratio is not None]
        return statistics.median(ratios) if ratios else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "prompts": self.prompts,
            "max_tokens": self.max_tokens,
            "median_ratio": self.median_ratio,
            "rounds": [{**r.__dict__, "ratio": r.ratio} for r in self.rounds],
        }

    def render(self) -> str:
        lines = [
            f"console vs `vllm bench serve`: {self.prompts} prompts one at a time, "
            f"{self.max_tokens} tokens each (ignore_eos, greedy), {self.url}",
            f"{'round':>5} {'first':>8} {'console tok/s':>14} {'vllm tok/s':>11} "
            f"{'ratio':>6} {'load':>5}",
        ]
        for r in self.rounds:
            lines.append(
                f"{r.index + 1:>5} {r.first:>8} {_f(r.console_tok_s):>14} "
                f"{_f(r.vllm_tok_s):>11} {_f(r.ratio, '.3f'):>6} {_f(r.load_average):>5}"
                + (
                    ""
                    if r.same_work
                    else f"  not counted: {r.console_tokens} vs {r.vllm_tokens} tokens"
                )
            )
        med = self.median_ratio
        lines.append(
            "median ratio console/vllm: "
            + ("—" if med is None else f"{med:.3f} ({(med - 1) * 100:+.1f} %)")
        )
        return "\n".join(lines)


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "—" if value is None else format(value, fmt)


async def served_models(url: str) -> list[dict[str, Any]]:
    """The entries of ``/v1/models`` (empty when the server lists none or fails)."""
    from console.server_client import ServerClient

    async with ServerClient(url) as client:
        data = await client.models_json()
    rows = data.get("data") if isinstance(data, dict) else None
    return [m for m in rows or [] if isinstance(m, dict)]


def tokenizer_for(served: Sequence[dict[str, Any]], model: str) -> str:
    """The served model's local folder (``root`` in /v1/models) when this machine has
    it, else its name: what ``vllm bench serve --tokenizer`` needs."""
    root = next((m.get("root") for m in served if m.get("id") == model), None)
    return root if isinstance(root, str) and Path(root).is_dir() else model


def single_turn(prompts: Sequence[Prompt]) -> list[str]:
    """Each prompt's last user message: the one form both clients can send."""
    out = []
    for p in prompts:
        users = [m for m in p.messages if m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            out.append(users[-1]["content"])
    return out


async def _console_round(
    client: httpx.AsyncClient, url: str, model: str, texts: Sequence[str], max_tokens: int
) -> tuple[float | None, int]:
    t0 = time.perf_counter()
    tokens = 0
    for i, text in enumerate(texts):
        # the message exactly as `vllm bench serve` (openai-chat) sends it: a list of
        # content parts; a plain string can render to other tokens, and under
        # speculative decoding other tokens draft differently
        content = [{"type": "text", "text": text}]
        request = ChatRequest(model, [{"role": "user", "content": content}], max_tokens)
        result = await stream_chat(client, url, request, prompt_id=str(i))
        if not result.ok:
            raise ConsoleError(f"console request {i} failed: {result.error}")
        tokens += result.output_tokens or 0
    wall = time.perf_counter() - t0
    return (tokens / wall if wall > 0 else None), tokens


def vllm_bench_argv(
    python: str, url: str, model: str, tokenizer: str, dataset: Path, count: int,
    max_tokens: int, result_dir: Path,
) -> list[str]:  # fmt: skip
    """``vllm bench serve`` with the same workload (argv list, never a shell string)."""
    return [
        python, str(LAUNCHER), "bench", "serve",
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
        "--base-url", url, "--model", model, "--tokenizer", tokenizer,
        # ShareGPT-shaped JSON: read with json (the custom dataset needs pandas,
        # vllm[bench], which the CPU runtime lacks); sent as the user message as is
        "--dataset-name", "sharegpt", "--dataset-path", str(dataset),
        "--disable-shuffle", "--no-oversample",
        "--num-prompts", str(count), "--sharegpt-output-len", str(max_tokens),
        "--max-concurrency", "1", "--request-rate", "inf",
        "--ignore-eos", "--temperature", "0", "--num-warmups", "0", "--disable-tqdm",
        "--save-result", "--result-dir", str(result_dir), "--result-filename", "result.json",
    ]  # fmt: skip


def _vllm_round(argv: list[str], result_dir: Path) -> tuple[float | None, int]:
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=VLLM_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConsoleError(f"vllm bench serve did not finish in {VLLM_TIMEOUT_S:.0f} s") from None
    path = result_dir / "result.json"
    if done.returncode != 0 or not path.is_file():
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-8:])
        raise ConsoleError(f"vllm bench serve failed (exit {done.returncode}):\n{tail}")
    data = json.loads(path.read_text(encoding="utf-8"))
    path.unlink()
    tok_s = data.get("output_throughput")
    return (float(tok_s) if isinstance(tok_s, int | float) else None), int(
        data.get("total_output_tokens") or 0
    )


async def compare_with_vllm(
    url: str,
    model: str,
    prompts: Sequence[Prompt],
    *,
    python: str,
    tokenizer: str,
    max_tokens: int,
    rounds: int = 3,
    on_round: Callable[[Round], None] | None = None,
) -> Comparison:
    """Alternating rounds of the console's client and ``vllm bench serve``."""
    texts = single_turn(prompts)
    if not texts:
        raise ConsoleError("no single-turn prompt to compare with")
    result = Comparison(url, model, len(texts), max_tokens)
    with tempfile.TemporaryDirectory(prefix="vllm-console-compare-") as tmp:
        folder = Path(tmp)
        dataset = folder / "prompts.json"
        rows = [
            {"conversations": [{"from": "human", "value": t}, {"from": "gpt", "value": "-"}]}
            for t in texts
        ]
        dataset.write_text(json.dumps(rows), "utf-8")
        argv = vllm_bench_argv(
            python, url, model, tokenizer, dataset, len(texts), max_tokens, folder
        )
        async with httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=15.0)) as client:
            for i in range(rounds):
                first = "console" if i % 2 == 0 else "vllm"
                r = Round(i, first)
                for side in (first, "vllm" if first == "console" else "console"):
                    if side == "console":
                        r.console_tok_s, r.console_tokens = await _console_round(
                            client, url, model, texts, max_tokens
                        )
                    else:
                        r.vllm_tok_s, r.vllm_tokens = await asyncio.to_thread(
                            _vllm_round, argv, folder
                        )
                r.load_average = os.getloadavg()[0]
                result.rounds.append(r)
                if on_round is not None:
                    on_round(r)
    return result
