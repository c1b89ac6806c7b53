"""Where the console keeps its files (XDG base directories).

Every location can be moved with an environment variable so tests and CI can
use private folders, and so a CI cache can be reused between runs:

- ``VLLM_CONSOLE_CONFIG_DIR`` (default ``$XDG_CONFIG_HOME/vllm-console``): user profiles.
- ``VLLM_CONSOLE_DATA_DIR`` (default ``$XDG_DATA_HOME/vllm-console``): runtimes, models.
- ``VLLM_CONSOLE_STATE_DIR`` (default ``$XDG_STATE_HOME/vllm-console``): server state,
  logs, build logs, transcripts, recordings.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "vllm-console"


def _xdg(var: str, override: str, default: str) -> Path:
    explicit = os.environ.get(override)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get(var) or str(Path.home() / default)
    return Path(base).expanduser() / APP


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", "VLLM_CONSOLE_CONFIG_DIR", ".config")


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", "VLLM_CONSOLE_DATA_DIR", ".local/share")


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", "VLLM_CONSOLE_STATE_DIR", ".local/state")


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def runtimes_dir() -> Path:
    return data_dir() / "runtimes"


def models_dir() -> Path:
    return data_dir() / "models"


def logs_dir() -> Path:
    return state_dir() / "logs"


def servers_dir() -> Path:
    """Per-profile records of servers the console started (PID, port, log)."""
    return state_dir() / "servers"


def builds_dir() -> Path:
    return state_dir() / "builds"


def transcripts_dir() -> Path:
    return state_dir() / "transcripts"


def recordings_dir() -> Path:
    return state_dir() / "recordings"


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
