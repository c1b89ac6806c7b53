"""The console's own settings file: ``config_dir()/config.yaml``.

One YAML file holds what is not part of a server profile: how long history is
kept, and the alert thresholds (``monitor --check``, ``--on-alert``, the
dashboard's notices). Every key is optional; a missing file means the
defaults. ``VLLM_CONSOLE_CONFIG`` points at another file.

Sections other than ``history`` and ``alerts`` are left to their own modules
(ignored here), so areas can add theirs without touching this one. Inside the
two sections an unknown key or a bad value is an error naming the file and
the field: a threshold that silently does nothing is worse than a refusal.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from console import paths
from console.errors import ConsoleError

CONFIG_ENV = "VLLM_CONSOLE_CONFIG"

_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|min|h|d|w)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` -> seconds (positive, finite).

    Raises ValueError naming ``what`` (the flag or field) on anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"{what}: {text!r} is not a duration")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"{what}: {text!r} is not a duration (examples: 90s, 15m, 2h, 7d)")
        seconds = float(m["n"]) * _UNIT_S[m["unit"]]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what}: {text!r} must be a positive duration")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistorySettings(_Strict):
    """Where samples go and how long they stay (docs/history.md)."""

    enabled: bool = True
    path: str | None = None
    """SQLite file; default ``state_dir()/history.sqlite3``."""
    max_age: float = 7 * 86400.0
    """Seconds (or "7d"): older samples and events are deleted."""
    max_size_mb: float = Field(default=256.0, gt=0)
    """The file is kept under this size by deleting the oldest samples first."""

    @field_validator("max_age", mode="before")
    @classmethod
    def _age(cls, v: Any) -> float:
        return parse_duration(v, what="max_age")

    def db_path(self) -> Path:
        if self.path:
            return Path(self.path).expanduser()
        return paths.state_dir() / "history.sqlite3"


class AlertSettings(_Strict):
    """Thresholds of the events that count as alerts; ``null`` switches one off."""

    kv_usage: float | None = Field(default=0.95, ge=0, le=1)
    """KV cache usage (0-1) at or above which ``kv_high`` fires."""
    waiting_growth: int | None = Field(default=8, ge=1)
    """``queue_growing`` when the waiting queue grew by this many over ``waiting_window``."""
    waiting_window: float = 30.0
    acceptance_drop: float | None = Field(default=0.5, gt=0, lt=1)
    """``acceptance_collapse`` when the window's accepted tokens per draft fall
    below this fraction of the baseline (since the recorder started)."""
    acceptance_window: float = 30.0
    acceptance_min_drafts: int = Field(default=20, ge=1)
    preemptions: int | None = Field(default=1, ge=1)
    """``preemption`` when at least this many requests were preempted in one interval."""
    admission_rejections: int | None = Field(default=1, ge=1)
    down_after: int = Field(default=3, ge=1)
    """Failed scrapes in a row before ``down`` (``monitor --check`` uses 1)."""
    repeat_after: float = 60.0
    """A condition that stays true is reported again after this long (preemptions, rejections)."""
    on_alert: list[str] | None = None
    """argv run for each alert, the event as JSON on stdin (no shell)."""

    @field_validator("waiting_window", "acceptance_window", "repeat_after", mode="before")
    @classmethod
    def _spans(cls, v: Any, info: Any) -> float:
        return parse_duration(v, what=info.field_name)

    @field_validator("on_alert", mode="before")
    @classmethod
    def _argv(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError("on_alert must be a list of arguments (argv), not a shell string")
        return v


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    history: HistorySettings = HistorySettings()
    alerts: AlertSettings = AlertSettings()


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    return Path(explicit).expanduser() if explicit else paths.config_dir() / "config.yaml"


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(path: Path | None = None) -> ConsoleConfig:
    """The settings, defaults where the file is silent; ConsoleError (exit 2) if broken."""
    import yaml

    where = path or config_path()
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path is not None:
            raise ConsoleError(f"{where}: no such config file", exit_code=2) from None
        return ConsoleConfig()
    except OSError as exc:
        raise ConsoleError(f"{where}: cannot read ({exc.strerror})", exit_code=2) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConsoleError(f"{where}: not valid YAML{at}", exit_code=2) from None
    if data is None:
        return ConsoleConfig()
    if not isinstance(data, dict):
        raise ConsoleError(f"{where}: the top level must be a mapping", exit_code=2)
    try:
        return ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise ConsoleError(
            f"{where}: {_field(err.get('loc', ()))}: {msg}",
            exit_code=2,
            hint="see docs/history.md for every setting and its default",
        ) from None
