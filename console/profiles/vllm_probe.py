"""Dump ``vllm serve``'s options as JSON, run *inside* a Python that has vLLM.

Stdlib only: the console runs this file with another interpreter (a managed
runtime, an image's python) to learn which flags that vLLM accepts, instead of
keeping a hand-written list that drifts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

# Run as a script, this folder is sys.path[0]; keep the console's modules from
# shadowing vLLM's imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)


def _parser() -> argparse.ArgumentParser:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # vLLM before the launchers split
        from vllm.entrypoints.openai.cli_args import make_arg_parser
    return make_arg_parser(FlexibleArgumentParser())


def _jsonable(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def dump() -> dict[str, object]:
    import vllm

    with contextlib.redirect_stdout(io.StringIO()):
        parser = _parser()
    options: dict[str, dict[str, object]] = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest == "help":
            continue
        kind = type(action).__name__
        info: dict[str, object] = {
            "dest": action.dest,
            "action": kind,
            "nargs": _jsonable(action.nargs),
            "default": _jsonable(action.default),
        }
        if action.choices is not None:
            info["choices"] = [_jsonable(c) for c in action.choices]
        for option in longs:
            if option.startswith("--no-") and kind == "BooleanOptionalAction":
                continue
            options[option[2:]] = info
    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None
    return {
        "vllm_version": vllm.__version__,
        "transformers_version": transformers_version,
        "options": dict(sorted(options.items())),
    }


if __name__ == "__main__":
    json.dump(dump(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
