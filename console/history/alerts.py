"""``--on-alert CMD``: run a command for each alert, the event as JSON on stdin.

The command is an argv list (``shlex.split`` of the flag, or the config's
``alerts.on_alert`` list), never a shell string: profile or server text can
not become shell syntax. Each run has a deadline; it runs in a thread so a
slow hook never delays the next scrape. What the hook prints is not shown
(it may echo server text); a failure to start it or a non-zero exit is
reported once per run on stderr (``report``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence

from console.errors import UsageError
from console.history.events import is_alert
from console.history.store import Event, _strict

HOOK_TIMEOUT_S = 30.0


def parse_command(text: str, *, what: str = "--on-alert") -> list[str]:
    """``--on-alert`` text -> argv (shell-style quoting, no shell)."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{what} {text!r}: {exc}") from None
    if not argv:
        raise UsageError(f"{what}: empty command")
    return argv


def event_json(event: Event) -> str:
    return json.dumps(_strict(event.to_dict()), allow_nan=False, sort_keys=True)


class AlertCommand:
    """An ``on_event`` hook: alerts only; each in its own thread, with a deadline."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = HOOK_TIMEOUT_S,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.report = report
        self.threads: list[threading.Thread] = []

    def __call__(self, event: Event) -> None:
        if not is_alert(event):
            return
        t = threading.Thread(target=self._run, args=(event_json(event),), daemon=True)
        self.threads = [x for x in self.threads if x.is_alive()]
        self.threads.append(t)
        t.start()

    def _run(self, payload: str) -> None:
        name = self.argv[0]
        try:
            done = subprocess.run(
                self.argv,
                input=payload,
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            self._say(f"--on-alert: {name}: command not found")
        except subprocess.TimeoutExpired:
            self._say(f"--on-alert: {name}: still running after {self.timeout:.0f} s; killed")
        except OSError as exc:
            self._say(f"--on-alert: {name}: {exc.strerror}")
        else:
            if done.returncode != 0:
                self._say(f"--on-alert: {name} exited with status {done.returncode}")

    def _say(self, line: str) -> None:
        if self.report is not None:
            self.report(line)

    def wait(self, timeout: float | None = None) -> None:
        """Let running hooks finish (the CLI calls this before it exits)."""
        for t in list(self.threads):
            t.join(timeout)
