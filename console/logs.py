"""vLLM server log lines -> typed events (startup progress, stats, failures).

Screens never parse text: the server screen, the dashboard and
``vllm-console logs --parse`` all read these events. Formats follow
reference/vllm.md §2 (v0.10 to v0.33): the ``(Proc pid=N)`` prefix is optional,
ANSI colour is stripped, the KV size arrives on one line (v0.28+) or two
(earlier), and a traceback becomes one ``Failure`` carrying the line a user
needs (the exception), not the whole stack.

``parse_line`` is stateless; ``LogParser`` adds what needs more than one line
(two-line KV size, the version logo, tracebacks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PREFIX = re.compile(
    r"(?:\((?P<proc>[\w.-]+) pid=(?P<pid>\d+)\)\s+)?"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
    r"(?P<ts>\d{2}-\d{2} \d{2}:\d{2}:\d{2})\s+"
    r"\[(?P<src>[^\]]+?):(?P<lineno>\d+)\] ?(?P<msg>.*)$"
)
UVICORN = re.compile(
    r"^(?:\((?P<proc>[\w.-]+) pid=(?P<pid>\d+)\)\s+)?"
    r"(?P<level>INFO|WARNING|ERROR|DEBUG|CRITICAL):\s+(?P<msg>.*)$"
)
BARE_PROC = re.compile(r"^\((?P<proc>[\w.-]+) pid=(?P<pid>\d+)\) ?(?P<msg>.*)$")

ENGINE_STATS = re.compile(
    r"(?:Engine (?P<engine>\d+)|(?P<n_engines>\d+) Engines Aggregated): "
    r"Avg prompt throughput: (?P<prompt_tps>[\d.]+) tokens/s, "
    r"Avg generation throughput: (?P<gen_tps>[\d.]+) tokens/s, "
    r"Running: (?P<running>\d+) reqs, Waiting: (?P<waiting>\d+) reqs"
    r"(?:, Deferred: (?P<deferred>\d+) reqs)?"
    r"(?:, KV fetch: (?P<kvf_wait>\d+) waiting to start, (?P<kvf_prog>\d+) in progress, "
    r"(?P<kvf_done>\d+) completed waiting)?"
    r"(?:, Preemptions: (?P<preemptions>\d+))?"
    r", (?P<kv_dev>[A-Z]+(?: \+ host)?) KV cache usage: (?P<kv_pct>[\d.]+)%"
    r"(?:, Prefix cache hit rate: (?P<prefix_pct>[\d.]+|nan)%)?"
    r"(?:, Corrupted: (?P<corrupted>\d+) reqs)?"
    r"(?:, External prefix cache hit rate: (?P<ext_prefix_pct>[\d.]+|nan)%)?"
    r"(?:, MM cache hit rate: (?P<mm_pct>[\d.]+|nan)%)?"
)
SPEC_NEW = re.compile(
    r"SpecDecoding metrics: Mean acceptance length: (?P<mal>[\d.]+|nan|inf), "
    r"Accepted throughput: (?P<acc_tps>[\d.]+) tokens/s, "
    r"Drafted throughput: (?P<draft_tps>[\d.]+) tokens/s, "
    r"Accepted: (?P<accepted>\d+) tokens, Drafted: (?P<drafted>\d+) tokens, "
    r"Per-position acceptance rate: (?P<per_pos>[\d.,\s na]*?), "
    r"Avg Draft acceptance rate: (?P<rate>[\d.]+|nan)%"
)
SPEC_OLD = re.compile(
    r"SpecDecoding metrics: Draft acceptance rate: (?P<rate>[\d.]+|nan)%, "
    r"Mean acceptance length: (?P<mal>[\d.]+|nan|inf), "
    r"Accepted: (?P<accepted>\d+) tokens, Drafted: (?P<drafted>\d+) tokens, "
    r"Per-position acceptance rate: (?P<per_pos>[\d.,\s na]*)$"
)
RE_KV_TOKENS = re.compile(
    r"(?:(?P<dev>[A-Z]+(?: \+ host)?) )?KV cache size: (?P<tokens>[\d,]+) tokens"
)
RE_MAX_CONC = re.compile(
    r"Maximum concurrency for (?P<len>[\d,]+) tokens per request: (?P<x>[\d.]+)x"
)
RE_KV_MEM = re.compile(r"Available KV cache memory: (?P<gib>[\d.]+) GiB")
RE_KV_MEM_CPU = re.compile(r"Explicitly set \((?P<gib>[\d.]+)/[\d.]+\) GiB for KV cache")
RE_LOAD_START = re.compile(r"Starting to load model (?P<model>\S+?)\.\.\.")
RE_WEIGHTS = re.compile(r"Loading weights took (?P<s>[\d.]+) seconds")
RE_MODEL_LOAD = re.compile(
    r"Model loading took (?P<gib>[\d.]+) GiB(?: memory)? and (?P<s>[\d.]+) seconds"
)
RE_GRAPH_DONE = re.compile(
    r"Graph capturing finished in (?P<s>[\d.]+) secs?, took (?P<gib>[\d.]+) GiB"
)
RE_INIT_ENGINE = re.compile(
    r"init engine \(profile, create kv cache, warmup model\) took (?P<s>[\d.]+) (?:s|seconds)"
    r"(?: \(compilation: (?P<comp>[\d.]+) s)?"
)
RE_LISTEN = re.compile(r"Starting vLLM (?:API )?server(?: \d+)? on (?P<url>\S+)")
RE_APP_READY = re.compile(r"Application startup complete\.")
RE_UVICORN_RUN = re.compile(r"Uvicorn running on (?P<url>\S+)")
RE_VERSION_LINE = re.compile(
    r"vLLM (?:API )?server version (?P<ver>[^\s,]+)(?:, serving model (?P<model>\S+))?"
)
RE_LOGO_VERSION = re.compile(r"[█▄▀]\s+version\s+(?P<ver>\d+\.\d+\S*)\s*$")
RE_LOGO_MODEL = re.compile(r"[█▄▀]\s+model\s+(?P<model>\S+)\s*$")
RE_MAX_LEN = re.compile(r"Using max model len (?P<len>\d+)")
RE_ARCH = re.compile(r"Resolved architecture: (?P<arch>\S+)")
RE_FREE_MEM = re.compile(
    r"Free memory on device (?:(?P<dev>\S+) )?\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) "
    r"on startup"
)
RE_ENGINE_INIT_FAIL = re.compile(
    r"(?:Engine core initialization failed|Frontend process failed during engine core "
    r"initialization)"
)
RE_EXCEPTION = re.compile(
    r"^(?P<exc>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure|Fault))(?::\s*(?P<msg>.*))?$"
)
TRACEBACK_START = "Traceback (most recent call last):"
TRACEBACK_CONTINUATIONS = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)


METRICS_POLL = re.compile(r'"GET /metrics(?:[?/][^ "]*)? HTTP/')
"""An access-log line of a ``/metrics`` poll (the console's own, once a second):
the server log view hides these by default."""


def _num(raw: str | None) -> float | None:
    if raw is None or raw == "nan":
        return None
    return float(raw.replace(",", ""))


def _pct(raw: str | None) -> float | None:
    """Percent text in the log -> a 0-1 fraction, like the metrics."""
    v = _num(raw)
    return None if v is None else v / 100.0


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class LogEvent:
    """Base of every event: where the line came from (all optional)."""

    kind: ClassVar[str] = "event"
    time: str | None = None  # "MM-DD HH:MM:SS" as vLLM logs it (no year)
    process: str | None = None  # APIServer, EngineCore_DP0, Worker, ...
    pid: int | None = None
    level: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class ServerVersion(LogEvent):
    kind: ClassVar[str] = "version"
    version: str | None = None
    model: str | None = None


@dataclass(frozen=True, kw_only=True)
class Architecture(LogEvent):
    kind: ClassVar[str] = "architecture"
    architecture: str


@dataclass(frozen=True, kw_only=True)
class MaxModelLen(LogEvent):
    kind: ClassVar[str] = "max_model_len"
    max_model_len: int


@dataclass(frozen=True, kw_only=True)
class LoadingModel(LogEvent):
    kind: ClassVar[str] = "loading_model"
    model: str


@dataclass(frozen=True, kw_only=True)
class WeightsLoaded(LogEvent):
    kind: ClassVar[str] = "weights_loaded"
    seconds: float


@dataclass(frozen=True, kw_only=True)
class ModelLoaded(LogEvent):
    kind: ClassVar[str] = "model_loaded"
    seconds: float
    memory_gib: float


@dataclass(frozen=True, kw_only=True)
class KvCacheMemory(LogEvent):
    kind: ClassVar[str] = "kv_cache_memory"
    gib: float


@dataclass(frozen=True, kw_only=True)
class MaxConcurrency(LogEvent):
    """Second line of the pre-0.28 KV size pair; LogParser folds it into KvCacheSize."""

    kind: ClassVar[str] = "max_concurrency"
    max_concurrency: float
    tokens_per_request: int


@dataclass(frozen=True, kw_only=True)
class KvCacheSize(LogEvent):
    """KV capacity in tokens: the figure to trust (blocks x block size is not)."""

    kind: ClassVar[str] = "kv_cache"
    tokens: int
    max_concurrency: float | None = None
    tokens_per_request: int | None = None
    device: str | None = None  # GPU, CPU, "GPU + host"


@dataclass(frozen=True, kw_only=True)
class GraphCaptured(LogEvent):
    kind: ClassVar[str] = "graph_capture"
    seconds: float
    memory_gib: float


@dataclass(frozen=True, kw_only=True)
class EngineInitialized(LogEvent):
    kind: ClassVar[str] = "engine_ready"
    seconds: float
    compilation_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class Listening(LogEvent):
    kind: ClassVar[str] = "listening"
    url: str


@dataclass(frozen=True, kw_only=True)
class Ready(LogEvent):
    """uvicorn's ``Application startup complete.``: the server answers now."""

    kind: ClassVar[str] = "ready"


@dataclass(frozen=True, kw_only=True)
class EngineStats(LogEvent):
    """The periodic ``Engine 000: Avg prompt throughput ...`` line (fractions 0-1)."""

    kind: ClassVar[str] = "engine_stats"
    engine: int | None
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    running: int
    waiting: int
    kv_usage: float
    prefix_hit_rate: float | None = None  # over the last 1000 requests, not the interval
    deferred: int | None = None
    preemptions: int | None = None
    kv_device: str | None = None
    engines: int | None = None  # "N Engines Aggregated"


@dataclass(frozen=True, kw_only=True)
class SpecDecodeLogStats(LogEvent):
    """``SpecDecoding metrics:``: counts over the log interval (10 s by default)."""

    kind: ClassVar[str] = "spec_decode_stats"
    mean_acceptance_length: float | None
    accepted: int
    drafted: int
    per_position: tuple[float | None, ...]
    acceptance_rate: float | None  # fraction 0-1
    accepted_tokens_per_s: float | None = None  # absent in the v0.10 format
    drafted_tokens_per_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Failure(LogEvent):
    """Why the server failed, in the line a user needs.

    ``cause``: ``free_memory`` (not enough free GPU memory at start),
    ``engine_init`` (the frontend's "see root cause above"), ``traceback``
    (any other exception) or ``error`` (an ERROR line outside a traceback).
    """

    kind: ClassVar[str] = "failure"
    message: str
    cause: str = "error"
    exception: str | None = None
    location: str | None = None  # last frame of the traceback: "file.py:123"
    free_gib: float | None = None
    total_gib: float | None = None
    device: str | None = None

    # Most specific first: what the summary reports as *the* cause.
    RANK: ClassVar[dict[str, int]] = {
        "free_memory": 0,
        "traceback": 1,
        "error": 2,
        "engine_init": 3,
    }


# --------------------------------------------------------------------------- one line


@dataclass(frozen=True)
class LineParts:
    """A log line split into its prefix fields and the message."""

    message: str
    process: str | None = None
    pid: int | None = None
    level: str | None = None
    time: str | None = None
    source: str | None = None


def clean(line: str) -> str:
    """Strip ANSI colour, the newline and tqdm's carriage-return rewrites."""
    line = ANSI.sub("", line).rstrip("\r\n")
    if "\r" in line:
        line = line.rsplit("\r", 1)[-1] or line
    return line


def split_prefix(line: str) -> LineParts:
    m = PREFIX.search(line)
    if m:
        return LineParts(
            message=m["msg"],
            process=m["proc"],
            pid=int(m["pid"]) if m["pid"] else None,
            level=m["level"],
            time=m["ts"],
            source=f"{m['src']}:{m['lineno']}",
        )
    m = UVICORN.match(line)
    if m:
        return LineParts(
            message=m["msg"],
            process=m["proc"],
            pid=int(m["pid"]) if m["pid"] else None,
            level=m["level"],
        )
    m = BARE_PROC.match(line)
    if m:
        return LineParts(message=m["msg"], process=m["proc"], pid=int(m["pid"]))
    return LineParts(message=line)


def _failure_from_message(msg: str, where: dict[str, Any]) -> Failure | None:
    m = RE_FREE_MEM.search(msg)
    if m:
        exc = RE_EXCEPTION.match(msg.strip())
        return Failure(
            message=msg.strip(),
            cause="free_memory",
            exception=exc["exc"] if exc else None,
            free_gib=float(m["free"]),
            total_gib=float(m["total"]),
            device=m["dev"],
            **where,
        )
    if RE_ENGINE_INIT_FAIL.search(msg):
        exc = RE_EXCEPTION.match(msg.strip())
        return Failure(
            message=msg.strip(),
            cause="engine_init",
            exception=exc["exc"] if exc else None,
            **where,
        )
    return None


def _event_from_message(msg: str, where: dict[str, Any]) -> LogEvent | None:
    if "Engine" in msg and "Avg prompt throughput" in msg:
        m = ENGINE_STATS.search(msg)
        if m:
            return EngineStats(
                engine=int(m["engine"]) if m["engine"] else None,
                engines=int(m["n_engines"]) if m["n_engines"] else None,
                prompt_tokens_per_s=float(m["prompt_tps"]),
                generation_tokens_per_s=float(m["gen_tps"]),
                running=int(m["running"]),
                waiting=int(m["waiting"]),
                deferred=int(m["deferred"]) if m["deferred"] else None,
                preemptions=int(m["preemptions"]) if m["preemptions"] else None,
                kv_usage=float(m["kv_pct"]) / 100.0,
                kv_device=m["kv_dev"],
                prefix_hit_rate=_pct(m["prefix_pct"]),
                **where,
            )
    if "SpecDecoding metrics" in msg:
        m = SPEC_NEW.search(msg) or SPEC_OLD.search(msg)
        if m:
            groups = m.groupdict()
            per = tuple(_num(x.strip()) for x in m["per_pos"].split(",") if x.strip())
            mal = None if m["mal"] in ("nan", "inf") else float(m["mal"])
            return SpecDecodeLogStats(
                mean_acceptance_length=mal,
                accepted=int(m["accepted"]),
                drafted=int(m["drafted"]),
                per_position=per,
                acceptance_rate=_pct(m["rate"]),
                accepted_tokens_per_s=_num(groups.get("acc_tps")),
                drafted_tokens_per_s=_num(groups.get("draft_tps")),
                **where,
            )
    failure = _failure_from_message(msg, where)
    if failure is not None:
        return failure
    m = RE_KV_TOKENS.search(msg)
    if m:
        c = RE_MAX_CONC.search(msg)
        return KvCacheSize(
            tokens=int(m["tokens"].replace(",", "")),
            device=m["dev"],
            max_concurrency=float(c["x"]) if c else None,
            tokens_per_request=int(c["len"].replace(",", "")) if c else None,
            **where,
        )
    m = RE_MAX_CONC.search(msg)
    if m:
        return MaxConcurrency(
            max_concurrency=float(m["x"]),
            tokens_per_request=int(m["len"].replace(",", "")),
            **where,
        )
    simple: tuple[tuple[re.Pattern[str], Any], ...] = (
        (RE_LOAD_START, lambda m: LoadingModel(model=m["model"], **where)),
        (RE_WEIGHTS, lambda m: WeightsLoaded(seconds=float(m["s"]), **where)),
        (
            RE_MODEL_LOAD,
            lambda m: ModelLoaded(seconds=float(m["s"]), memory_gib=float(m["gib"]), **where),
        ),
        (RE_KV_MEM, lambda m: KvCacheMemory(gib=float(m["gib"]), **where)),
        (RE_KV_MEM_CPU, lambda m: KvCacheMemory(gib=float(m["gib"]), **where)),
        (
            RE_GRAPH_DONE,
            lambda m: GraphCaptured(seconds=float(m["s"]), memory_gib=float(m["gib"]), **where),
        ),
        (
            RE_INIT_ENGINE,
            lambda m: EngineInitialized(
                seconds=float(m["s"]), compilation_seconds=_num(m["comp"]), **where
            ),
        ),
        (RE_LISTEN, lambda m: Listening(url=m["url"], **where)),
        (RE_UVICORN_RUN, lambda m: Listening(url=m["url"], **where)),
        (RE_APP_READY, lambda m: Ready(**where)),
        (RE_MAX_LEN, lambda m: MaxModelLen(max_model_len=int(m["len"]), **where)),
        (RE_ARCH, lambda m: Architecture(architecture=m["arch"], **where)),
        (
            RE_VERSION_LINE,
            lambda m: ServerVersion(version=m["ver"], model=m["model"], **where),
        ),
        (RE_LOGO_VERSION, lambda m: ServerVersion(version=m["ver"], **where)),
        (RE_LOGO_MODEL, lambda m: ServerVersion(model=m["model"], **where)),
    )
    for pattern, make in simple:
        m = pattern.search(msg)
        if m:
            return make(m)
    return None


def _where(parts: LineParts) -> dict[str, Any]:
    return {"time": parts.time, "process": parts.process, "pid": parts.pid, "level": parts.level}


def parse_line(line: str) -> LogEvent | None:
    """The event one line carries, or None. Stateless: see LogParser for tracebacks."""
    parts = split_prefix(clean(line))
    event = _event_from_message(parts.message, _where(parts))
    if event is None and parts.level in ("ERROR", "CRITICAL") and parts.message.strip():
        if parts.message.startswith((TRACEBACK_START, " ", "\t", *TRACEBACK_CONTINUATIONS)):
            return None
        return Failure(message=parts.message.strip(), cause="error", **_where(parts))
    return event


# --------------------------------------------------------------------------- stateful


@dataclass
class _Traceback:
    where: dict[str, Any]
    location: str | None = None
    lines: list[str] = field(default_factory=list)


def _merge(pending: LogEvent, new: LogEvent | None) -> LogEvent | None:
    """Fold a follow-up line into the pending event, or None if it doesn't belong."""
    if (
        isinstance(pending, KvCacheSize)
        and isinstance(new, MaxConcurrency)
        and pending.max_concurrency is None
    ):
        return replace(
            pending,
            max_concurrency=new.max_concurrency,
            tokens_per_request=new.tokens_per_request,
        )
    if (
        isinstance(pending, ServerVersion)
        and isinstance(new, ServerVersion)
        and pending.model is None
        and new.model is not None
        and new.version is None
    ):
        return replace(pending, model=new.model)
    return None


def _may_continue(event: LogEvent | None) -> bool:
    """Events whose second half may come on the next line."""
    if isinstance(event, KvCacheSize):
        return event.max_concurrency is None
    return isinstance(event, ServerVersion) and event.model is None


class LogParser:
    """Feed lines as they come; get events. Handles multi-line messages.

    A line that may be followed by its second half (the pre-0.28 KV size, the
    version logo) is held until the next line: call ``flush()`` at the end.
    Traceback lines are consumed per process; the exception line becomes one
    ``Failure``.
    """

    def __init__(self) -> None:
        self._pending: LogEvent | None = None
        self._tracebacks: dict[tuple[str | None, int | None], _Traceback] = {}

    def feed(self, line: str) -> list[LogEvent]:
        parts = split_prefix(clean(line))
        out: list[LogEvent] = []
        event = self._traceback_line(parts)
        if event is None and not self._in_traceback(parts):
            event = _event_from_message(parts.message, _where(parts))
            if event is None and parts.level in ("ERROR", "CRITICAL"):
                msg = parts.message.strip()
                if msg and not msg.startswith((TRACEBACK_START, *TRACEBACK_CONTINUATIONS)):
                    event = Failure(message=msg, cause="error", **_where(parts))
        if self._pending is not None:
            merged = _merge(self._pending, event)
            if merged is not None:
                self._pending = None
                out.append(merged)
                return out
            out.append(self._pending)
            self._pending = None
        if _may_continue(event):
            self._pending = event
        elif event is not None:
            out.append(event)
        return out

    def flush(self) -> list[LogEvent]:
        """Events still held back (end of file or of the stream)."""
        out: list[LogEvent] = []
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None
        for tb in self._tracebacks.values():
            last = tb.lines[-1].strip() if tb.lines else "traceback cut short"
            out.append(Failure(message=last, cause="traceback", location=tb.location, **tb.where))
        self._tracebacks.clear()
        return out

    def _in_traceback(self, parts: LineParts) -> bool:
        return (parts.process, parts.pid) in self._tracebacks

    def _traceback_line(self, parts: LineParts) -> LogEvent | None:
        """Track traceback state; return the Failure when the exception line arrives."""
        key = (parts.process, parts.pid)
        msg = parts.message
        if msg.strip() == TRACEBACK_START:
            self._tracebacks[key] = _Traceback(where=_where(parts))
            return None
        tb = self._tracebacks.get(key)
        if tb is None:
            return None
        stripped = msg.strip()
        if (
            not stripped
            or msg.startswith((" ", "\t"))
            or stripped.startswith(TRACEBACK_CONTINUATIONS)
        ):
            loc = re.match(r'\s*File "(?P<f>[^"]+)", line (?P<n>\d+)', msg)
            if loc:
                tb.location = f"{loc['f'].rsplit('/', 1)[-1]}:{loc['n']}"
            if stripped:
                tb.lines.append(msg)
            return None
        # The first unindented line ends the traceback: the exception itself.
        del self._tracebacks[key]
        specific = _failure_from_message(stripped, tb.where)
        if specific is not None:
            return replace(specific, location=tb.location)
        exc = RE_EXCEPTION.match(stripped)
        return Failure(
            message=stripped,
            cause="traceback",
            exception=exc["exc"] if exc else None,
            location=tb.location,
            **tb.where,
        )


def parse_lines(lines: Iterable[str]) -> Iterator[LogEvent]:
    """Every event in a sequence of lines (a saved log file, say)."""
    parser = LogParser()
    for line in lines:
        yield from parser.feed(line)
    yield from parser.flush()


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class StartupSummary:
    """What a person wants from a log: phases and durations, capacity, outcome."""

    version: str | None = None
    model: str | None = None
    max_model_len: int | None = None
    weights_seconds: float | None = None
    model_load_seconds: float | None = None
    model_memory_gib: float | None = None
    kv_cache_memory_gib: float | None = None
    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    graph_capture_seconds: float | None = None
    engine_init_seconds: float | None = None
    listening: str | None = None
    ready: bool = False
    failure: Failure | None = None
    failures: tuple[Failure, ...] = ()
    last_engine_stats: EngineStats | None = None
    last_spec_decode: SpecDecodeLogStats | None = None
    startup_seconds: float | None = None  # first timestamped event to listening/ready


def _clock(ts: str | None) -> datetime | None:
    """vLLM logs month-day and time only; a fixed leap year makes the difference."""
    if ts is None:
        return None
    try:
        return datetime.strptime("2024-" + ts, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def summarize(events: Iterable[LogEvent]) -> StartupSummary:
    s: dict[str, Any] = {}
    failures: list[Failure] = []
    first: datetime | None = None
    for e in events:
        first = first or _clock(e.time)
        if isinstance(e, Listening | Ready) and first is not None and _clock(e.time):
            s["startup_seconds"] = (_clock(e.time) - first).total_seconds()  # type: ignore[operator]
        if isinstance(e, ServerVersion):
            s["version"] = e.version or s.get("version")
            s["model"] = e.model or s.get("model")
        elif isinstance(e, LoadingModel):
            s.setdefault("model", e.model)
        elif isinstance(e, MaxModelLen):
            s["max_model_len"] = e.max_model_len
        elif isinstance(e, WeightsLoaded):
            s["weights_seconds"] = e.seconds
        elif isinstance(e, ModelLoaded):
            s["model_load_seconds"] = e.seconds
            s["model_memory_gib"] = e.memory_gib
        elif isinstance(e, KvCacheMemory):
            s["kv_cache_memory_gib"] = e.gib
        elif isinstance(e, KvCacheSize):
            s["kv_cache_tokens"] = e.tokens
            s["max_concurrency"] = e.max_concurrency
        elif isinstance(e, MaxConcurrency):
            s["max_concurrency"] = e.max_concurrency
        elif isinstance(e, GraphCaptured):
            s["graph_capture_seconds"] = e.seconds
        elif isinstance(e, EngineInitialized):
            s["engine_init_seconds"] = e.seconds
        elif isinstance(e, Listening):
            s["listening"] = e.url
        elif isinstance(e, Ready):
            s["ready"] = True
        elif isinstance(e, Failure):
            failures.append(e)
        elif isinstance(e, EngineStats):
            s["last_engine_stats"] = e
        elif isinstance(e, SpecDecodeLogStats):
            s["last_spec_decode"] = e
    main = min(failures, key=lambda f: Failure.RANK.get(f.cause, 9)) if failures else None
    return StartupSummary(**s, failure=main, failures=tuple(failures))


# --------------------------------------------------------------------------- a log's verdict
#
# What the runtimes say about a server from its log tail: ready yet, why it
# failed, whether its engine died under a live API server. The local runtime,
# the Docker runtime and the cluster runtime all ask here.

READY_LINE = "Application startup complete."
"""The line after which vLLM serves (``Ready``); /health confirms it."""

# Wrappers vLLM raises after the real cause was already printed above them.
_GENERIC = (
    "Engine core initialization failed",
    "See root cause above",
    "Engine process failed to start",
    "EngineCore failed to start",
    "Failed core proc(s)",
)
# What vLLM logs when its engine core (or a worker under it) dies under a live
# API server (vllm/v1/engine/core_client.py, vllm/v1/executor, vllm/v1/utils.py).
_ENGINE_DEATH = re.compile(
    r"engine core exited unexpectedly|died unexpectedly|died with exit code|EngineDeadError"
    r"|Engine core proc \S+ died"
)


def bare(line: str) -> str:
    """A line without colour codes and without the ``(Proc pid=N)`` prefix."""
    line = clean(line)
    m = BARE_PROC.match(line)
    return (m["msg"] if m else line).strip()


def _leveled(line: str) -> tuple[str | None, str]:
    """(level, message) of a ``LEVEL MM-DD HH:MM:SS [file:n] msg`` line, else (None, line)."""
    text = bare(line)
    m = PREFIX.match(text)
    return (m["level"], m["msg"].strip()) if m else (None, text)


def _with_continuation(text: str, following: list[tuple[str | None, str]]) -> str:
    """An exception whose message goes on over the next line keeps that line."""
    if not following or not following[0][1]:
        return text
    level, nxt = following[0]
    if level is not None or RE_EXCEPTION.match(nxt):
        return text
    if nxt.startswith(("Traceback", "File ", "During handling", "The above")):
        return text
    joined = f"{text}: {nxt}"
    return joined if len(joined) <= 400 else joined[:397] + "..."


def _reason(lines: list[tuple[str | None, str]]) -> str:
    exceptions: list[str] = []
    errors: list[str] = []
    for index, (level, text) in enumerate(lines):
        if not text:
            continue
        if level is not None:
            if level in ("ERROR", "CRITICAL"):
                errors.append(text)
            continue
        if RE_EXCEPTION.match(text):
            exceptions.append(_with_continuation(text, lines[index + 1 : index + 3]))
    for pool in (exceptions, errors):
        specific = [ln for ln in pool if not any(g in ln for g in _GENERIC)]
        if specific:
            return specific[-1]
    if exceptions:
        return exceptions[-1]
    if errors:
        return errors[-1]
    tail = [text for _, text in lines if text]
    return tail[-1] if tail else "no output"


def failure_reason(lines: list[str]) -> str:
    """The most telling error line of a failed start (the root cause, not the wrapper).

    An exception whose message goes on over the next lines (pydantic's
    ``1 validation error for ModelConfig`` then the actual complaint) keeps
    its first continuation line."""
    return _reason([_leveled(ln) for ln in lines])


def engine_death(lines: list[str]) -> str | None:
    """The log's account of a dead engine after the server was last ready, or None.

    The cause is the root error before the death notice when there is one
    (e.g. an out-of-memory kill), else the notice itself."""
    leveled = [_leveled(ln) for ln in lines]
    start = max((i for i, (_, t) in enumerate(leveled) if READY_LINE in t), default=-1) + 1
    after = leveled[start:]
    hits = [i for i, (_, t) in enumerate(after) if _ENGINE_DEATH.search(t)]
    if not hits:
        return None
    notice = after[hits[0]][1]
    before = [pair for pair in after[: hits[0]] if pair[1]]
    root = _reason(before) if before else None
    if root and root != before[-1][1] and not _ENGINE_DEATH.search(root):
        return f"{notice} (before it: {root})"
    return notice


def last_error(lines: list[str]) -> str:
    """What a dead server's log says about its end, for ``status`` and ``down``.

    ``failure_reason`` falls back to the last line; when that line is no error
    (an access-log line, say), the log simply ends: the process was killed
    from outside, which is worth saying instead of quoting an INFO line."""
    death = engine_death(lines)
    if death is not None:
        return f"last error in its log: {death}"
    leveled = [_leveled(ln) for ln in lines]
    reason = _reason(leveled)
    level, tail = next(((lv, t) for lv, t in reversed(leveled) if t), (None, ""))
    is_error = bool(RE_EXCEPTION.match(tail)) or level in ("ERROR", "CRITICAL")
    if reason == tail and not is_error:
        return "its log ends without an error (killed from outside: kill -9, the OOM killer?)"
    return f"last error in its log: {reason}"


def worst_failure(lines: Iterable[str]) -> Failure | None:
    """The most specific ``Failure`` the parser finds in ``lines`` (``Failure.RANK``)."""
    parser = LogParser()
    failures: list[Failure] = []
    for line in lines:
        failures += [e for e in parser.feed(line) if isinstance(e, Failure)]
    failures += [e for e in parser.flush() if isinstance(e, Failure)]
    return min(failures, key=lambda f: Failure.RANK.get(f.cause, 9)) if failures else None
