"""What ``vllm serve`` accepts: asked of vLLM itself where one is installed,
else the shipped catalogue generated from it (``scripts/gen_vllm_catalogue.py``).
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console import paths
from console.profiles.userpath import expand_home

SHIPPED = Path(__file__).parent / "data" / "vllm_args.json"
PROBE = Path(__file__).parent / "vllm_probe.py"


@dataclass(frozen=True)
class Catalogue:
    """Option names (without ``--``) of one vLLM's serve parser."""

    vllm_version: str
    options: dict[str, dict[str, Any]]
    origin: str
    """Where it came from: a python path, or ``shipped``."""
    transformers_version: str | None = None

    @property
    def probed(self) -> bool:
        """Asked of the very vLLM that will run (not the shipped copy)."""
        return self.origin != "shipped"

    def knows(self, name: str) -> bool:
        if name in self.options:
            return True
        if name.startswith("no-"):
            info = self.options.get(name[3:])
            return bool(info) and info.get("action") == "BooleanOptionalAction"
        return False

    def info(self, name: str) -> dict[str, Any] | None:
        return self.options.get(name)


def _from_json(data: dict[str, Any], origin: str) -> Catalogue:
    return Catalogue(
        str(data.get("vllm_version", "?")),
        dict(data.get("options", {})),
        origin,
        data.get("transformers_version"),
    )


@functools.lru_cache(maxsize=1)
def shipped() -> Catalogue:
    return _from_json(json.loads(SHIPPED.read_text(encoding="utf-8")), "shipped")


def _cache_file(python: Path) -> Path:
    stat = python.resolve().stat()
    key = f"{python.resolve()}-{stat.st_mtime_ns}".replace("/", "_")
    return paths.state_dir() / "vllm-args" / f"{key}.json"


def is_cached(python: str) -> bool:
    """Whether ``probe(python)`` answers without starting vLLM (seconds vs a minute)."""
    exe = expand_home(python)
    try:
        return exe.is_file() and _cache_file(exe).is_file()
    except OSError:
        return False


@functools.lru_cache(maxsize=8)
def probe(python: str, timeout: float = 180.0) -> Catalogue | None:
    """Ask the vLLM importable from ``python`` (cached on disk per interpreter)."""
    exe = expand_home(python)
    if not exe.is_file():
        return None
    try:
        cache = _cache_file(exe)
        if cache.is_file():
            return _from_json(json.loads(cache.read_text(encoding="utf-8")), str(exe))
    except (OSError, ValueError):
        cache = None
    try:
        done = subprocess.run(
            [str(exe), str(PROBE)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        data = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("options"):
        return None
    if cache is not None:
        try:
            paths.ensure(cache.parent)
            cache.write_text(json.dumps(data), encoding="utf-8")
        except OSError:
            pass
    return _from_json(data, str(exe))


def is_append(name: str) -> bool:
    """Whether a list value is given as a repeated flag (argparse ``append``)."""
    info = shipped().info(name)
    return bool(info) and "Append" in str(info.get("action"))
