"""One exception type for everything the user must act on.

The CLI prints ``ConsoleError`` as a single ``error: ...`` line (no traceback)
and exits with its ``exit_code``; the TUI shows it as a notice. Messages name
the file, field or URL at fault and say what to do.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """A failure the user can fix; carries the exit status the CLI returns."""

    def __init__(self, message: str, *, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(ConsoleError):
    """Bad command-line usage: exit status 2, like argparse."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, exit_code=2, hint=hint)
