"""Small helpers the test modules share: a free port, and waiting on a
condition with a deadline (never a bare sleep as synchronisation)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, *, step: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
