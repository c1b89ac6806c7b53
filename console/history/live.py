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


class RunSamples:
    """The samples of the servers one bench run uses, kept for a replay afterwards.

    The session's own server is already recorded; any other arm's server gets
    a sampler of its own for the run's duration (stopped by :meth:`finish`).
    """

    def __init__(self, history: SessionHistory, session_url: str | None, api_key: str | None):
        import time

        self.history = history
        self.session_url = session_url
        self.api_key = api_key
        self.started = time.time()
        self.ended: float | None = None
        self.urls: list[str] = []
        self._own: list[tuple[Any, Callable[[], None]]] = []

    def watch(self, url: str) -> None:
        from console.metrics import base_url
        from console.sampler import MetricsSampler

        url = base_url(url)
        if url in self.urls or self.ended is not None:
            return
        self.urls.append(url)
        if self.session_url is not None and url == base_url(self.session_url):
            return
        sampler = MetricsSampler(url, api_key=self.api_key)
        self._own.append((sampler, self.history.attach(sampler)))
        sampler.start()

    def finish(self) -> None:
        import time

        self.ended = time.time()
        for sampler, unsubscribe in self._own:
            sampler.stop(timeout=0)
            unsubscribe()
        self._own.clear()

    def source(self, url: str) -> Any:
        """The run's span of ``url`` as a replay source (a second either side)."""
        from console.history.replay import ReplaySource

        if self.history.store is None:
            return None
        return ReplaySource.load(
            self.history.store,
            url,
            since=self.started - 1.0,
            until=(self.ended or self.started) + 1.0,
        )
