"""Samples in; history rows, events and alert hooks out. One recorder per server.

Whoever watches a server (``monitor``, ``record``, the TUI's sampler) hands
each scrape to :meth:`Recorder.feed` (or the failure to :meth:`feed_error`)
and each log line to :meth:`feed_log_line`. The recorder derives the
per-interval figures with the same :func:`console.metrics.derive` the
dashboard uses (a counter reset gives no rate rather than a negative or
spiked one), writes the row and its raw page, detects events, stores them and
calls the ``on_event`` hooks (notices, ``--on-alert``).

A history file that cannot be written (disk full, locked too long) does not
stop the watching: the error is kept in ``store_error`` for the caller to
show once, and the events still reach the hooks.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from console import logs as L
from console import metric_names as N
from console import metrics as M
from console.history.events import EventDetector
from console.history.store import Event, HistoryStore, SampleRow

if TYPE_CHECKING:
    from console.config import AlertSettings

EventHook = Callable[[Event], None]


def row_for(server: str, sample: M.MetricsSample, figures: M.Figures) -> SampleRow:
    """The stored figures of one sample (per-interval rates; lifetime counters)."""
    sd = figures.spec_decode
    win = sd.window if sd is not None else None
    return SampleRow(
        server=server,
        ts=sample.timestamp,
        ok=True,
        reset=figures.counter_reset,
        window_s=figures.window_s,
        running=figures.requests.running,
        waiting=figures.requests.waiting,
        kv_usage=figures.kv_cache.usage,
        gen_tps=figures.throughput.generation_tokens_per_s,
        prompt_tps=figures.throughput.prompt_tokens_per_s,
        preempted=figures.preemptions.window,
        accept_len=win.mean_acceptance_length if win is not None else None,
        accept_rate=win.draft_acceptance_rate if win is not None else None,
        gen_total=sample.total(N.GENERATION_TOKENS),
        prompt_total=sample.total(N.PROMPT_TOKENS),
        preempt_total=sample.total(N.PREEMPTIONS),
        requests_total=sample.total(N.REQUEST_SUCCESS),
        drafts_total=sample.total(N.SPEC_DRAFTS),
        draft_tokens_total=sample.total(N.SPEC_DRAFT_TOKENS),
        accepted_total=sample.total(N.SPEC_ACCEPTED),
        rejections_total=sample.total(N.ADMISSION_REJECTIONS),
    )


class Recorder:
    """Feeds one server's samples, failures and log lines into the history."""

    def __init__(
        self,
        server: str,
        *,
        url: str | None = None,
        store: HistoryStore | None = None,
        settings: AlertSettings | None = None,
        down_after: int | None = None,
        on_event: list[EventHook] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.url = url
        self.store = store
        self.detector = EventDetector(server, settings, down_after=down_after)
        self.hooks: list[EventHook] = list(on_event or [])
        self.clock = clock
        self.previous: M.MetricsSample | None = None
        self.last_figures: M.Figures | None = None
        self.samples = 0
        """Samples written (or offered, without a store)."""
        self.events: list[Event] = []
        """Every event this recorder produced, in order (bounded to the last 1,000)."""
        self.store_error: str | None = None
        self._parser = L.LogParser()
        self._lock = threading.RLock()
        """Samples and log lines may arrive from different threads (``record --profile``)."""
        self._spec_noted = False
        self._write(lambda s: s.note_server(server, url=url))

    def _write(self, op: Callable[[HistoryStore], None]) -> None:
        if self.store is None:
            return
        try:
            op(self.store)
        except sqlite3.Error as exc:
            self.store_error = f"{self.store.path}: cannot write history ({exc})"

    def _emit(self, events: list[Event]) -> list[Event]:
        for ev in events:
            self._write(lambda s, ev=ev: s.add_event(ev))
            self.events.append(ev)
            for hook in self.hooks:
                hook(ev)
        del self.events[:-1000]
        return events

    def feed(self, sample: M.MetricsSample) -> list[Event]:
        """One good scrape: row + page stored (durable on return), events detected."""
        with self._lock:
            return self._feed(sample)

    def _feed(self, sample: M.MetricsSample) -> list[Event]:
        figures = M.derive(sample, self.previous)
        row = row_for(self.server, sample, figures)
        self._write(lambda s: s.add_sample(row, sample.series))
        if not self._spec_noted and row.drafts_total is not None:
            self._spec_noted = True
            self._write(lambda s: s.note_server(self.server, spec_decode=True))
        self.previous = sample
        self.last_figures = figures
        self.samples += 1
        return self._emit(self.detector.on_sample(sample, figures))

    def feed_error(self, message: str, *, at: float | None = None) -> list[Event]:
        """A failed scrape: stored as a gap (never as zeros)."""
        ts = self.clock() if at is None else at
        row = SampleRow(server=self.server, ts=ts, ok=False, error=message)
        with self._lock:
            self._write(lambda s: s.add_sample(row))
            self.samples += 1
            return self._emit(self.detector.on_error(ts, message))

    def feed_log_line(self, line: str, *, at: float | None = None) -> list[Event]:
        """One server log line, through the one log parser."""
        ts = self.clock() if at is None else at
        with self._lock:
            return self._emit(self._log(ts, line))

    def _log(self, ts: float, line: str) -> list[Event]:
        out: list[Event] = []
        for ev in self._parser.feed(line):
            if isinstance(ev, L.ServerVersion) and (ev.version or ev.model):
                self._write(
                    lambda s, ev=ev: s.note_server(self.server, version=ev.version, model=ev.model)
                )
            out += self.detector.on_log(ts, ev)
        return out

    def note_info(self, info: M.ServerInfo) -> None:
        """What /version and /v1/models said (model and version in the server record)."""
        self._write(
            lambda s: s.note_server(
                self.server, url=self.url, model=info.model, version=info.version
            )
        )
