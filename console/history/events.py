"""Server events and alerts, detected from samples and log lines.

One :class:`EventDetector` per watched server turns what the recorder sees
into :class:`~console.history.store.Event` records:

========================  ========  ===========================================
kind                      severity  when
========================  ========  ===========================================
``started``               info      the log shows a server process starting
``ready``                 info      the log says ``Application startup complete``
``up``                    info      scrapes succeed again after ``down``
``down``                  critical  ``down_after`` scrapes failed in a row
``failure``               critical  the log reports an error (the parser's Failure)
``restarted``             warning   counters went back: a restart (counter reset)
``kv_high``               warning   KV cache usage >= ``kv_usage``
``queue_growing``         warning   waiting requests grew by >= ``waiting_growth``
                                    within ``waiting_window``
``acceptance_collapse``   warning   spec decode: accepted tokens per draft over
                                    ``acceptance_window`` fell below
                                    ``acceptance_drop`` x the baseline
``preemption``            warning   >= ``preemptions`` requests preempted
``admission_rejected``    warning   the frontend turned requests away
``cleared``               info      a warning condition above ended
========================  ========  ===========================================

A condition fires once when it starts and ``cleared`` when it ends, so a long
overload is one event, not one per second. Counts (preemptions, rejections)
are summed and reported at most every ``repeat_after`` seconds.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from console import logs as L
from console import metric_names as N
from console.config import AlertSettings
from console.history.store import Event
from console.metrics import Figures, MetricsSample

INFO, WARNING, CRITICAL = "info", "warning", "critical"
ALERT_SEVERITIES = frozenset({WARNING, CRITICAL})


def _total(sample: MetricsSample, name: str) -> float | None:
    """A counter's total, or None when absent or non-finite: a NaN/Inf counter is
    unknown, never an increment."""
    value = sample.total(name)
    return value if value is not None and math.isfinite(value) else None


def is_alert(event: Event) -> bool:
    """Alerts are the events that call for attention (``monitor --check``, ``--on-alert``)."""
    return event.severity in ALERT_SEVERITIES


class _Counted:
    """A counter's increments, reported when they reach a threshold, at most every ``every`` s."""

    def __init__(self, threshold: int | None, every: float) -> None:
        self.threshold = threshold
        self.every = every
        self.pending = 0
        self.last_total: float | None = None
        self.last_report: float | None = None

    def feed(self, ts: float, total: float | None) -> int | None:
        """The count to report now, or None."""
        if total is None or self.threshold is None:
            self.last_total = total
            return None
        if self.last_total is not None and total >= self.last_total:
            self.pending += round(total - self.last_total)
        self.last_total = total
        due = self.last_report is None or ts - self.last_report >= self.every
        if self.pending >= self.threshold and due:
            n, self.pending, self.last_report = self.pending, 0, ts
            return n
        return None

    def reset(self) -> None:
        self.last_total = None


