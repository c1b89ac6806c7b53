"""vLLM ``/metrics`` -> immutable samples -> derived figures.

Counters only mean something over an interval, so every rate and every
acceptance figure comes from the difference of two samples (a *window*);
lifetime figures are kept apart and labelled as such. Names drift across vLLM
releases, so lookups go through the fallback lists in ``console.metric_names``.
A figure the server does not give is ``None``: spec decode is absent (not
zero) without ``--speculative-config``, and KV capacity is never estimated
from blocks x block size (wrong for sliding-window models).

Formulas: reference/vllm.md §1 and docs/metrics.md.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

from console import metric_names as N
from console import server_client as SC
from console import spec_advisor
from console.errors import ConsoleError

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT = SC.METRICS.deadline_s
QUANTILES = (0.5, 0.9, 0.99)

Labels = tuple[tuple[str, str], ...]
Series = tuple[tuple[Labels, float], ...]


class MetricsError(ConsoleError):
    """A scrape or a page that cannot be used; names the URL and what was wrong."""

    def __init__(self, message: str, *, url: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class Histogram:
    """Cumulative bucket counts summed over every label set but ``le``."""

    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last
    sum: float
    count: float

    def minus(self, older: Histogram) -> Histogram:
        """Bucket-wise difference: the observations made between two scrapes."""
        old = dict(older.buckets)
        return Histogram(
            buckets=tuple((le, c - old.get(le, 0.0)) for le, c in self.buckets),
            sum=self.sum - older.sum,
            count=self.count - older.count,
        )

    def quantile(self, q: float) -> float | None:
        """Prometheus ``histogram_quantile``: linear interpolation inside the bucket."""
        return bucket_quantile(q, self.buckets)


def bucket_quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile of cumulative buckets, as Prometheus computes it.

    Returns None with no observations. A rank that falls in the +Inf bucket
    gives the highest finite bound (Prometheus does the same).
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0 or not 0.0 <= q <= 1.0:
        return None
    rank = q * total
    b = len(buckets) - 1
    for i in range(len(buckets) - 1):
        if buckets[i][1] >= rank:
            b = i
            break
    if b == len(buckets) - 1:
        return buckets[-2][0] if len(buckets) >= 2 else None
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    if count <= 0:
        return end
    return start + (end - start) * (rank / count)


@dataclass(frozen=True, eq=False)
class MetricsSample:
    """One parsed ``/metrics`` page: every ``vllm:`` sample, by exposed name."""

    timestamp: float
    series: Mapping[str, Series]
    url: str | None = None
    nonfinite: tuple[str, ...] = ()
    """Names of series with a NaN or ±Inf value (legal in Prometheus; unknown here)."""

    def names(self) -> frozenset[str]:
        return frozenset(self.series)

    def first_present(self, names: Iterable[str]) -> str | None:
        """The first name of a fallback list that this page has."""
        for name in names:
            if name in self.series:
                return name
        return None

    def get(self, names: Iterable[str]) -> Series | None:
        name = self.first_present(names)
        return None if name is None else self.series[name]

    def total(self, names: Iterable[str], **match: str) -> float | None:
        """Sum over every label set (engines) matching ``match``; None if absent."""
        series = self.get(names)
        if series is None:
            return None
        values = [v for labels, v in series if _matches(labels, match)]
        return sum(values) if values else None

    def mean(self, names: Iterable[str]) -> float | None:
        """Mean over engines: for fractions such as KV usage, which don't add up."""
        series = self.get(names)
        if not series:
            return None
        return sum(v for _, v in series) / len(series)

    def by_label(self, names: Iterable[str], label: str) -> dict[str, float] | None:
        """Values summed per value of one label (e.g. ``position``)."""
        series = self.get(names)
        if series is None:
            return None
        out: dict[str, float] = {}
        for labels, v in series:
            key = dict(labels).get(label)
            if key is not None:
                out[key] = out.get(key, 0.0) + v
        return out

    def labels(self, names: Iterable[str]) -> tuple[dict[str, str], ...]:
        series = self.get(names) or ()
        return tuple(dict(labels) for labels, _ in series)

    def histogram(self, names: Iterable[str]) -> Histogram | None:
        """The first histogram of the fallback list present, summed over engines."""
        for base in names:
            bucket_series = self.series.get(base + "_bucket")
            if bucket_series is None:
                continue
            per_le: dict[float, float] = {}
            for labels, v in bucket_series:
                le = dict(labels).get("le")
                if le is None:
                    continue
                try:
                    bound = float(le)
                except ValueError:
                    continue  # not a bucket bound: a page to distrust, not to crash on
                per_le[bound] = per_le.get(bound, 0.0) + v
            if not per_le:
                continue
            buckets = tuple(sorted(per_le.items()))
            total = sum(v for _, v in self.series.get(base + "_sum", ()))
            count = sum(v for _, v in self.series.get(base + "_count", ()))
            return Histogram(buckets=buckets, sum=total, count=count)
        return None


