"""``vllm-console bench --sweep-k 1,2,3,4,6 PROFILE``: which k, measured.

The profile is started once per k and once without speculation, each in turn
on its port, measured per category at one stream and at ``--concurrent``, and
stopped (``down``) before the next, even on a failed start or Ctrl-C.
Progress goes to stderr, the table to stdout, the results JSON is rewritten
after every cell (so a cut-off sweep keeps its finished ks), and ``--apply``
writes the chosen k as a profile that extends the original.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.errors import UsageError
from console.sanitize import clean

if TYPE_CHECKING:
    from console.bench.sweep import SweepResult
    from console.bench.sweep_run import SweepRunner
    from console.profiles.schema import Profile

SWEEP_ONLY = ("per_category", "category", "port", "apply", "apply_k", "apply_load", "plot")


def show_saved(args: argparse.Namespace) -> int:
    """``--sweep-from FILE...``: the table (and plot) of saved results, merged."""
    import json

    from console.bench.sweep_report import from_json, merge, render_plot, render_table
    from console.errors import ConsoleError

    results = []
    for name in args.sweep_from:
        path = Path(name).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConsoleError(f"{path}: cannot read a results file ({exc})") from None
        results.append(from_json(data, str(path)))
    result = merge(results) if len(results) > 1 else results[0]
    print(clean(render_table(result)))
    if args.plot:
        print(render_plot(result))
    if args.apply:
        from console.bench.sweep import load_sweep_profile

        _apply(args, result, load_sweep_profile(result.profile))
    return 0


def _apply(args: argparse.Namespace, result: SweepResult, profile: Profile) -> None:
    """``--apply``: the chosen k as a profile extending the swept one."""
    from console.bench.sweep_apply import choose_k, write_applied

    k, why = choose_k(result, args.apply_k, args.apply_load)
    argv = "vllm-console " + shlex.join(sys.argv[1:]) if sys.argv else None
    path = write_applied(result, profile, k, why, argv=argv)
    print(f"applied: k={k} ({why}) -> {path}")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "k sweep",
        "bench --sweep-k 1,2,3,4,6 PROFILE: start PROFILE once per k and once without "
        "speculation, run the same category prompts at one stream and at --concurrent, "
        "report tok/s, TPOT, acceptance length and speed-up per k (docs/sweep-k.md)",
    )
    g.add_argument("sweep_profile", nargs="?", metavar="PROFILE", help="the profile to sweep")
    g.add_argument(
        "--sweep-k", metavar="K,K,...", help="the draft lengths to measure, e.g. 1,2,3,4,6"
    )
    g.add_argument(
        "--per-category",
        type=int,
        metavar="N",
        help="prompts per category at one stream (default 3; small on a CPU box)",
    )
    g.add_argument(
        "--category",
        action="append",
        metavar="NAME",
        help="only this category (repeat for more; default: all of the dataset)",
    )
    g.add_argument("--port", type=int, help="serve every k on this port instead of the profile's")
    g.add_argument(
        "--apply",
        action="store_true",
        help="write the best k (overall, at the highest load) as a new profile extending PROFILE",
    )
    g.add_argument("--apply-k", type=int, metavar="K", help="with --apply: this k instead")
    g.add_argument(
        "--apply-load", type=int, metavar="N", help="with --apply: the best at this load (1 or M)"
    )
    g.add_argument("--plot", action="store_true", help="also print tok/s against k as a text plot")
    g.add_argument(
        "--sweep-from",
        action="append",
        metavar="FILE.json",
        help="print the table of saved sweep results instead of running one; several files "
        "of the same profile and settings merge (e.g. a cut-off sweep and one of the missing ks)",
    )


def _check(args: argparse.Namespace) -> None:
    if args.sweep_k is None:
        raise UsageError(
            f"PROFILE {args.sweep_profile!r} goes with --sweep-k",
            hint=f"vllm-console bench --sweep-k 1,2,3,4,6 {args.sweep_profile}",
        )
    if args.sweep_profile is None:
        raise UsageError(
            "--sweep-k needs the profile to sweep",
            hint="vllm-console bench --sweep-k 1,2,3,4,6 gemma3-270m-cpu-ngram",
        )
    clash = [
        flag
        for flag, given in (
            ("--url", args.url),
            ("--url-b", args.url_b),
            ("--profiles", args.profiles),
            ("--ports", args.ports),
            ("--compare-vllm", args.compare_vllm),
            ("--prompts", args.prompts),
            ("--categories", args.categories),
        )
        if given
    ]
    if clash:
        raise UsageError(f"--sweep-k starts its own servers per k: drop {', '.join(clash)}")
    if (args.apply_k is not None or args.apply_load is not None) and not args.apply:
        raise UsageError("--apply-k and --apply-load go with --apply")


def check_not_sweep(args: argparse.Namespace) -> None:
    """Sweep-only options without ``--sweep-k``: say so instead of ignoring them."""
    given = [f"--{n.replace('_', '-')}" for n in SWEEP_ONLY if getattr(args, n, None)]
    if given:
        raise UsageError(f"{', '.join(given)} go with --sweep-k K,K,... PROFILE")


def default_json_path(profile: str) -> Path:
    from console import paths

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.state_dir() / "bench" / f"sweep-k-{profile}-{stamp}.json"


async def _until_signal(runner: SweepRunner) -> SweepResult:
    """The sweep, cancelled by SIGTERM as by Ctrl-C: the server running then is ended
    (``down``) before the process exits; the default action would kill the console
    alone and leave the server behind."""
    import asyncio
    import contextlib
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed = False
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            installed = True
    try:
        return await runner.run()
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


def run_sweep_command(args: argparse.Namespace) -> int:
    import asyncio

    if args.sweep_from:
        if args.sweep_k or args.sweep_profile:
            raise UsageError("--sweep-from prints saved results: drop --sweep-k and PROFILE")
        return show_saved(args)

    from console.bench.sweep import SweepConfig, load_sweep_profile, parse_ks
    from console.bench.sweep_report import render_plot, render_table
    from console.bench.sweep_run import SweepRunner

    _check(args)
    config = SweepConfig(
        ks=parse_ks(args.sweep_k),
        concurrency=args.concurrent,
        per_category=args.per_category if args.per_category is not None else 3,
        categories=tuple(args.category) if args.category else None,
        max_tokens=args.max_tokens,
        warmup=args.warmup,
        temperature=args.temperature,
        dataset=args.dataset,
        port=args.port,
    )
    config.check()
    profile = load_sweep_profile(args.sweep_profile)
    json_path = Path(args.json).expanduser() if args.json else default_json_path(profile.name)

    def progress(event: object) -> None:
        if not args.quiet and event.kind != "done":  # type: ignore[attr-defined]
            print(clean(event.message), file=sys.stderr, flush=True)  # type: ignore[attr-defined]

    runner = SweepRunner(profile, config, on_event=progress, json_path=json_path, model=args.model)
    if not args.quiet:
        runs = ", ".join(["base", *(f"k={k}" for k in config.ks)])
        print(
            f"sweep of {profile.name}: {runs}; results in {json_path}", file=sys.stderr, flush=True
        )
    try:
        result = asyncio.run(_until_signal(runner))
    except KeyboardInterrupt:
        print(clean(render_table(runner.result)))
        print(f"interrupted; what finished is in {json_path}", file=sys.stderr)
        raise
    except asyncio.CancelledError:
        print(clean(render_table(runner.result)))
        print(f"terminated (SIGTERM); what finished is in {json_path}", file=sys.stderr)
        return 143
    print(clean(render_table(result)))  # model names and errors come from servers
    if args.plot:
        print(render_plot(result))
    if not args.quiet:
        print(f"results written to {json_path}", file=sys.stderr)
    failed = any(s.phase != "done" for s in result.servers) or any(
        c.failed for s in result.servers for c in s.cells
    )
    if args.apply:
        _apply(args, result, profile)
    return 1 if failed else 0
