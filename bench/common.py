"""Helpers shared by the console benchmarks: a subprocess SSE source, display probes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from textual.await_complete import AwaitComplete
from textual.widgets import Markdown

from console.bench.stats import percentile


@contextlib.contextmanager
def sse_source(tokens: int, rate: float) -> Iterator[str]:
    """Start ``bench.sse_source`` in its own process; yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sse_source", "--tokens", str(tokens), "--rate", str(rate)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench.sse_source did not start (got {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class MarkdownProbe:
    """Notes when each Markdown widget's text has reached the screen.

    Wraps ``Markdown.append`` and ``Markdown.update``: once the widget has
    mounted the new blocks, a ``call_after_refresh`` callback records
    (monotonic time, length of the source shown). A token counts as displayed
    at the first refresh after which the source includes it.
    """

    marks: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    _saved: tuple[Callable[..., Any], Callable[..., Any]] | None = None

    def _wrap(self, original: Callable[..., AwaitComplete]) -> Callable[..., AwaitComplete]:
        probe = self

        def wrapped(widget: Markdown, markdown: str) -> AwaitComplete:
            inner = original(widget, markdown)
            length = len(widget.source)

            async def done() -> None:
                await inner
                widget.call_after_refresh(
                    lambda: probe.marks.setdefault(id(widget), []).append(
                        (time.monotonic(), length)
                    )
                )

            return AwaitComplete(done())

        return wrapped

    def __enter__(self) -> MarkdownProbe:
        self._saved = (Markdown.append, Markdown.update)
        Markdown.append = self._wrap(Markdown.append)  # type: ignore[method-assign]
        Markdown.update = self._wrap(Markdown.update)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._saved is not None
        Markdown.append, Markdown.update = self._saved  # type: ignore[method-assign]

    def display_times(self, text_lengths: list[int]) -> list[float | None]:
        """When the text up to each cumulative length was first on screen.

        Uses the widget that ended with the most text (the answer).
        """
        if not self.marks:
            return [None] * len(text_lengths)
        marks = max(self.marks.values(), key=lambda m: max(n for _, n in m))
        marks = sorted(marks)
        out: list[float | None] = []
        j = 0
        best = 0
        for need in text_lengths:
            while j < len(marks) and best < need:
                best = max(best, marks[j][1])
                j += 1
            out.append(marks[j - 1][0] if best >= need and j else None)
        return out


def lag_stats(lags_s: list[float]) -> dict[str, float | None]:
    """p50/p99/max in ms, and the same for the first and last quarter (the trend)."""
    ms = [x * 1000 for x in lags_s]
    q = max(1, len(ms) // 4)
    first, last = ms[:q], ms[-q:]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
        "first_quarter_p50_ms": percentile(first, 50),
        "first_quarter_p99_ms": percentile(first, 99),
        "last_quarter_p50_ms": percentile(last, 50),
        "last_quarter_p99_ms": percentile(last, 99),
    }
