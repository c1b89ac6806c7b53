"""One server's ``/metrics``, sampled in the background, whoever is watching.

A :class:`MetricsSampler` polls one server URL from its own thread, once per
``poll_s``: the next poll starts only when the previous one finished (polls
never overlap), on a fixed cadence (a slow poll skips the ticks it missed
instead of bunching up). It is headless: the TUI's session owns one per
server URL and keeps it running while other screens show, so the dashboard's
history has no hole where it was hidden; ``monitor``, a fleet view or a
recorder can use the same class.

Each poll produces a :class:`Tick` with the figures already derived (in the
sampler's thread, not the UI's) and goes to every subscriber (a callback per
tick, called in the sampler thread: a UI posts it on as a message). The
chart history (:attr:`MetricsSampler.points`) records a failed poll as a gap,
never as a value, and marks counter resets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from console import metrics as M
from console import server_client as SC

POLL_S = 1.0
WINDOW_S = 60.0
HISTORY_S = 300.0
TIMEOUT_S = 5.0
STALL_AFTER_S = 3.0
"""No good sample for longer than this (a poll failing or still in flight): stalled."""


class ChartPoint(NamedTuple):
    """Tokens/s over the interval ending at ``t``; both None: a gap (no sample)."""

    t: float
    generation: float | None
    prompt: float | None
    reset: bool = False
    """The server's counters went down here (it restarted)."""

    @property
    def gap(self) -> bool:
        return self.generation is None and self.prompt is None


@dataclass(frozen=True)
class Tick:
    """One poll's outcome and the figures as of that poll."""

    url: str
    at: float
    """When the poll ended (wall clock)."""
    number: int
    """1 for the first poll of this sampler."""
    sample: M.MetricsSample | None
    """The page parsed by this poll; None when it failed."""
    error: Exception | None
    interval: M.Figures | None
    """Figures between this sample and the previous one (None on error)."""
    window: M.Figures | None
    """Figures over the last ``window_s`` at most (``window.window_s`` is the span)."""
    since_start: M.Figures | None
    """Figures since the sampler's first sample (or the last restart)."""
    lifetime: M.Figures | None
    """The server's lifetime counters as of the latest good sample."""
    info: M.ServerInfo | None
    counter_reset: bool
    """This poll found the counters lower than before: the server restarted."""
    reset_at: float | None
    """When the last counter reset was seen (None: never)."""
    latest_at: float | None
    """Timestamp of the latest good sample (kept across failed polls)."""
    down_since: float | None
    """When the current run of failed polls began (None while up)."""
    started_at: float = 0.0
    """When the sampler's first poll began (a stall before any good sample counts from it)."""
    point: ChartPoint | None = None
    """The chart point this poll added to the history (None: none, e.g. the first sample)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.sample is not None

    def age(self, now: float) -> float | None:
        """How old the latest good sample is at ``now``."""
        return None if self.latest_at is None else max(0.0, now - self.latest_at)

    def stalled_for(self, now: float, after_s: float = STALL_AFTER_S) -> float | None:
        """Seconds without a good sample (failing polls, or one still in flight),
        once over ``after_s``; None while samples keep coming. The last good
        figures stay shown meanwhile, with this as their caveat."""
        since = self.latest_at if self.latest_at is not None else self.started_at
        gap = max(0.0, now - since)
        return gap if gap > after_s else None


Subscriber = Callable[[Tick], None]
Fetch = Callable[[SC.SyncServerClient, float], str]


def fetch_metrics_text(client: SC.SyncServerClient, timeout: float) -> str:
    """The text of the server's ``/metrics`` page within ``timeout`` s and the
    client's size cap; MetricsError names the URL and the limit."""
    try:
        return client.metrics_page(dataclasses.replace(SC.METRICS, deadline_s=timeout))
    except SC.ServerError as exc:
        raise M.MetricsError(exc.message, url=exc.url, hint=exc.hint) from None


