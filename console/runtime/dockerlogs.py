"""Following a container's log as lines, across restarts.

The engine's log stream ends whenever the container stops, and a restarted
container starts a new one. Following with timestamps lets us resume just
after the last line we saw, so a ``logs -f`` (or the TUI's log view) keeps
going through ``restart`` without repeating or losing lines.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import docker.errors

POLL_S = 0.5


def parse_engine_time(text: str) -> int | None:
    """Unix seconds of an engine timestamp (``2026-11-30T14:03:38.123456789Z``)."""
    stamp, _ = split_timestamp(f"{text} x")
    return stamp[0] if stamp else None


def split_timestamp(line: str) -> tuple[tuple[int, int] | None, str]:
    """``2026-11-30T14:03:38.1234Z text`` -> ((unix seconds, nanoseconds), text)."""
    stamp, sep, text = line.partition(" ")
    if not sep or not stamp.endswith("Z") or "T" not in stamp:
        return None, line
    whole, _, frac = stamp[:-1].partition(".")
    try:
        seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None, line
    nanos = int((frac + "000000000")[:9]) if frac.isdigit() else 0
    return (seconds, nanos), text


class LineSplitter:
    """Bytes chunks -> text lines; ``\\r`` (progress bars) also ends a line."""

    def __init__(self) -> None:
        self._rest = ""

    def feed(self, chunk: bytes | str) -> list[str]:
        text = chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk
        text = self._rest + text
        parts = text.replace("\r\n", "\n").split("\n")
        self._rest = parts.pop()
        lines: list[str] = []
        for part in parts:
            lines += [p for p in part.split("\r") if p.strip()] or ([""] if not part else [])
        return lines

    def flush(self) -> list[str]:
        rest, self._rest = self._rest, ""
        return [rest] if rest.strip() else []


class LogFollower:
    """The container's log lines from its start; with ``follow``, through restarts.

    Iteration ends when the container is removed, or (without ``follow``) at
    the end of what is logged so far. ``close()`` (from any thread) ends it
    promptly, cutting the engine stream. ``since`` (unix seconds) skips what
    was logged before; without ``restarts`` a follow ends when the container stops.
    """

    def __init__(
        self, container: Any, *, follow: bool, since: int | None = None, restarts: bool = True
    ) -> None:
        self.container = container
        self.follow = follow
        self.restarts = restarts
        self.since = since
        self._closed = threading.Event()
        self._stream: Any = None

    def close(self) -> None:
        self._closed.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def __iter__(self) -> Iterator[str]:
        last: tuple[int, int] | None = None
        since = self.since
        try:
            while not self._closed.is_set():
                if last is not None:
                    since = last[0]
                try:
                    for raw in self._one_stream(since):
                        stamp, text = split_timestamp(raw)
                        if stamp is not None:
                            if last is not None and stamp <= last:
                                continue  # seen before the restart
                            last = stamp
                        yield text
                except docker.errors.NotFound:
                    return
                except Exception:
                    if self._closed.is_set():
                        return
                    raise
                if not (self.follow and self.restarts and self._wait_for_restart()):
                    return
        finally:
            self.close()

    def _one_stream(self, since: int | None) -> Iterator[str]:
        """One engine log stream (it ends when the container stops), lines timestamped."""
        kwargs: dict[str, Any] = {"stream": True, "follow": self.follow, "timestamps": True}
        if since is not None:
            kwargs["since"] = since
        splitter = LineSplitter()
        self._stream = self.container.logs(**kwargs)
        if self._closed.is_set():
            self.close()
        for chunk in self._stream:
            yield from splitter.feed(chunk)
        yield from splitter.flush()

    def _wait_for_restart(self) -> bool:
        """After a stream ended: True once the container runs again, False if it is gone."""
        while not self._closed.is_set():
            try:
                self.container.reload()
            except docker.errors.NotFound:
                return False
            if self.container.status in ("running", "restarting"):
                return True
            self._closed.wait(POLL_S)
        return False


def follow_lines(container: Any, *, follow: bool, since: int | None = None) -> Iterator[str]:
    """Shorthand for iterating a :class:`LogFollower`."""
    yield from LogFollower(container, follow=follow, since=since)