def _matches(labels: Labels, match: Mapping[str, str]) -> bool:
    if not match:
        return True
    d = dict(labels)
    return all(d.get(k) == v for k, v in match.items())


_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _family(line: str) -> str:
    name = line.split("{", 1)[0].split(" ", 1)[0]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _select_lines(text: str, names: frozenset[str] | None) -> str:
    """Keep the ``vllm:`` samples the console reads (``names``; None = every one).

    The page is mostly python_/http_ samples, HELP text and histograms nobody
    shows; handing only the wanted lines to the (pure-Python) parser makes a
    scrape several times cheaper. HELP/TYPE lines are dropped: samples keep
    their exposed names without them. ``_created`` samples (a counter's start
    time, never read) are dropped before parsing rather than after.
    """
    keep = [
        line
        for line in text.splitlines()
        if line.startswith("vllm:")
        and not _is_created(line)
        and (names is None or _family(line) in names)
    ]
    keep.append("")
    return "\n".join(keep)


def _is_created(line: str) -> bool:
    return line.split("{", 1)[0].split(" ", 1)[0].endswith("_created")


def _check_page(text: str, where: str, url: str | None) -> None:
    if not text.strip():
        raise MetricsError(f"{where}: empty metrics page", url=url)
    if not text.endswith("\n"):
        raise MetricsError(
            f"{where}: metrics page ends mid-line (truncated response?)",
            url=url,
            hint="retry; if it persists, check a proxy between the console and vLLM",
        )


def _full_parse(text: str, names: frozenset[str] | None) -> dict[str, list[tuple[Labels, float]]]:
    """Every wanted sample through prometheus-client's parser (raises its errors)."""
    series: dict[str, list[tuple[Labels, float]]] = {}
    for family in text_string_to_metric_families(_select_lines(text, names)):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            series.setdefault(s.name, []).append((tuple(sorted(s.labels.items())), s.value))
    return series


def _finish(
    series: dict[str, list[tuple[Labels, float]]], timestamp: float, url: str | None, where: str
) -> MetricsSample:
    if not series:
        raise MetricsError(
            f"{where}: no vllm: metrics on the page",
            url=url,
            hint="is this a vLLM server? The URL should be the server's base URL or its /metrics",
        )
    if not any(name in series for name in N.REQUIRED):
        raise MetricsError(f"{where}: partial metrics page: {N.REQUIRED[0]} is missing", url=url)
    frozen = MappingProxyType({k: tuple(v) for k, v in series.items()})
    nonfinite = tuple(
        sorted(k for k, v in frozen.items() if not all(math.isfinite(x) for _, x in v))
    )
    return MetricsSample(timestamp=timestamp, series=frozen, url=url, nonfinite=nonfinite)


def _vllm_block(text: str) -> str:
    """The page from its first ``vllm:`` to the end of its last ``vllm:`` sample
    line: every ``vllm:`` line is inside (whatever else is between), so two equal
    blocks have equal ``vllm:`` samples. Empty when there is none."""
    start = text.find("vllm:")
    last = text.rfind("\nvllm:")
    if start < 0 or last < 0:
        return ""
    end = text.find("\n", last + 1)
    return text[start:end]


_SKIP: tuple[str, Labels] = ("", ())
"""Cache entry for a series that is parsed but not kept (another family, ``_created``)."""