class MetricsSampler:
    """Polls one server's ``/metrics`` in a background thread; see the module doc."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        poll_s: float = POLL_S,
        window_s: float = WINDOW_S,
        history_s: float = HISTORY_S,
        timeout_s: float = TIMEOUT_S,
        fetch: Fetch = fetch_metrics_text,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = M.base_url(url)
        self.api_key = api_key
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.history_s = history_s
        self._fetch = fetch
        self._clock = clock
        self.tracker = M.MetricsTracker(window_s=window_s)
        """Owned by the sampler thread; read figures through :attr:`last` instead."""
        self.info: M.ServerInfo | None = None
        self.polls = 0
        self.last: Tick | None = None
        """The latest tick (None before the first poll ends)."""
        self._points: deque[ChartPoint] = deque()
        self._subscribers: list[Subscriber] = []
        self.subscriber_error: Exception | None = None
        """The last error a subscriber raised: it is kept here, and polling goes
        on (one faulty consumer must not end the figures of every other)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parser = M.PageParser()
        self._down_since: float | None = None
        self._started_at: float | None = None

    def __repr__(self) -> str:
        return f"MetricsSampler({self.url!r}, polls={self.polls}, running={self.running})"

    # -- subscribers -----------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(tick)`` after every poll (in the sampler's thread).
        Returns the function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def note_log_event(self, event: object) -> None:
        """Pass a server log event on to the tracker (KV capacity from the log)."""
        with self._lock:
            self.tracker.note_log_event(event)

    # -- history -----------------------------------------------------------------

    def points(self) -> list[ChartPoint]:
        """Tokens/s per interval over the last ``history_s``, gaps and resets marked."""
        with self._lock:
            return list(self._points)

    # -- running -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> MetricsSampler:
        """Start polling in a daemon thread (a no-op when already running)."""
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"metrics-sampler {self.url}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = TIMEOUT_S + 1.0) -> None:
        """Stop polling; waits for a poll in flight (bounded by its deadline)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wake(self) -> None:
        """Poll now instead of at the next tick (e.g. a server just came up)."""
        self._wake.set()

    def _run(self) -> None:
        with SC.SyncServerClient(self.url, api_key=self.api_key) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.poll_once(client)
                next_at += self.poll_s
                now = time.monotonic()
                if next_at < now:  # a slow poll: skip the missed ticks, never overlap
                    next_at = now
                if self._wake.wait(next_at - now):
                    self._wake.clear()
                    next_at = time.monotonic()

    # -- one poll ----------------------------------------------------------------

    def poll_once(self, client: SC.SyncServerClient) -> Tick:
        """Scrape once, update the figures and history, tell the subscribers."""
        if self._started_at is None:
            self._started_at = self._clock()
        sample: M.MetricsSample | None = None
        error: Exception | None = None
        try:
            sample = self._scrape(client)
        except M.MetricsError as exc:
            error = exc
        if sample is not None and self.info is None:
            with contextlib.suppress(M.MetricsError):
                self.info = M.fetch_server_info(
                    self.url, client=client, timeout=min(self.timeout_s, 3.0)
                )
        return self.record(sample, error)

    def record(
        self, sample: M.MetricsSample | None, error: Exception | None, *, at: float | None = None
    ) -> Tick:
        """Take one poll's outcome (a sample or the error): update the figures and
        history, tell the subscribers. Replays call this with recorded pages and
        the time each poll ended (``at``; default: now)."""
        with self._lock:
            tick = self._record(sample, error, self._clock() if at is None else at)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(tick)
            except Exception as exc:
                self.subscriber_error = exc
        return tick

    def _scrape(self, client: SC.SyncServerClient) -> M.MetricsSample:
        """Fetch and parse with this server's :class:`~console.metrics.PageParser`:
        label sets parsed once, and a page whose ``vllm:`` part equals the last
        one's (an idle server) not parsed again (the previous sample, re-stamped)."""
        text = self._fetch(client, self.timeout_s)
        return self._parser.parse(text, timestamp=self._clock(), url=M.metrics_url(self.url))

    def _record(self, sample: M.MetricsSample | None, error: Exception | None, now: float) -> Tick:
        """Feed the tracker and the history; called under the lock."""
        tracker = self.tracker
        self.polls += 1
        interval: M.Figures | None = None
        reset = False
        point: ChartPoint | None = None
        if sample is not None:
            resets = tracker.resets
            interval = tracker.feed(sample)
            reset = tracker.resets != resets
            self._down_since = None
            if interval.window_s:
                tp = interval.throughput
                point = ChartPoint(
                    sample.timestamp, tp.generation_tokens_per_s, tp.prompt_tokens_per_s
                )
            elif reset:
                point = ChartPoint(sample.timestamp, None, None, reset=True)
        else:
            tracker.feed_error(error or M.MetricsError("scrape failed"), at=now)
            if self._down_since is None:
                self._down_since = now
                self.info = None
            point = ChartPoint(now, None, None)
        if point is not None:
            self._points.append(point)
        while self._points and now - self._points[0].t > self.history_s:
            self._points.popleft()
        latest = tracker.latest
        tick = Tick(
            url=self.url,
            at=now,
            number=self.polls,
            sample=sample,
            error=error,
            interval=interval,
            window=tracker.window(now),
            since_start=tracker.since_start(now),
            lifetime=tracker.lifetime(now),
            info=self.info,
            counter_reset=reset,
            reset_at=tracker.reset_at,
            latest_at=latest.timestamp if latest is not None else None,
            down_since=self._down_since,
            started_at=self._started_at if self._started_at is not None else now,
            point=point,
        )
        self.last = tick
        return tick
