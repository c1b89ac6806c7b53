"""How an image's build provenance is shown, for the CLI and the TUI alike.

The build writes these labels (console/runtime/build.py); a running server's
``ServerStatus.image`` carries them back, so users see which build they run.
"""

from __future__ import annotations

from collections.abc import Mapping

PROVENANCE = (
    ("vllm-console.profile", "profile"),
    ("vllm-console.base", "base"),
    ("vllm-console.vllm-ref", "vLLM"),
    ("vllm-console.patches", "patches"),
    ("vllm-console.pip", "pip"),
    ("vllm-console.built-at", "built"),
    ("vllm-console.build-log", "build log"),
)
"""Image labels the console writes at build time, and their display names."""


def provenance_lines(labels: Mapping[str, str]) -> list[str]:
    """``name: value`` lines for the provenance labels present, in a fixed order."""
    return [f"{name}: {labels[key]}" for key, name in PROVENANCE if key in labels]