class PageParser:
    """Parses successive ``/metrics`` pages of one server, cheaply.

    A server's page keeps the same series from one scrape to the next; only
    the values move. prometheus-client's parser reads label sets character
    by character, which is most of a scrape's CPU, so each series' name and
    labels are parsed once (by that parser) and remembered by the line's text
    up to its value; later pages only convert the value. The memory holds the
    series of the latest page only (rebuilt every page), so it cannot grow
    past one page, whatever the server sends. Anything unusual on a line (a
    timestamp, a value prometheus-client would refuse, a label set it cannot
    read) sends the whole page through the full parser, errors and all: the
    figures are always what that parser makes of the page.
    """

    def __init__(self, names: frozenset[str] | None = N.WANTED) -> None:
        self.names = names
        self._keys: dict[str, tuple[str, Labels]] = {}
        self._last: tuple[str, MetricsSample] | None = None
        self.cache_hits = 0
        """Series whose name and labels came from the memory (for tests and bench)."""
        self.unchanged = 0
        """Pages in a row whose ``vllm:`` part equalled the previous page's."""

    def parse(self, text: str, *, timestamp: float, url: str | None = None) -> MetricsSample:
        """Like :func:`parse_metrics` (same figures, same errors), with the memory.

        A page whose ``vllm:`` part is the previous page's, byte for byte (an
        idle server: only the process and HTTP counters move), is not parsed
        again: the previous sample's series, stamped ``timestamp``."""
        where = url or "the metrics page"
        _check_page(text, where, url)
        block = _vllm_block(text)
        last = self._last
        if last is not None and block and last[0] == block and last[1].url == url:
            self.unchanged += 1
            return replace(last[1], timestamp=timestamp)
        self.unchanged = 0
        self._last = None
        series = self._fast(text)
        if series is None:
            try:
                series = _full_parse(text, self.names)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                raise MetricsError(f"{where}: not a Prometheus text page ({exc})", url=url) from exc
        sample = _finish(series, timestamp, url, where)
        if block:
            self._last = (block, sample)
        return sample

    def _fast(self, text: str) -> dict[str, list[tuple[Labels, float]]] | None:
        """The page's wanted series from remembered label sets; None: use the full parser."""
        old, new = self._keys, {}
        series: dict[str, list[tuple[Labels, float]]] = {}
        hits = 0
        for line in text.splitlines():
            if not line.startswith("vllm:"):
                continue
            brace = line.rfind("}")
            cut = brace + 1 if brace >= 0 else line.find(" ")
            if cut <= 0:
                return None
            key = line[:cut]
            raw = line[cut:].strip()
            if not raw or " " in raw or "\t" in raw or "_" in raw:
                return None  # a timestamp, an exemplar or an odd value: the full parser
            entry = new.get(key)
            if entry is not None:
                return None  # the same series twice: let the full parser judge
            entry = old.get(key)
            if entry is None:
                entry = self._parse_key(key)
                if entry is None:
                    return None
            else:
                hits += 1
            new[key] = entry
            if entry is _SKIP:
                continue
            try:  # as prometheus-client does: an integer if it reads as one
                value: float = int(raw) if raw.lstrip("+-").isdigit() else float(raw)
            except ValueError:
                return None
            series.setdefault(entry[0], []).append((entry[1], value))
        self._keys = new
        self.cache_hits = hits
        return series

    def _parse_key(self, key: str) -> tuple[str, Labels] | None:
        """One series' name and sorted labels by prometheus-client's parser."""
        if _is_created(key) or (self.names is not None and _family(key) not in self.names):
            return _SKIP
        try:
            families = list(text_string_to_metric_families(key + " 0\n"))
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        samples = [s for f in families for s in f.samples]
        if len(samples) != 1:
            return None
        return samples[0].name, tuple(sorted(samples[0].labels.items()))


def parse_metrics(
    text: str,
    *,
    timestamp: float,
    url: str | None = None,
    names: frozenset[str] | None = N.WANTED,
) -> MetricsSample:
    """Parse a Prometheus text page into a sample; raise MetricsError on garbage.

    ``names`` are the family base names kept (``_total`` stripped); the default
    is what the console reads, ``None`` keeps every ``vllm:`` sample. A poller
    that parses page after page uses a :class:`PageParser` instead (same
    result, a fraction of the CPU).

    A page that is cut short (no final newline), that a parser rejects, or that
    lacks ``vllm:num_requests_running`` is refused rather than half-used.
    """
    where = url or "the metrics page"
    _check_page(text, where, url)
    try:
        series = _full_parse(text, names)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricsError(f"{where}: not a Prometheus text page ({exc})", url=url) from exc
    return _finish(series, timestamp, url, where)


# --------------------------------------------------------------------------- scraping


def base_url(url: str) -> str:
    """The server's base URL, whether given as base or as ``.../metrics``."""
    return SC.normalize_url(url)


def metrics_url(url: str) -> str:
    return base_url(url) + "/metrics"


def auth_headers() -> dict[str, str]:
    """Bearer header from VLLM_API_KEY or OPENAI_API_KEY (never logged)."""
    return SC.auth_headers(SC.api_key_from_env())


def _metrics_error(exc: SC.ServerError) -> MetricsError:
    return MetricsError(exc.message, url=exc.url, hint=exc.hint)


def _limits(timeout: float | None) -> SC.Limits:
    return SC.METRICS if timeout is None else replace(SC.METRICS, deadline_s=timeout)


def page_to_sample(text: str, url: str, parser: PageParser | None = None) -> MetricsSample:
    """Parse a fetched page, stamped now (with ``parser``'s memory when given)."""
    if parser is not None:
        return parser.parse(text, timestamp=time.time(), url=url)
    return parse_metrics(text, timestamp=time.time(), url=url)