class EventDetector:
    """Stateful detection for one server; feed it in time order."""

    def __init__(
        self, server: str, settings: AlertSettings | None = None, *, down_after: int | None = None
    ) -> None:
        self.server = server
        self.settings = s = settings or AlertSettings()
        self.down_after = down_after or s.down_after
        self.up: bool | None = None
        self.failures = 0
        self.down_since: float | None = None
        self.active: set[str] = set()
        """Warning conditions currently true (kv_high, queue_growing, acceptance_collapse)."""
        self._waiting: deque[tuple[float, int]] = deque()
        self._spec: deque[tuple[float, float, float]] = deque()  # ts, drafts, accepted
        self._spec_base: tuple[float, float] | None = None
        self._preempt = _Counted(s.preemptions, s.repeat_after)
        self._rejects = _Counted(s.admission_rejections, s.repeat_after)
        self._log_phase: str | None = None

    def _event(self, ts: float, kind: str, severity: str, message: str, **data: Any) -> Event:
        return Event(self.server, ts, kind, severity, message, data)

    # -- samples -------------------------------------------------------------

    def on_sample(self, sample: MetricsSample, figures: Figures) -> list[Event]:
        ts = sample.timestamp
        out: list[Event] = []
        if self.up is False and self.down_since is not None:
            out.append(
                self._event(
                    ts, "up", INFO, f"answers again after {ts - self.down_since:.0f} s down"
                )
            )
        self.up, self.failures, self.down_since = True, 0, None
        if figures.counter_reset:
            out.append(
                self._event(
                    ts,
                    "restarted",
                    WARNING,
                    "counters went back to zero: the server restarted",
                    generation_tokens=_total(sample, N.GENERATION_TOKENS),
                )
            )
            self._restart()
        out += self._kv(ts, figures)
        out += self._queue(ts, figures)
        out += self._acceptance(ts, sample)
        n = self._preempt.feed(ts, _total(sample, N.PREEMPTIONS))
        if n:
            out.append(
                self._event(
                    ts, "preemption", WARNING, f"{n} request(s) preempted (KV cache full)", count=n
                )
            )
        n = self._rejects.feed(ts, _total(sample, N.ADMISSION_REJECTIONS))
        if n:
            out.append(
                self._event(
                    ts,
                    "admission_rejected",
                    WARNING,
                    f"{n} request(s) rejected at admission",
                    count=n,
                )
            )
        return out

    def _restart(self) -> None:
        self._waiting.clear()
        self._spec.clear()
        self._spec_base = None
        self._preempt.reset()
        self._rejects.reset()

    def _condition(
        self, ts: float, kind: str, on: bool, off: bool, message: str, **data: Any
    ) -> list[Event]:
        """Fire ``kind`` when ``on`` starts, ``cleared`` when ``off`` after it."""
        if on and kind not in self.active:
            self.active.add(kind)
            return [self._event(ts, kind, WARNING, message, **data)]
        if off and kind in self.active:
            self.active.discard(kind)
            return [self._event(ts, "cleared", INFO, f"{kind} ended", of=kind, **data)]
        return []

    def _kv(self, ts: float, figures: Figures) -> list[Event]:
        thr, usage = self.settings.kv_usage, figures.kv_cache.usage
        if thr is None or usage is None:
            return []
        return self._condition(
            ts,
            "kv_high",
            usage >= thr,
            usage < thr,
            f"KV cache {usage:.1%} used (threshold {thr:.1%})",
            usage=usage,
            threshold=thr,
        )

    def _queue(self, ts: float, figures: Figures) -> list[Event]:
        thr, waiting = self.settings.waiting_growth, figures.requests.waiting
        if thr is None or waiting is None:
            return []
        q = self._waiting
        q.append((ts, waiting))
        while q and ts - q[0][0] > self.settings.waiting_window:
            q.popleft()
        growth = waiting - min(w for _, w in q)
        return self._condition(
            ts,
            "queue_growing",
            growth >= thr,
            growth < thr,
            f"waiting queue grew by {growth} to {waiting} in {self.settings.waiting_window:.0f} s",
            waiting=waiting,
            growth=growth,
        )

    def _acceptance(self, ts: float, sample: MetricsSample) -> list[Event]:
        s = self.settings
        drafts, accepted = _total(sample, N.SPEC_DRAFTS), _total(sample, N.SPEC_ACCEPTED)
        if s.acceptance_drop is None or drafts is None or accepted is None:
            return []
        if self._spec_base is None:
            self._spec_base = (drafts, accepted)
        q = self._spec
        q.append((ts, drafts, accepted))
        while len(q) > 1 and ts - q[1][0] >= s.acceptance_window:
            q.popleft()
        d_w, a_w = drafts - q[0][1], accepted - q[0][2]
        d_b, a_b = drafts - self._spec_base[0], accepted - self._spec_base[1]
        if d_w < s.acceptance_min_drafts or d_b <= 0 or a_b <= 0:
            return []
        window, base = a_w / d_w, a_b / d_b
        ratio = window / base
        return self._condition(
            ts,
            "acceptance_collapse",
            ratio < s.acceptance_drop,
            ratio >= s.acceptance_drop,
            f"mean acceptance length {1 + window:.2f} over {s.acceptance_window:.0f} s, "
            f"baseline {1 + base:.2f}",
            window_accept_len=1 + window,
            baseline_accept_len=1 + base,
        )

    # -- failures ------------------------------------------------------------

    def on_error(self, ts: float, message: str) -> list[Event]:
        self.failures += 1
        if self.down_since is None:
            self.down_since = ts
        if self.failures >= self.down_after and self.up is not False:
            self.up = False
            return [self._event(ts, "down", CRITICAL, f"not answering: {message}", error=message)]
        return []

    # -- log lines -----------------------------------------------------------

    def on_log(self, ts: float, event: L.LogEvent) -> list[Event]:
        if isinstance(event, L.ServerVersion | L.LoadingModel | L.Architecture):
            if self._log_phase != "starting":
                self._log_phase = "starting"
                what = getattr(event, "version", None)
                return [
                    self._event(
                        ts, "started", INFO, "server starting" + (f" (vLLM {what})" if what else "")
                    )
                ]
        elif isinstance(event, L.Ready):
            self._log_phase = "ready"
            return [self._event(ts, "ready", INFO, "server ready (application startup complete)")]
        elif isinstance(event, L.Failure):
            self._log_phase = "failed"
            return [
                self._event(
                    ts,
                    "failure",
                    CRITICAL,
                    event.message,
                    cause=event.cause,
                    exception=event.exception,
                )
            ]
        return []
