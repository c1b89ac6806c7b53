"""``vllm-console bench``: A/B a baseline against speculative decoding.

Progress goes to stderr as runs finish; the report table to stdout; with
``--json FILE`` the full result is rewritten after every run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.errors import ConsoleError, UsageError
from console.sanitize import clean
from console.validate import server_url

if TYPE_CHECKING:
    from console.bench.model import BenchConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark two servers or profiles (baseline vs speculative decoding)",
        description=(
            "Compare arm A (baseline) with arm B (e.g. speculative decoding): sequential and "
            "concurrent scenarios with fixed-length greedy answers to shipped chat prompts. "
            "Reports wall time, output tok/s, TTFT/TPOT, run-scoped spec-decode figures, "
            "KV capacity, the speedup B vs A and whether greedy answers match."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", type=server_url, help="arm A: a running server's base URL")
    src.add_argument(
        "--profiles",
        nargs=2,
        metavar=("A", "B"),
        help="two profiles; each server is started, warmed, measured and stopped in turn",
    )
    p.add_argument("--url-b", type=server_url, help="arm B: a second running server (with --url)")
    p.add_argument(
        "--ports",
        nargs=2,
        type=int,
        metavar=("PORT_A", "PORT_B"),
        help="serve the profiles on these ports instead of their own (with --profiles)",
    )
    p.add_argument(
        "--sequential", type=int, default=3, metavar="N", help="requests one at a time (default 3)"
    )
    p.add_argument(
        "--concurrent", type=int, default=8, metavar="M", help="requests at once (default 8)"
    )
    p.add_argument(
        "--max-tokens", type=int, default=256, metavar="T", help="fixed answer length (default 256)"
    )
    p.add_argument(
        "--repeats", type=int, default=3, metavar="R", help="repeats per scenario (default 3)"
    )
    p.add_argument(
        "--warmup", type=int, default=2, metavar="W", help="warm-up requests per arm (default 2)"
    )
    p.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    p.add_argument("--prompts", metavar="FILE", help="JSONL prompts instead of the shipped ones")
    p.add_argument(
        "--categories",
        action="store_true",
        help="bench by task category (coding, maths, extraction, summarising, translation, "
        "QA, writing, multi-turn): acceptance and speed-up per category, one request at a time",
    )
    p.add_argument(
        "--dataset",
        metavar="FILE.jsonl",
        help="your own category prompts (one JSON object per line: category, messages or "
        "prompt); implies --categories",
    )
    p.add_argument(
        "--compare-vllm",
        action="store_true",
        help="also run `vllm bench serve` (from the runtime's vLLM) on the same prompts, "
        "alternating rounds, and print both throughputs side by side",
    )
    p.add_argument(
        "--rounds", type=int, default=3, metavar="N", help="--compare-vllm rounds (default 3)"
    )
    p.add_argument("--model", help="served model name (default: the first of /v1/models)")
    p.add_argument(
        "--json", metavar="FILE", help="write the full result here, updated as runs finish"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    from console.commands.bench_sweep import add_sweep_arguments

    add_sweep_arguments(p)
    p.set_defaults(func=run)


def _arms(args: argparse.Namespace) -> list:
    from console.bench import ArmSpec

    if args.url_b and not args.url:
        raise UsageError("--url-b needs --url (arm A)")
    if args.ports and not args.profiles:
        raise UsageError("--ports goes with --profiles")
    if args.url:
        arms = [ArmSpec("A", url=args.url)]
        if args.url_b:
            arms.append(ArmSpec("B", url=args.url_b))
        return arms
    if args.profiles:
        ports = args.ports or (None, None)
        return [
            ArmSpec("A", profile=args.profiles[0], port=ports[0]),
            ArmSpec("B", profile=args.profiles[1], port=ports[1]),
        ]
    raise UsageError(
        "say what to benchmark: --url URL [--url-b URL] or --profiles A B",
        hint="e.g. vllm-console bench --profiles gemma3-270m-cpu gemma3-270m-cpu-ngram",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    if args.sweep_k is not None or args.sweep_profile is not None or args.sweep_from:
        from console.commands.bench_sweep import run_sweep_command

        return run_sweep_command(args)
    from console.commands.bench_sweep import check_not_sweep

    check_not_sweep(args)

    from console.bench import BenchConfig, BenchEvent, run_bench
    from console.bench.report import render_table

    config = BenchConfig(
        sequential=args.sequential,
        concurrent=args.concurrent,
        max_tokens=args.max_tokens,
        repeats=args.repeats,
        warmup=args.warmup,
        temperature=args.temperature,
        prompts=args.prompts,
        categories=args.categories or args.dataset is not None,
        dataset=args.dataset,
    )
    config.check()
    if args.compare_vllm:
        return _compare(args, config)
    arms = _arms(args)

    def progress(event: BenchEvent) -> None:
        if not args.quiet and event.kind != "done":
            print(clean(event.message), file=sys.stderr, flush=True)

    json_path = Path(args.json).expanduser() if args.json else None
    result = asyncio.run(
        run_bench(arms, config, on_event=progress, json_path=json_path, model=args.model)
    )
    print(clean(render_table(result)))  # model names and errors come from servers
    if json_path is not None and not args.quiet:
        print(f"result written to {json_path}", file=sys.stderr)
    failed = sum(r.failed for r in result.runs)
    return 1 if failed else 0


def _compare(args: argparse.Namespace, config: BenchConfig) -> int:
    """``--compare-vllm``: the console's client and ``vllm bench serve``, same prompts."""
    import asyncio
    import json

    from console import metrics
    from console.bench.categories import load_dataset
    from console.bench.compare import compare_with_vllm, served_models, tokenizer_for
    from console.bench.model import load_prompts
    from console.runtime.provision import runtime_python

    if not args.url or args.url_b or args.profiles:
        raise UsageError("--compare-vllm measures one running server: give --url URL only")
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    python = runtime_python("cpu")
    if not python.is_file():
        raise ConsoleError(
            f"--compare-vllm runs vLLM's own benchmark from the managed runtime: {python} "
            "is missing",
            hint="vllm-console runtime install cpu",
        )
    url = metrics.base_url(args.url)
    server = asyncio.run(served_models(url))
    model = args.model or (server[0]["id"] if server else None)
    if not model:
        raise ConsoleError(f"{url}/v1/models lists no model", hint="pass --model NAME")
    tokenizer = tokenizer_for(server, model)
    prompts = load_dataset(config.dataset) if config.categories else load_prompts(config.prompts)
    prompts = prompts[: max(config.sequential, 1)]

    def progress(r: object) -> None:
        if not args.quiet:
            print(
                f"round {r.index + 1}: console {r.console_tok_s:.2f} tok/s, "  # type: ignore[attr-defined]
                f"vllm {r.vllm_tok_s:.2f} tok/s",
                file=sys.stderr,
                flush=True,
            )  # type: ignore[attr-defined]

    result = asyncio.run(
        compare_with_vllm(
            url, model, prompts, python=str(python), tokenizer=tokenizer,
            max_tokens=config.max_tokens, rounds=args.rounds, on_round=progress,
        )
    )  # fmt: skip
    print(clean(result.render()))  # the model name comes from the server
    if args.json:
        path = Path(args.json).expanduser()
        path.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    return 0
