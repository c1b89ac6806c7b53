"""Shared by the screen tests: private state folders, waiting on conditions,
and the recorded (real) inputs the deterministic tests replay."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

DATA = Path(__file__).parent / "data"
DOWN_URL = "http://127.0.0.1:9"
"""Nothing listens here: a screen that probes it sees the server down at once."""


async def wait_until(
    pilot: Pilot, cond: Callable[[], object], *, timeout: float, what: str, step: float = 0.1
) -> None:
    """Let the app run until ``cond()`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(step)
