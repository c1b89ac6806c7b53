"""``bench --sweep-k ... --apply``: the chosen k as a new profile that extends the original.

Why a new profile and not an edit: the original (shipped or the user's) stays
what it was, the new one differs only in ``num_speculative_tokens`` (a
``extends:`` child carries nothing else), and its header comment records the
run that chose it (date, prompts, loads, the key figures, the results file),
so whoever reads it later knows where the number came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from console import paths
from console.bench.sweep_report import _where, best, figures, label
from console.errors import ConsoleError, UsageError
from console.validate import bad_name

if TYPE_CHECKING:
    from console.bench.sweep import SweepResult
    from console.profiles.schema import Profile

MARKER = "# Written by vllm-console bench --sweep-k --apply."
"""First line of every file this writes: only such a file is ever overwritten."""


def choose_k(result: SweepResult, k: int | None = None, load: int | None = None) -> tuple[int, str]:
    """The k to apply and why: ``k`` if given (it must have been measured), else the
    best overall at ``load`` (default: the highest load measured, the one served)."""
    loads = result.config.loads
    at = load if load is not None else loads[-1]
    if at not in loads:
        raise UsageError(f"--apply-load {at}: the sweep measured {', '.join(map(str, loads))}")
    if k is not None:
        server = result.server(k)
        if server is None or server.phase != "done":
            done = [s.k for s in result.servers if s.k is not None and s.phase == "done"]
            raise UsageError(
                f"--apply-k {k}: not measured in this sweep (measured: "
                f"{', '.join(map(str, done)) or 'none'})"
            )
        return k, f"k={k} chosen by hand (--apply-k)"
    top = best(figures(result, at))
    if top is None:
        raise ConsoleError(f"no server of the sweep was measured at {_where(at)}: nothing to apply")
    if top.k is None:
        raise ConsoleError(
            f"at {_where(at)} the baseline without speculation was fastest "
            f"({top.tok_s:.2f} tok/s): no k to apply",
            hint="serve the profile without speculative decoding, or pick one: --apply-k K",
        )
    return top.k, f"best overall tok/s at {_where(at)}"


def applied_name(original: str, k: int) -> str:
    name = f"{original[: 64 - len(f'-k{k}')]}-k{k}"
    why = bad_name(name)
    if why is not None:  # the original's name passed the same check; defensive
        raise ConsoleError(f"profile name {name!r} {why}")
    return name


def _parent_ref(original: Profile) -> str:
    """The original by name when its name finds it, else by its file's path."""
    from console.profiles.loader import find_file

    found = find_file(original.name)
    if original.source is None or (
        found is not None and found.resolve() == Path(original.source).resolve()
    ):
        return original.name
    return str(Path(original.source).resolve())


def header(result: SweepResult, k: int, why: str, argv: str | None = None) -> list[str]:
    """The comment recording the run: what was sent, at which loads, the key figures."""
    c = result.config
    when = result.finished or "cut off"
    lines = [
        MARKER,
        f"# Sweep {result.started} .. {when}: profile {result.profile} ({result.method}), "
        f"model {result.model or '?'}, vLLM {result.version or '?'}",
        f"# chosen: k={k}, {why}",
        f"# prompts: {c.per_category} per category at 1 stream"
        + (
            f", {max(c.concurrency, c.per_category)} at {c.concurrency} concurrent"
            if c.concurrency > 1
            else ""
        )
        + f"; categories {', '.join(result.categories)}; {c.max_tokens} tokens each; "
        f"temperature {c.temperature:g}",
        f"# loads: {', '.join(_where(ld) for ld in c.loads)}; load average "
        + ("?" if result.load_average_start is None else f"{result.load_average_start:.2f}")
        + " at the start",
    ]
    for load in c.loads:
        cells = []
        for f in figures(result, load):
            tok = "—" if f.tok_s is None else f"{f.tok_s:.2f}"
            cells.append(f"{label(f.k)} {tok}" + (f" ({f.speedup:.2f}x)" if f.speedup else ""))
        lines.append(f"# tok/s at {_where(load)}: " + " | ".join(cells))
    if argv:
        lines.append(f"# command: {argv}")
    if result.json_path:
        lines.append(f"# results: {result.json_path}")
    return lines


def write_applied(
    result: SweepResult,
    original: Profile,
    k: int,
    why: str,
    *,
    folder: Path | None = None,
    argv: str | None = None,
) -> Path:
    """Write ``<original>-k<k>.yaml`` in the user's profile folder; return its path."""
    name = applied_name(original.name, k)
    folder = folder if folder is not None else paths.user_profiles_dir()
    path = folder / f"{name}.yaml"
    if path.exists():
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        if first.strip() != MARKER:
            raise ConsoleError(
                f"{path} exists and was not written by a sweep; not overwriting it",
                hint="move it away, or apply another k (--apply-k)",
            )
    body = {
        "name": name,
        "extends": _parent_ref(original),
        "description": f"{original.name} with num_speculative_tokens {k}, chosen by a k-sweep "
        f"on {result.started[:10]}",
        "serve": {"speculative_config": {"num_speculative_tokens": k}},
    }
    text = "\n".join(header(result, k, why, argv)) + "\n" + yaml.safe_dump(body, sort_keys=False)
    paths.ensure(folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
