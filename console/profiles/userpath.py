"""``~`` in paths a profile names, without pathlib's surprises.

``Path("~nobody").expanduser()`` raises RuntimeError for an unknown user;
a profile typo must not crash the console, so such a path stays literal
(and is then reported as missing by whoever needs the file).
"""

from __future__ import annotations

from pathlib import Path


def expand_home(path: str | Path) -> Path:
    """``path`` with a leading ``~``/``~user`` expanded where that user exists."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)