def scrape(
    url: str,
    *,
    client: SC.SyncServerClient | httpx.Client | None = None,
    timeout: float | None = None,
    parser: PageParser | None = None,
) -> MetricsSample:
    """Fetch and parse ``/metrics`` synchronously (CLI, thread workers), within
    :data:`console.server_client.METRICS`' deadline and size cap. A poller
    passes its :class:`PageParser` (one per server)."""
    sc = (
        client if isinstance(client, SC.SyncServerClient) else SC.SyncServerClient(url, http=client)
    )
    try:
        text = sc.metrics_page(_limits(timeout))
    except SC.ServerError as exc:
        raise _metrics_error(exc) from None
    finally:
        if sc is not client:
            sc.close()
    return page_to_sample(text, sc.endpoint("/metrics"), parser)


async def ascrape(
    client: SC.ServerClient | httpx.AsyncClient,
    url: str | None = None,
    *,
    timeout: float | None = None,
) -> MetricsSample:
    """Fetch and parse ``/metrics`` on an async client (the TUI's workers, bench)."""
    if isinstance(client, SC.ServerClient):
        sc = client
    else:
        sc = SC.ServerClient(url or SC.DEFAULT_URL, http=client)
    try:
        text = await sc.metrics_page(_limits(timeout))
    except SC.ServerError as exc:
        raise _metrics_error(exc) from None
    return page_to_sample(text, sc.endpoint("/metrics"))


