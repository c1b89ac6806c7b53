"""A real terminal (tmux, ``set-clipboard on``) in front of the CLI and the TUI
talking to the escape-laden server: the clipboard (tmux paste buffers) and the
pane title stay untouched.

A control run first prints the same sequences raw in the same kind of pane and
checks that tmux DOES take them (a buffer appears, the title changes), so the
checks that follow can fail. The tmux server is private (its own socket) and
killed at the end, whatever happened.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.hostile_server import (
    ANSWER_DELTAS,
    CLIPBOARD_MARK,
    TITLE_MARK,
    HostileServer,
)

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 100, 30


class Tmux:
    """One private tmux server (``-L``) with ``set-clipboard on``."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"trust-{uuid.uuid4().hex[:8]}"
        self.tmp = tmp

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=check,
        )

    def start(self, name: str, command: str) -> None:
        env = {
            **os.environ,
            "VLLM_CONSOLE_STATE_DIR": str(self.tmp / "state"),
            "VLLM_CONSOLE_CONFIG_DIR": str(self.tmp / "config"),
        }
        subprocess.run(
            [
                *("tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", name),
                *("-x", str(WIDTH), "-y", str(HEIGHT), "bash", "--noprofile", "--norc"),
            ],
            check=True,
            env=env,
            timeout=20,
        )
        self.run("set-option", "-g", "set-clipboard", "on")
        self.run("set-option", "-g", "allow-rename", "on")
        self.run("select-pane", "-t", name, "-T", "clean-title")
        self.run("send-keys", "-t", name, f"cd {shlex.quote(str(REPO))} && {command}", "Enter")

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name).stdout

    def wait_for(self, name: str, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen(name)
            if text in shown:
                return shown
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {text!r} in tmux:\n{shown}")

    def buffers(self) -> str:
        return self.run("list-buffers", check=False).stdout

    def title(self, name: str) -> str:
        return self.run("display-message", "-p", "-t", name, "#{pane_title}").stdout.strip()

    def kill(self) -> None:
        self.run("kill-server", check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (scripts/install-system.sh installs it)")
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_control_raw_sequences_do_reach_tmux(tmux: Tmux) -> None:
    """Proves the checks below can fail: unsanitised, tmux takes the clipboard and title."""
    raw = "".join(ANSWER_DELTAS).replace("\x9b", "")  # bash printf: no bare C1 byte needed
    script = tmux.tmp / "raw.py"
    script.write_text(f"import sys; sys.stdout.write({raw!r}); print(); print('RAW' + 'DONE')\n")
    tmux.start("raw", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    tmux.wait_for("raw", "RAWDONE", 30)
    assert CLIPBOARD_MARK in tmux.run("show-buffer", check=False).stdout
    assert TITLE_MARK in tmux.title("raw")


def test_cli_chat_in_tmux_leaves_clipboard_and_title(
    tmux: Tmux, hostile_server: HostileServer
) -> None:
    cmd = (
        f"{shlex.quote(sys.executable)} -m console chat --url {hostile_server.url('escape')} hi"
        "; echo CHAT''DONE"
    )
    tmux.start("cli", cmd)
    shown = tmux.wait_for("cli", "CHATDONE", 60)
    assert "OVERWRITTEN" in shown and "SAFE-LINE" in shown  # the CR did not overwrite
    assert tmux.buffers() == "", f"a paste buffer appeared: {tmux.buffers()!r}"
    assert tmux.title("cli") == "clean-title"
    assert TITLE_MARK not in shown


def test_tui_chat_in_tmux_leaves_clipboard_and_title(
    tmux: Tmux, hostile_server: HostileServer
) -> None:
    url = hostile_server.url("escape")
    tmux.start("tui", f"{shlex.quote(sys.executable)} -m console --url {url}; echo TUI''EXIT")
    tmux.wait_for("tui", "Screens", 60)  # the footer: the app is up
    deadline = time.monotonic() + 60
    while "evil-model @ " not in tmux.screen("tui"):  # chat status: model (OSC dropped) @ URL
        assert time.monotonic() < deadline, f"no chat screen:\n{tmux.screen('tui')}"
        tmux.run("send-keys", "-t", "tui", "3")  # again until the app takes keys
        time.sleep(1.0)
    tmux.run("send-keys", "-t", "tui", "-l", "hi")
    tmux.run("send-keys", "-t", "tui", "Enter")
    shown = tmux.wait_for("tui", "OVERWRITTEN", 60)
    assert "SAFE-LINE" in shown
    assert tmux.buffers() == "", f"a paste buffer appeared: {tmux.buffers()!r}"
    assert tmux.title("tui") == "clean-title"
    assert TITLE_MARK not in shown
    tmux.run("send-keys", "-t", "tui", "C-q")
    tmux.wait_for("tui", "TUIEXIT", 30)
    assert tmux.buffers() == "" and tmux.title("tui") == "clean-title"  # after exit too
