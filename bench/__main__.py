"""Run the console's performance benchmarks: ``python -m bench [NAME ...]``.

Without names, all of them in turn; each writes its entry to
bench/results.json and RESULTS.md as it finishes. Exit status 1 when a
benchmark could not run (the reason is printed), 0 otherwise — a goal that
is missed is a measured result, listed in RESULTS.md, not a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
import traceback

from bench.results import RESULTS_MD, load

BENCHES: dict[str, tuple[str, str, str]] = {
    # name: (module, results key, what)
    "chat": (
        "bench.chat_pane",
        "chat_pane",
        "chat pane: 4,000 tokens at 1,000 tok/s vs naive; 20,000 at 5,000 tok/s",
    ),
    "log": ("bench.log_view", "log_view", "log view: 100,000 lines, key round trip, memory"),
    "dashboard": (
        "bench.dashboard_idle",
        "dashboard_idle",
        "dashboard idle CPU at 1 Hz over 60 s (needs a server)",
    ),
    "dashboard-load": (
        "bench.dashboard_load",
        "dashboard_load",
        "dashboard CPU at 1 Hz with a loaded (n-gram) server (needs a server)",
    ),
    "scrape": (
        "bench.bench_scrape",
        "scrape",
        "metrics scrape+derive cost and 1 Hz monitor CPU (live parts need a server)",
    ),
    "peers": (
        "bench.peers",
        "peers",
        "CPU of vllm-htop/vllm-top/vllm-dash vs ours, same loaded server (needs a server, tmux)",
    ),
    "startup": ("bench.startup", "startup", "startup to first frame vs a hello-world Textual app"),
    "fidelity": (
        "bench.fidelity",
        "fidelity",
        "console bench vs vllm bench serve (needs a server)",
    ),
    "firstrun": (
        "bench.first_run",
        "firstrun",
        "fresh clone `make demo` to the dashboard: cold/warm pip cache, second run (~15 min)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHES)}",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="leave NAME out (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, (_mod, _key, text) in BENCHES.items():
            print(f"{name:10} {text}")
        return 0
    unknown = [n for n in [*args.names, *args.skip] if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    failed = []
    for name in [n for n in args.names or list(BENCHES) if n not in args.skip]:
        module, key, text = BENCHES[name]
        print(f"== {name}: {text}", flush=True)
        t0 = time.monotonic()
        try:
            bench_main = importlib.import_module(module).main
            # A main taking argv (its own command line) gets none of ours.
            takes_argv = bool(inspect.signature(bench_main).parameters)
            entry = bench_main([]) if takes_argv else bench_main()
            if inspect.iscoroutine(entry):
                entry = asyncio.run(entry)
            if not isinstance(entry, dict):  # it recorded its entry itself
                entry = load()[key]
        except Exception as exc:
            traceback.print_exc()
            print(f"!! {name} could not run: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        for goal in entry["goals"]:
            met = {True: "met", False: "MISSED", None: "n/a"}[goal["met"]]
            value = "–" if goal["value"] is None else f"{goal['value']:.3g}"
            print(
                f"   {goal['name']}: {value} {goal['unit']} (goal {goal['op']} "
                f"{goal['bound']:g} {goal['unit']}): {met}"
            )
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"results: {RESULTS_MD}")
    if failed:
        print(f"could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
