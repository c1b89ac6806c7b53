"""Recorded samples as frames the dashboard can be fed again (headless).

A replay rebuilds, for any cursor position, exactly what the live dashboard
had: its tracker (the last ``window_s`` of samples plus the first sample
since attach or the last restart) and its chart points. Feeding the very
samples it saw live through the same tracker and formulas is what makes the
replayed figures equal the live ones.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from console import metrics as M
from console.history.store import Event, HistoryStore
from console.sampler import ChartPoint


@dataclass(frozen=True)
class Frame:
    """One recorded scrape: the sample, or the error that replaced it."""

    ts: float
    sample: M.MetricsSample | None
    error: str | None = None


@dataclass
class ReplaySource:
    server: str
    frames: list[Frame]
    events: list[Event] = field(default_factory=list)
    model: str | None = None
    version: str | None = None
    _starts: list[int] = field(default_factory=list, repr=False)

    @classmethod
    def load(
        cls,
        store: HistoryStore,
        server: str,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> ReplaySource:
        rows = store.samples(server, since=since, until=until)
        pages = store.pages(r.page_id for r in rows if r.page_id is not None)
        frames: list[Frame] = []
        for r in rows:
            series = pages.get(r.page_id) if r.page_id is not None else None
            if r.ok and series is not None:
                frames.append(
                    Frame(r.ts, M.MetricsSample(timestamp=r.ts, series=series, url=server))
                )
            elif not r.ok:
                frames.append(Frame(r.ts, None, r.error or "scrape failed"))
        rec = next((s for s in store.servers() if s.name == server), None)
        return cls(
            server=server,
            frames=frames,
            events=store.events(server, since=since, until=until),
            model=rec.model if rec else None,
            version=rec.version if rec else None,
        )

    @property
    def start(self) -> float:
        return self.frames[0].ts

    @property
    def end(self) -> float:
        return self.frames[-1].ts

    def index_at(self, ts: float) -> int:
        """The last frame at or before ``ts`` (the first frame if ``ts`` is earlier)."""
        i = bisect.bisect_right([f.ts for f in self.frames], ts) - 1
        return max(0, min(i, len(self.frames) - 1))

    def event_frames(self) -> list[int]:
        """Frame index of each event (the frame at or after it), in order, deduplicated."""
        times = [f.ts for f in self.frames]
        out: list[int] = []
        for ev in self.events:
            i = min(bisect.bisect_left(times, ev.ts), len(times) - 1)
            if not out or out[-1] != i:
                out.append(i)
        return out

    def next_event(self, index: int) -> int | None:
        return next((i for i in self.event_frames() if i > index), None)

    def previous_event(self, index: int) -> int | None:
        return next((i for i in reversed(self.event_frames()) if i < index), None)

    def events_until(self, index: int) -> list[Event]:
        ts = self.frames[index].ts
        return [e for e in self.events if e.ts <= ts]

    def _segment_start(self, index: int) -> int:
        """The first good frame of the stretch the tracker would still remember at ``index``
        (the tracker starts afresh at a restart or a timestamp that went back)."""
        if len(self._starts) != len(self.frames):
            starts: list[int] = []
            start, last = 0, None
            for j, f in enumerate(self.frames):
                s = f.sample
                if s is not None:
                    if last is None or s.timestamp <= last.timestamp or M._was_reset(s, last):
                        start = j
                    last = s
                starts.append(start)
            self._starts = starts
        return self._starts[index]

    def tracker_frames(self, index: int, window_s: float) -> Iterator[Frame]:
        """The frames to feed a fresh tracker so it equals the live one at ``index``:
        the last good frame before the segment (so a restart is seen as one), the
        segment's first good frame, then from the last frame at or before the
        window's start up to ``index``."""
        first = self._segment_start(index)
        # The last good frame before a restart: the tracker remembers the reset.
        before = next((f for f in reversed(self.frames[:first]) if f.sample is not None), None)
        if before is not None:
            yield before
        # The tracker drops old samples only when a good one arrives.
        last_good = next(
            (f.ts for f in reversed(self.frames[: index + 1]) if f.sample is not None),
            self.frames[index].ts,
        )
        cutoff = last_good - window_s
        begin = first
        for j in range(first, index + 1):
            if self.frames[j].ts <= cutoff and self.frames[j].sample is not None:
                begin = j
        if begin > first:
            yield self.frames[first]
        yield from self.frames[begin : index + 1]

    def chart_points(self, index: int, span: float) -> list[ChartPoint]:
        """The chart's points within ``span`` s of ``index``, as the live sampler
        made them: tokens/s over the interval from the previous good frame, a gap
        for a failed poll, a marker where the counters reset."""
        ts = self.frames[index].ts
        begin = max(0, self.index_at(ts - span - 1) - 1)
        prev: M.MetricsSample | None = None
        for f in reversed(self.frames[:begin]):
            if f.sample is not None:
                prev = f.sample
                break
        out: list[ChartPoint] = []
        for f in self.frames[begin : index + 1]:
            recent = ts - f.ts <= span
            if f.sample is None:
                if recent:
                    out.append(ChartPoint(f.ts, None, None))
                continue
            if prev is not None and recent:
                fig = M.derive(f.sample, prev)
                if fig.window_s:
                    tp = fig.throughput
                    out.append(ChartPoint(f.ts, tp.generation_tokens_per_s, tp.prompt_tokens_per_s))
                elif fig.counter_reset:
                    out.append(ChartPoint(f.ts, None, None, reset=True))
            prev = f.sample
        return out
