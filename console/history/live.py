"""The TUI's history: a recorder on every sampler the session runs.

The session owns one :class:`console.sampler.MetricsSampler` per server URL
(sampling belongs to the session, not to a screen). :class:`SessionHistory`
subscribes a :class:`~console.history.recorder.Recorder` to each, so whatever
screen shows, every poll goes to the history file and through the event
detector. Subscribers run in the sampler's thread: the SQLite commit never
blocks the UI. Events go to ``on_event`` (the App turns them into notices)
and are kept per URL for the Events panel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from console.history.recorder import Recorder
from console.history.store import Event, HistoryStore


class SessionHistory:
    """Recorders for the session's samplers, sharing one history file."""

    def __init__(
        self,
        store: HistoryStore | None,
        *,
        settings: Any = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_event = on_event
        self.recorders: dict[str, Recorder] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, on_event: Callable[[Event], None] | None = None) -> SessionHistory:
        """The configured history file (None when disabled or unusable: the console
        still runs, without history)."""
        from console.config import load_config
        from console.errors import ConsoleError

        try:
            config = load_config()
        except ConsoleError:
            return cls(None, on_event=on_event)
        store = None
        if config.history.enabled:
            h = config.history
            try:
                store = HistoryStore(
                    h.db_path(), max_age_s=h.max_age, max_bytes=int(h.max_size_mb * 2**20)
                )
            except ConsoleError:
                store = None
        return cls(store, settings=config.alerts, on_event=on_event)

    def recorder(self, url: str) -> Recorder:
        with self._lock:
            rec = self.recorders.get(url)
            if rec is None:
                hooks = [self.on_event] if self.on_event is not None else []
                rec = Recorder(
                    url, url=url, store=self.store, settings=self.settings, on_event=hooks
                )
                self.recorders[url] = rec
            return rec

    def attach(self, sampler: Any) -> Callable[[], None]:
        """Record every tick of ``sampler``; returns the unsubscribe function."""
        rec = self.recorder(sampler.url)
        return sampler.subscribe(lambda tick: self.take(rec, tick))

    @staticmethod
    def take(rec: Recorder, tick: Any) -> None:
        """One sampler tick into the recorder (a sample, or the error as a gap)."""
        if tick.sample is not None and tick.error is None:
            rec.feed(tick.sample)
            if tick.info is not None and not getattr(rec, "_info_noted", False):
                rec.note_info(tick.info)
                rec._info_noted = True  # type: ignore[attr-defined]
        else:
            rec.feed_error(str(tick.error or "scrape failed"), at=tick.at)

    def events(self, url: str) -> list[Event]:
        rec = self.recorders.get(url)
        return list(rec.events) if rec is not None else []

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