@dataclass(frozen=True)
class ServerInfo:
    """What ``/version`` and ``/v1/models`` say; None where the server didn't answer."""

    version: str | None = None
    model: str | None = None
    max_model_len: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _server_info(version_json: Any, models_json: Any) -> ServerInfo:
    """Whatever the server says, of whatever type: only well-formed values are kept."""
    raw_version = version_json.get("version") if isinstance(version_json, dict) else None
    version = None if raw_version is None else str(raw_version)
    model = max_len = None
    data = models_json.get("data") if isinstance(models_json, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    if isinstance(first, dict):
        model = None if first.get("id") is None else str(first["id"])
        ml = first.get("max_model_len")
        max_len = _int(ml) if isinstance(ml, int | float) and not isinstance(ml, bool) else None
    return ServerInfo(version=version, model=model, max_model_len=max_len)


def _info_limits(timeout: float | None, base: SC.Limits) -> SC.Limits:
    return base if timeout is None else replace(base, deadline_s=timeout)


def _json_or_none(reply: SC.Reply | SC.ServerError) -> Any:
    """A 200 answer's JSON; None for anything else, except a server that cannot
    be reached at all (raised: there is no server to describe)."""
    if isinstance(reply, SC.ServerError):
        if reply.kind == "unreachable":
            raise _metrics_error(reply)
        return None
    if reply.status != 200:
        return None
    try:
        return reply.json()
    except SC.ServerError:
        return None


def fetch_server_info(
    url: str,
    *,
    client: SC.SyncServerClient | httpx.Client | None = None,
    timeout: float | None = None,
) -> ServerInfo:
    """Server version and served model; raises MetricsError only if unreachable."""
    sc = (
        client if isinstance(client, SC.SyncServerClient) else SC.SyncServerClient(url, http=client)
    )

    def get(path: str, limits: SC.Limits) -> SC.Reply | SC.ServerError:
        try:
            return sc.get(path, _info_limits(timeout, limits))
        except SC.ServerError as exc:
            return exc

    try:
        version = _json_or_none(get("/version", SC.VERSION))
        models = _json_or_none(get("/v1/models", SC.MODELS))
    finally:
        if sc is not client:
            sc.close()
    return _server_info(version, models)


async def afetch_server_info(
    client: SC.ServerClient | httpx.AsyncClient,
    url: str | None = None,
    *,
    timeout: float | None = None,
) -> ServerInfo:
    """:func:`fetch_server_info` on an async client."""
    if isinstance(client, SC.ServerClient):
        sc = client
    else:
        sc = SC.ServerClient(url or SC.DEFAULT_URL, http=client)

    async def get(path: str, limits: SC.Limits) -> SC.Reply | SC.ServerError:
        try:
            return await sc.get(path, _info_limits(timeout, limits))
        except SC.ServerError as exc:
            return exc

    version = _json_or_none(await get("/version", SC.VERSION))
    models = _json_or_none(await get("/v1/models", SC.MODELS))
    return _server_info(version, models)


# --------------------------------------------------------------------------- figures


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        """What :func:`dataclasses.asdict` gives, at a third of its cost (it runs
        for every report, once a second per server)."""
        return _plain(self)  # type: ignore[no-any-return]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, recursively; lists and tuples keep their type."""
    kind = type(value)
    if kind in (float, int, str, bool, type(None)):
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and hasattr(kind, "__dataclass_fields__"):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return kind(*(_plain(v) for v in value))
    if isinstance(value, list | tuple):
        return kind(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Quantiles(_Dict):
    """p50/p90/p99 and mean of a histogram; all None with no observations."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    count: int = 0

    @classmethod
    def of(cls, h: Histogram | None) -> Quantiles | None:
        if h is None:
            return None
        if h.count <= 0 and h.buckets[-1][1] <= 0:
            return cls()
        q = [h.quantile(x) for x in QUANTILES]
        mean = h.sum / h.count if h.count > 0 else None
        return cls(p50=q[0], p90=q[1], p99=q[2], mean=mean, count=_int(h.count) or 0)


@dataclass(frozen=True)
class RequestFigures(_Dict):
    running: int | None = None
    waiting: int | None = None
    deferred: int | None = None  # part of ``waiting`` (v0.20+); None if not exported


@dataclass(frozen=True)
class KvCacheFigures(_Dict):
    usage: float | None = None  # fraction 0-1
    capacity_tokens: int | None = None
    capacity_source: str | None = None  # "metrics" | "log" | None
    max_concurrency: float | None = None


@dataclass(frozen=True)
class ThroughputFigures(_Dict):
    generation_tokens_per_s: float | None = None  # includes spec-decode accepted tokens
    prompt_tokens_per_s: float | None = None  # includes prefix-cache hits
    prompt_computed_tokens_per_s: float | None = None  # excludes hits (the log's figure)


@dataclass(frozen=True)
class PrefixCacheFigures(_Dict):
    hit_rate: float | None = None  # window: Δhits/Δqueries
    hit_rate_lifetime: float | None = None
    queries: int | None = None  # window
    hits: int | None = None  # window


@dataclass(frozen=True)
class PreemptionFigures(_Dict):
    window: int | None = None
    lifetime: int | None = None


@dataclass(frozen=True)
class LatencyFigures(_Dict):
    """Quantiles over ``scope``: "window" (bucket deltas) or "lifetime" (cumulative)."""

    scope: str = "lifetime"
    ttft_s: Quantiles | None = None
    tpot_s: Quantiles | None = None  # per output token, per finished request
    itl_s: Quantiles | None = None  # per engine step (several tokens with spec decode)
    e2e_s: Quantiles | None = None


@dataclass(frozen=True)
class SpecDecodeStats(_Dict):
    """Spec-decode counts over one scope and the figures derived from them."""

    drafts: int
    draft_tokens: int
    accepted_tokens: int
    accepted_per_position: tuple[int, ...]
    mean_acceptance_length: float | None  # 1 + A/D
    draft_acceptance_rate: float | None  # A/T
    per_position: tuple[float, ...] | None  # A_i/D
    accepted_tokens_per_s: float | None = None  # window only
    draft_tokens_per_s: float | None = None  # window only
    advisor: dict[str, Any] | None = None
    """Which k? ``spec_advisor.Advice.to_dict()`` over this scope: an estimate,
    method unknown here (the stated default draft cost); None without positions."""

    @classmethod
    def from_counts(
        cls, d: float, t: float, a: float, a_pos: tuple[float, ...], seconds: float | None
    ) -> SpecDecodeStats:
        rate = (seconds is not None) and seconds > 0
        per = tuple(x / d for x in a_pos) if d > 0 else None
        advice = spec_advisor.advise(per, _int(d) or 0)
        return cls(
            drafts=_int(d) or 0,
            draft_tokens=_int(t) or 0,
            accepted_tokens=_int(a) or 0,
            accepted_per_position=tuple(_int(x) or 0 for x in a_pos),
            mean_acceptance_length=(1.0 + a / d) if d > 0 else None,
            draft_acceptance_rate=(a / t) if t > 0 else None,
            per_position=per,
            accepted_tokens_per_s=(a / seconds) if rate else None,  # type: ignore[operator]
            draft_tokens_per_s=(t / seconds) if rate else None,  # type: ignore[operator]
            advisor=advice.to_dict() if advice is not None else None,
        )


@dataclass(frozen=True)
class SpecDecodeFigures(_Dict):
    num_speculative_tokens: int  # k, from the number of positions exported
    lifetime: SpecDecodeStats
    window: SpecDecodeStats | None = None


@dataclass(frozen=True)
class Figures(_Dict):
    """Everything the dashboard and ``monitor`` show, derived from one or two samples.

    ``window_s`` is None when there was no earlier sample (or the server
    restarted in between): window figures are then None, lifetime ones remain.
    """

    timestamp: float
    window_s: float | None
    requests: RequestFigures = field(default_factory=RequestFigures)
    kv_cache: KvCacheFigures = field(default_factory=KvCacheFigures)
    throughput: ThroughputFigures = field(default_factory=ThroughputFigures)
    prefix_cache: PrefixCacheFigures = field(default_factory=PrefixCacheFigures)
    preemptions: PreemptionFigures = field(default_factory=PreemptionFigures)
    latency: LatencyFigures = field(default_factory=LatencyFigures)
    spec_decode: SpecDecodeFigures | None = None
    counter_reset: bool = False  # counters went down: the server restarted
    nonfinite: tuple[str, ...] = ()
    """Series that were NaN/±Inf on either page: gauges unknown, their windows skipped."""
    age_s: float = 0.0  # how old the sample behind these figures is (tracker)
    stale: bool = False


def _int(x: float | None) -> int | None:
    """A count; None when unknown, NaN or infinite (round() would raise)."""
    return None if x is None or not math.isfinite(x) else round(x)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def finite_tree(value: Any) -> Any:
    """``value`` with every NaN/±Inf float replaced by None (dicts, lists, tuples).

    The last step before strict JSON (``allow_nan=False``): a non-finite figure
    is unknown, never a number.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_tree(v) for v in value]
    return value


def _scrub(value: Any) -> Any:
    """Figures with every non-finite float made None (frozen dataclasses rebuilt)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        changes = {}
        for f in fields(value):
            old = getattr(value, f.name)
            new = _scrub(old)
            if new is not old:
                changes[f.name] = new
        return replace(value, **changes) if changes else value
    return value


def _delta(cur: float | None, prev: float | None) -> float | None:
    if cur is None or prev is None:
        return None
    return cur - prev


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _was_reset(current: MetricsSample, previous: MetricsSample) -> bool:
    for names in N.RESET_SENTINELS:
        c, p = current.total(names), previous.total(names)
        if c is not None and p is not None and c < p:
            return True
    return False


def _label_number(raw: str | None) -> float | None:
    """Info-metric labels are str(value): "None" or "" mean not set."""
    if raw in (None, "", "None"):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _kv_capacity(
    sample: MetricsSample, log_tokens: int | None
) -> tuple[int | None, str | None, float | None]:
    tokens: int | None = None
    conc: float | None = None
    for labels in sample.labels(N.CACHE_CONFIG_INFO):
        t = _label_number(labels.get("kv_cache_size_tokens"))
        if t is not None:
            tokens = (tokens or 0) + round(t)
        c = _label_number(labels.get("kv_cache_max_concurrency"))
        if c is not None:
            conc = c
    if tokens is not None:
        return tokens, "metrics", conc
    if log_tokens is not None:
        return log_tokens, "log", conc
    return None, None, None


def _positions(sample: MetricsSample) -> tuple[float, ...]:
    per = sample.by_label(N.SPEC_ACCEPTED_PER_POS, "position") or {}
    if not per:
        return ()
    per = {p: v for p, v in per.items() if p.isdigit() and int(p) < 64}  # a hostile label
    if not per:
        return ()
    k = max(int(p) for p in per) + 1
    return tuple(per.get(str(i), 0.0) for i in range(k))


def _spec_counts(sample: MetricsSample) -> tuple[float, float, float, tuple[float, ...]] | None:
    d = sample.total(N.SPEC_DRAFTS)
    if d is None:
        return None
    t = sample.total(N.SPEC_DRAFT_TOKENS) or 0.0
    a = sample.total(N.SPEC_ACCEPTED) or 0.0
    return d, t, a, _positions(sample)


spec_counts = _spec_counts
"""(drafts, draft tokens, accepted, per position) totals of a sample; None without spec."""


def _spec_figures(
    current: MetricsSample, previous: MetricsSample | None, seconds: float | None
) -> SpecDecodeFigures | None:
    cur = _spec_counts(current)
    if cur is None:
        return None
    d, t, a, pos = cur
    lifetime = SpecDecodeStats.from_counts(d, t, a, pos, None)
    window = None
    prev = _spec_counts(previous) if previous is not None else None
    if prev is not None and seconds is not None:
        pd, pt, pa, ppos = prev
        ppos = ppos + (0.0,) * (len(pos) - len(ppos))
        wpos = tuple(x - y for x, y in zip(pos, ppos, strict=False))
        window = SpecDecodeStats.from_counts(d - pd, t - pt, a - pa, wpos, seconds)
    return SpecDecodeFigures(num_speculative_tokens=len(pos), lifetime=lifetime, window=window)


def _quantiles(
    current: MetricsSample, previous: MetricsSample | None, names: tuple[str, ...]
) -> Quantiles | None:
    h = current.histogram(names)
    if h is None:
        return None
    if previous is not None:
        # The same name on both sides, or the window means nothing.
        name = next((n for n in names if n + "_bucket" in current.series), None)
        ph = previous.histogram((name,)) if name else None
        if ph is None:
            return None
        h = h.minus(ph)
    return Quantiles.of(h)


def _tpot(current: MetricsSample, previous: MetricsSample | None) -> Quantiles | None:
    """Per-token TPOT. The old ``time_per_output_token_seconds`` was observed per
    engine step, which is per token only without speculative decoding."""
    name = next((n for n in N.TPOT if n + "_bucket" in current.series), None)
    if name is None:
        return None
    if name != N.TPOT[0] and current.first_present(N.SPEC_DRAFTS) is not None:
        return None
    return _quantiles(current, previous, (name,))


def derive(
    current: MetricsSample,
    previous: MetricsSample | None = None,
    *,
    kv_capacity_tokens_from_log: int | None = None,
) -> Figures:
    """Figures from ``current``; window figures from ``current - previous``.

    ``kv_capacity_tokens_from_log`` (from a ``KvCacheSize`` log event) is used
    only when the page lacks ``cache_config_info{kv_cache_size_tokens}``.
    """
    reset = False
    if previous is not None and (
        previous.timestamp >= current.timestamp or _was_reset(current, previous)
    ):
        reset = previous.timestamp < current.timestamp
        previous = None
    seconds = None if previous is None else current.timestamp - previous.timestamp

    by_reason = current.by_label(N.WAITING_BY_REASON, "reason")
    requests = RequestFigures(
        running=_int(current.total(N.RUNNING)),
        waiting=_int(current.total(N.WAITING)),
        deferred=_int(by_reason.get("deferred")) if by_reason else None,
    )
    cap, cap_src, conc = _kv_capacity(current, kv_capacity_tokens_from_log)
    kv = KvCacheFigures(
        usage=current.mean(N.KV_USAGE),
        capacity_tokens=cap,
        capacity_source=cap_src,
        max_concurrency=conc,
    )

    q_hits, q_queries = current.total(N.PREFIX_HITS), current.total(N.PREFIX_QUERIES)
    lifetime_pre = current.total(N.PREEMPTIONS)
    throughput = ThroughputFigures()
    prefix = PrefixCacheFigures(hit_rate_lifetime=_ratio(q_hits, q_queries))
    preempt = PreemptionFigures(lifetime=_int(lifetime_pre))
    if previous is not None and seconds:

        def rate(names: tuple[str, ...], **match: str) -> float | None:
            d = _delta(current.total(names, **match), previous.total(names, **match))
            return None if d is None else d / seconds

        dh = _delta(q_hits, previous.total(N.PREFIX_HITS))
        dq = _delta(q_queries, previous.total(N.PREFIX_QUERIES))
        throughput = ThroughputFigures(
            generation_tokens_per_s=rate(N.GENERATION_TOKENS),
            prompt_tokens_per_s=rate(N.PROMPT_TOKENS),
            prompt_computed_tokens_per_s=rate(N.PROMPT_TOKENS_BY_SOURCE, source="local_compute"),
        )
        prefix = replace(prefix, hit_rate=_ratio(dh, dq), queries=_int(dq), hits=_int(dh))
        preempt = replace(preempt, window=_int(_delta(lifetime_pre, previous.total(N.PREEMPTIONS))))

    latency = LatencyFigures(
        scope="window" if previous is not None else "lifetime",
        ttft_s=_quantiles(current, previous, N.TTFT),
        tpot_s=_tpot(current, previous),
        itl_s=_quantiles(current, previous, N.ITL),
        e2e_s=_quantiles(current, previous, N.E2E),
    )
    nonfinite = set(current.nonfinite)
    if previous is not None:
        nonfinite.update(previous.nonfinite)
    figures = Figures(
        timestamp=current.timestamp,
        window_s=seconds,
        requests=requests,
        kv_cache=kv,
        throughput=throughput,
        prefix_cache=prefix,
        preemptions=preempt,
        latency=latency,
        spec_decode=_spec_figures(current, previous, seconds),
        counter_reset=reset,
        nonfinite=tuple(sorted(nonfinite)),
    )
    # NaN/±Inf is legal on a Prometheus page and means nothing here: a gauge that
    # is not finite is unknown, a window over a non-finite counter is skipped.
    return _scrub(figures) if nonfinite else figures


# --------------------------------------------------------------------------- tracker


WINDOW_SLACK_S = 0.5
"""How much longer than ``window_s`` a window may span (less than its label's rounding)."""


class MetricsTracker:
    """Keeps recent samples so the UI can show "last N s" and "since start".

    Feed it every scrape (or the error instead). On error the last good sample
    stays; ``figures()`` reports its age and marks it stale. A counter that
    goes down (server restart) starts the history afresh and is remembered
    (``reset_at``): the figures right after it say ``counter_reset``.

    The window's baseline is the oldest sample no older than ``window_s``
    (+ ``WINDOW_SLACK_S``) before the latest, so a window never spans more
    than its label says (whole seconds);
    ``Figures.window_s`` says what it really spans (less while it fills, or
    after a gap in sampling), and labels are built from that.
    """

    def __init__(self, window_s: float = 60.0, *, stale_after_s: float = 5.0) -> None:
        self.window_s = window_s
        self.stale_after_s = stale_after_s
        self._samples: deque[MetricsSample] = deque()
        self._first: MetricsSample | None = None
        self.last_error: Exception | None = None
        self.last_error_at: float | None = None
        self.kv_capacity_tokens_from_log: int | None = None
        self.reset_at: float | None = None
        """Timestamp of the first sample after the last counter reset."""
        self.resets = 0
        """Counter resets seen (server restarts)."""

    @property
    def latest(self) -> MetricsSample | None:
        return self._samples[-1] if self._samples else None

    @property
    def previous(self) -> MetricsSample | None:
        return self._samples[-2] if len(self._samples) >= 2 else None

    @property
    def first(self) -> MetricsSample | None:
        return self._first

    def feed(self, sample: MetricsSample) -> Figures:
        """Add a good sample; returns the figures over the last scrape interval."""
        self.add(sample)
        return self.last_interval()  # type: ignore[return-value]

    def add(self, sample: MetricsSample) -> None:
        """Add a good sample, deriving nothing (a caller that shows only the
        window need not pay for the last interval's figures too)."""
        last = self.latest
        if last is not None and (sample.timestamp <= last.timestamp or _was_reset(sample, last)):
            if sample.timestamp > last.timestamp:
                self.reset_at = sample.timestamp
                self.resets += 1
            self._samples.clear()
            self._first = None
        self._samples.append(sample)
        if self._first is None:
            self._first = sample
        self.last_error = None
        # The baseline is the oldest sample inside the window (up to half a second
        # more, which its label, in whole seconds, rounds to the window): polls a
        # second apart with jitter would otherwise flip the label between
        # "last 59 s" and "last 60 s" and repaint every panel that shows it.
        cutoff = sample.timestamp - self.window_s - WINDOW_SLACK_S
        while self._samples[0].timestamp < cutoff:
            self._samples.popleft()

    def note_log_event(self, event: Any) -> None:
        """Take KV capacity from a ``console.logs.KvCacheSize`` event (older servers
        don't export it as a metric)."""
        if getattr(event, "kind", None) == "kv_cache" and getattr(event, "tokens", None):
            self.kv_capacity_tokens_from_log = int(event.tokens)

    def feed_error(self, error: Exception, *, at: float | None = None) -> None:
        """Record a failed scrape; the last good sample is kept."""
        self.last_error = error
        self.last_error_at = time.time() if at is None else at

    def _after_reset(self, base: MetricsSample | None) -> bool:
        """Whether figures from ``base`` (None: no baseline) start at the last reset."""
        if self.reset_at is None or self.latest is None:
            return False
        start = base if base is not None else self.latest
        return start.timestamp == self.reset_at

    def _derive(
        self, cur: MetricsSample, prev: MetricsSample | None, now: float | None, *, reset: bool
    ) -> Figures:
        f = derive(cur, prev, kv_capacity_tokens_from_log=self.kv_capacity_tokens_from_log)
        age = max(0.0, (time.time() if now is None else now) - cur.timestamp)
        return replace(
            f,
            age_s=age,
            stale=age > self.stale_after_s or self.last_error is not None,
            counter_reset=f.counter_reset or reset,
        )

    def last_interval(self, now: float | None = None) -> Figures | None:
        """Figures between the last two samples (the sparkline point); right
        after a restart there is no interval and ``counter_reset`` says why."""
        if self.latest is None:
            return None
        prev = self.previous
        return self._derive(self.latest, prev, now, reset=prev is None and self._after_reset(None))

    def window(self, now: float | None = None) -> Figures | None:
        """Figures over the last ``window_s`` seconds at most (``window_s`` of the
        result is the span covered; None while only one sample is in it).
        ``counter_reset``: the window restarted at a server restart."""
        if self.latest is None:
            return None
        base = self._samples[0] if len(self._samples) >= 2 else None
        return self._derive(self.latest, base, now, reset=self._after_reset(base))

    def since_start(self, now: float | None = None) -> Figures | None:
        """Figures since the first sample this tracker saw (or the last restart)."""
        if self.latest is None:
            return None
        first = self._first if self._first is not self.latest else None
        return self._derive(self.latest, first, now, reset=self._after_reset(first))

    def lifetime(self, now: float | None = None) -> Figures | None:
        """The server's lifetime counters as of the latest sample (no window)."""
        if self.latest is None:
            return None
        return self._derive(self.latest, None, now, reset=False)

    def age(self, now: float | None = None) -> float | None:
        if self.latest is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.latest.timestamp)


def window_label(seconds: float | None) -> str:
    """What a window figure's label says: the span it really covers."""
    if seconds is None:
        return "no window yet"
    if seconds < 120:
        return f"last {seconds:.0f} s"
    return f"last {seconds / 60:.0f} min"
