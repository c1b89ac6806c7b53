"""A progress bar per set-up step in the terminal (``demo``, ``up``, ``model fetch``).

The steps of ``console.runtime.prepare`` run at the same time, so their lines
would interleave; on a terminal each gets a bar with its latest line instead,
and only the console's own lines (``runtime cpu: ...``, ``model ...: ...``)
are printed above the bars. pip's and the converter's full output is in the
provision logs (their paths are printed on failure). Not a terminal (a pipe,
CI): tagged lines, as ``prepare.View`` writes them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from console.runtime import prepare
from console.runtime.provision import Progress
from console.sanitize import clean_log_line


class TerminalView(prepare.View):
    """rich's Progress on stderr: one task (bar, percentage, elapsed, latest line) per step."""

    def __init__(self, progress: Progress | None) -> None:
        super().__init__(progress)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import (
            Progress as Bars,
        )

        self.bars = Bars(
            TextColumn("{task.description:<22}"),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
            refresh_per_second=4,
        )
        self.tasks: dict[str, int] = {}

    def start(self, steps: Sequence[prepare.Step]) -> None:
        for step in steps:
            self.tasks[step.name] = self.bars.add_task(step.name, total=1.0, status="starting")
        self.bars.start()

    def _status(self, text: str) -> str:
        width = max(10, self.bars.console.width - 60)
        text = clean_log_line(text)
        return text if len(text) <= width else text[: width - 1] + "…"

    def line(self, step: prepare.Step, text: str) -> None:
        self.bars.update(
            self.tasks[step.name], completed=step.meter.fraction, status=self._status(text)
        )
        if text.startswith(step.name):  # the console's own lines; pip's go to the log
            self.bars.console.print(f"  {clean_log_line(text)}", markup=False, highlight=False)

    def finish(self, step: prepare.Step) -> None:
        if step.error is None:
            status, done = f"done in {step.seconds:.0f} s", 1.0
        elif isinstance(step.error, prepare.provision.Stopped):
            status, done = "stopped", step.meter.fraction
        else:
            status, done = "failed", step.meter.fraction
        self.bars.update(self.tasks[step.name], completed=done, status=status)

    def close(self) -> None:
        self.bars.stop()


@contextlib.contextmanager
def terminal_bars() -> Iterator[None]:
    """Bars when stderr is a terminal; the default tagged lines otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    with prepare.view_factory(TerminalView):
        yield
