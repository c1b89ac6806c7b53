"""Metrics: parsing real captures and hand-made pages for older vLLM versions,
and every derived figure checked against the formulas of reference/vllm.md §1.

Expected numbers are read from the capture files with a plain regex (not with
the code under test) or computed by hand in the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.errors import ConsoleError
from console.metrics import (
    MetricsError,
    MetricsTracker,
    ascrape,
    bucket_quantile,
    derive,
    metrics_url,
    parse_metrics,
    scrape,
)

DATA = Path(__file__).parent / "data" / "vllm-0.32-cpu"


def page(name: str) -> str:
    return (DATA / name).read_text()


def raw(text: str, sample: str, **labels: str) -> float:
    """Sum of a sample's values in a page, by regex: independent of the parser."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(r"^([^\s{]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != sample:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    assert found, f"{sample} not in page"
    return total


# --------------------------------------------------------------------------- hand-made pages


def build_page(
    *,
    running: float = 1,
    waiting: float = 0,
    kv: float = 0.25,
    kv_name: str = "vllm:kv_cache_usage_perc",
    gen: float = 100,
    prompt: float = 50,
    prefix: tuple[float, float] | None = (40, 10),
    prefix_prefix: str = "vllm:prefix_cache",
    spec: tuple[float, float, float, tuple[float, ...]] | None = None,
    ttft: dict[str, float] | None = None,
    itl_name: str = "vllm:inter_token_latency_seconds",
    itl: dict[str, float] | None = None,
    cache_info: str | None = 'block_size="16",num_gpu_blocks="1000"',
    engines: tuple[str, ...] = ("0",),
    extra: str = "",
) -> str:
    """A /metrics page as an older or newer vLLM would write it."""
    out = []
    for e in engines:
        lab = f'engine="{e}",model_name="m"'
        out += [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{lab}}} {running}",
            f"vllm:num_requests_waiting{{{lab}}} {waiting}",
            f"{kv_name}{{{lab}}} {kv}",
            f"vllm:generation_tokens_total{{{lab}}} {gen}",
            f"vllm:prompt_tokens_total{{{lab}}} {prompt}",
        ]
        if prefix is not None:
            out += [
                f"{prefix_prefix}_queries_total{{{lab}}} {prefix[0]}",
                f"{prefix_prefix}_hits_total{{{lab}}} {prefix[1]}",
            ]
        if spec is not None:
            d, t, a, per = spec
            out += [
                f"vllm:spec_decode_num_drafts_total{{{lab}}} {d}",
                f"vllm:spec_decode_num_draft_tokens_total{{{lab}}} {t}",
                f"vllm:spec_decode_num_accepted_tokens_total{{{lab}}} {a}",
            ]
            out += [
                f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="{i}"}} {v}'
                for i, v in enumerate(per)
            ]
        for name, buckets in (("vllm:time_to_first_token_seconds", ttft), (itl_name, itl)):
            if buckets is None:
                continue
            for le, c in buckets.items():
                out.append(f'{name}_bucket{{{lab},le="{le}"}} {c}')
            out.append(f"{name}_count{{{lab}}} {buckets['+Inf']}")
            out.append(f"{name}_sum{{{lab}}} {buckets['+Inf'] * 0.1}")
        if cache_info is not None:
            out.append(f'vllm:cache_config_info{{{cache_info},engine="{e}"}} 1.0')
    out.append('python_gc_objects_collected_total{generation="0"} 1.0')
    return "\n".join(out) + "\n" + extra


# --------------------------------------------------------------------------- parsing


def test_real_ngram_page_lifetime_spec_decode_matches_formulas() -> None:
    text = page("metrics_ngram.prom")
    s = parse_metrics(text, timestamp=10.0)
    f = derive(s)
    d = raw(text, "vllm:spec_decode_num_drafts_total")
    t = raw(text, "vllm:spec_decode_num_draft_tokens_total")
    a = raw(text, "vllm:spec_decode_num_accepted_tokens_total")
    per = [
        raw(text, "vllm:spec_decode_num_accepted_tokens_per_pos_total", position=str(i))
        for i in range(4)
    ]
    assert (d, t, a) == (294, 1176, 621)  # the fixture README's numbers
    sd = f.spec_decode
    assert sd is not None and sd.num_speculative_tokens == 4
    life = sd.lifetime
    assert (life.drafts, life.draft_tokens, life.accepted_tokens) == (294, 1176, 621)
    assert life.mean_acceptance_length == pytest.approx(1 + a / d)
    assert life.draft_acceptance_rate == pytest.approx(a / t)
    assert life.per_position == pytest.approx([x / d for x in per])
    assert list(life.accepted_per_position) == per
    # Every draft here has full length k=4, so the identities of §1.3 hold.
    assert life.mean_acceptance_length == pytest.approx(1 + sum(life.per_position))
    assert life.draft_acceptance_rate == pytest.approx(sum(life.per_position) / 4)
    assert sd.window is None  # one sample: no window
    assert f.window_s is None
    assert f.throughput.generation_tokens_per_s is None  # never a lifetime average
    assert f.prefix_cache.hit_rate_lifetime == pytest.approx(
        raw(text, "vllm:prefix_cache_hits_total") / raw(text, "vllm:prefix_cache_queries_total")
    )


def test_real_page_kv_capacity_from_cache_config_info_not_blocks() -> None:
    f = derive(parse_metrics(page("metrics_idle.prom"), timestamp=1.0))
    assert f.kv_cache.capacity_tokens == 110733  # label kv_cache_size_tokens
    assert f.kv_cache.capacity_source == "metrics"
    assert f.kv_cache.capacity_tokens != 5461 * 128  # blocks x block size is not it
    assert f.kv_cache.max_concurrency == pytest.approx(54.0693, rel=1e-4)
    assert f.kv_cache.usage == 0.0
    assert f.requests.running == 0 and f.requests.waiting == 0


def test_no_spec_decode_is_absent_not_zero() -> None:
    f = derive(
        parse_metrics(page("metrics_after_requests.prom"), timestamp=2.0),
        parse_metrics(page("metrics_idle.prom"), timestamp=1.0),
    )
    assert f.spec_decode is None
    assert f.to_dict()["spec_decode"] is None


def test_window_between_two_real_pages() -> None:
    before, after = page("metrics_idle.prom"), page("metrics_after_requests.prom")
    f = derive(parse_metrics(after, timestamp=130.0), parse_metrics(before, timestamp=100.0))
    assert f.window_s == 30.0
    dgen = raw(after, "vllm:generation_tokens_total") - raw(before, "vllm:generation_tokens_total")
    dprompt = raw(after, "vllm:prompt_tokens_total") - raw(before, "vllm:prompt_tokens_total")
    assert dgen > 0
    assert f.throughput.generation_tokens_per_s == pytest.approx(dgen / 30)
    assert f.throughput.prompt_tokens_per_s == pytest.approx(dprompt / 30)
    dq = raw(after, "vllm:prefix_cache_queries_total") - raw(
        before, "vllm:prefix_cache_queries_total"
    )
    dh = raw(after, "vllm:prefix_cache_hits_total") - raw(before, "vllm:prefix_cache_hits_total")
    assert f.prefix_cache.queries == dq and f.prefix_cache.hits == dh
    assert f.prefix_cache.hit_rate == pytest.approx(dh / dq)
    # Window quantiles come from bucket deltas: count = Δ_count.
    dcount = raw(after, "vllm:time_to_first_token_seconds_count") - raw(
        before, "vllm:time_to_first_token_seconds_count"
    )
    assert f.latency.scope == "window"
    assert f.latency.ttft_s is not None and f.latency.ttft_s.count == dcount
    assert f.latency.ttft_s.p50 <= f.latency.ttft_s.p90 <= f.latency.ttft_s.p99


def test_bucket_quantile_interpolates_like_prometheus() -> None:
    inf = float("inf")
    b = ((0.1, 2.0), (0.25, 6.0), (0.5, 10.0), (inf, 10.0))
    # rank 5 falls in (0.1, 0.25]: 0.1 + 0.15 * (5-2)/(6-2)
    assert bucket_quantile(0.5, b) == pytest.approx(0.1 + 0.15 * 3 / 4)
    # rank 9 falls in (0.25, 0.5]: 0.25 + 0.25 * (9-6)/4
    assert bucket_quantile(0.9, b) == pytest.approx(0.25 + 0.25 * 3 / 4)
    # first bucket interpolates from 0
    assert bucket_quantile(0.1, b) == pytest.approx(0.1 * 1 / 2)
    # a rank in +Inf gives the highest finite bound
    assert bucket_quantile(0.99, ((0.1, 1.0), (inf, 5.0))) == 0.1
    assert bucket_quantile(0.5, ((0.1, 0.0), (inf, 0.0))) is None


def test_window_quantiles_use_bucket_deltas() -> None:
    old = {"0.1": 10, "0.5": 10, "1.0": 10, "+Inf": 10}  # 10 fast requests before
    new = {"0.1": 10, "0.5": 12, "1.0": 14, "+Inf": 14}  # then 2 in (0.1,0.5], 2 in (0.5,1]
    f = derive(
        parse_metrics(build_page(ttft=new), timestamp=2),
        parse_metrics(build_page(ttft=old), timestamp=1),
    )
    q = f.latency.ttft_s
    assert q is not None and q.count == 4
    # rank 2 of the 4 new observations: end of (0.1, 0.5]
    assert q.p50 == pytest.approx(0.5)
    assert q.p90 == pytest.approx(0.5 + 0.5 * (3.6 - 2) / 2)
    lifetime = derive(parse_metrics(build_page(ttft=new), timestamp=2)).latency
    assert lifetime.scope == "lifetime"
    assert lifetime.ttft_s is not None and lifetime.ttft_s.p50 == pytest.approx(0.1 * 7 / 10)


def test_window_with_no_observations_gives_null_quantiles() -> None:
    h = {"0.1": 3, "+Inf": 3}
    f = derive(
        parse_metrics(build_page(ttft=h), timestamp=2),
        parse_metrics(build_page(ttft=h), timestamp=1),
    )
    q = f.latency.ttft_s
    assert q is not None and q.count == 0 and q.p50 is None and q.mean is None


def test_spec_decode_window_formulas() -> None:
    prev = build_page(spec=(100, 400, 200, (80, 60, 40, 20)), gen=1000)
    cur = build_page(spec=(110, 440, 225, (89, 67, 45, 24)), gen=1100)
    f = derive(parse_metrics(cur, timestamp=12.0), parse_metrics(prev, timestamp=2.0))
    w = f.spec_decode.window  # type: ignore[union-attr]
    assert w is not None
    assert (w.drafts, w.draft_tokens, w.accepted_tokens) == (10, 40, 25)
    assert w.accepted_per_position == (9, 7, 5, 4)
    assert w.mean_acceptance_length == pytest.approx(1 + 25 / 10)
    assert w.draft_acceptance_rate == pytest.approx(25 / 40)
    assert w.per_position == pytest.approx((0.9, 0.7, 0.5, 0.4))
    assert w.accepted_tokens_per_s == pytest.approx(2.5)
    assert w.draft_tokens_per_s == pytest.approx(4.0)
    life = f.spec_decode.lifetime  # type: ignore[union-attr]
    assert life.mean_acceptance_length == pytest.approx(1 + 225 / 110)
    d = f.to_dict()["spec_decode"]
    for scope in ("lifetime", "window"):
        assert set(d[scope]) >= {
            "drafts",
            "draft_tokens",
            "accepted_tokens",
            "mean_acceptance_length",
            "draft_acceptance_rate",
            "per_position",
        }


def test_spec_decode_idle_window_is_undefined_not_zero() -> None:
    p = build_page(spec=(100, 400, 200, (80, 60, 40, 20)))
    w = derive(parse_metrics(p, timestamp=2), parse_metrics(p, timestamp=1)).spec_decode.window  # type: ignore[union-attr]
    assert w is not None and w.drafts == 0
    assert w.mean_acceptance_length is None and w.draft_acceptance_rate is None
    assert w.per_position is None


def test_old_version_fallback_names() -> None:
    """≤ v0.10: gpu_cache_usage_perc, gpu_prefix_cache_*, time_per_output_token_seconds."""
    itl = {"0.01": 0, "0.05": 4, "+Inf": 4}
    old = dict(
        kv_name="vllm:gpu_cache_usage_perc",
        prefix_prefix="vllm:gpu_prefix_cache",
        itl_name="vllm:time_per_output_token_seconds",
        cache_info='block_size="16",num_gpu_blocks="1000"',
    )
    prev = parse_metrics(build_page(prefix=(100, 20), kv=0.5, **old), timestamp=1)  # type: ignore[arg-type]
    cur = parse_metrics(build_page(prefix=(150, 45), kv=0.5, itl=itl, **old), timestamp=3)  # type: ignore[arg-type]
    f = derive(cur, prev)
    assert f.kv_cache.usage == 0.5
    assert f.prefix_cache.hit_rate == pytest.approx(25 / 50)
    assert f.prefix_cache.hit_rate_lifetime == pytest.approx(45 / 150)
    life = derive(cur)
    assert life.latency.itl_s is not None and life.latency.itl_s.count == 4
    assert life.latency.tpot_s is not None and life.latency.tpot_s.count == 4
    # No kv_cache_size_tokens label: capacity unknown, never blocks x block size.
    assert f.kv_cache.capacity_tokens is None and f.kv_cache.capacity_source is None
    g = derive(cur, prev, kv_capacity_tokens_from_log=123456)
    assert g.kv_cache.capacity_tokens == 123456 and g.kv_cache.capacity_source == "log"


def test_current_name_wins_when_both_exported() -> None:
    """v0.10-v0.11 export both the old and the new KV usage names."""
    extra = 'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9\n'
    f = derive(parse_metrics(build_page(kv=0.3, extra=extra), timestamp=1))
    assert f.kv_cache.usage == pytest.approx(0.3)


def test_data_parallel_engines_add_counts_and_average_usage() -> None:
    p1 = build_page(engines=("0", "1"), running=2, kv=0.2, gen=100)
    p2 = build_page(engines=("0", "1"), running=2, kv=0.2, gen=150)
    f = derive(parse_metrics(p2, timestamp=2), parse_metrics(p1, timestamp=1))
    assert f.requests.running == 4
    assert f.kv_cache.usage == pytest.approx(0.2)
    assert f.throughput.generation_tokens_per_s == pytest.approx(100.0)


def test_counter_reset_drops_the_window() -> None:
    prev = parse_metrics(build_page(gen=5000), timestamp=1)
    cur = parse_metrics(build_page(gen=10), timestamp=2)
    f = derive(cur, prev)
    assert f.counter_reset is True
    assert f.window_s is None and f.throughput.generation_tokens_per_s is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("<html><body>Not Found</body></html>\n", "no vllm: metrics"),
        (build_page()[:-20], "mid-line"),
        ('vllm:num_requests_running{engine="0" 1\n', "not a Prometheus text page"),
        ('vllm:generation_tokens_total{engine="0"} 5\n', "partial"),
    ],
)
def test_garbage_pages_raise_metrics_error_naming_the_url(text: str, needle: str) -> None:
    url = "http://example.invalid:8000/metrics"
    with pytest.raises(MetricsError) as info:
        parse_metrics(text, timestamp=1.0, url=url)
    assert needle in str(info.value)
    assert url in str(info.value)
    assert isinstance(info.value, ConsoleError)


def test_sample_is_immutable() -> None:
    s = parse_metrics(build_page(), timestamp=1)
    with pytest.raises(TypeError):
        s.series["x"] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.timestamp = 2  # type: ignore[misc]


def test_to_dict_has_the_monitor_keys() -> None:
    d = derive(parse_metrics(page("metrics_ngram.prom"), timestamp=1)).to_dict()
    assert set(d["requests"]) >= {"running", "waiting"}
    assert set(d["kv_cache"]) >= {"usage", "capacity_tokens"}
    assert set(d["throughput"]) >= {"generation_tokens_per_s", "prompt_tokens_per_s"}
    assert "hit_rate" in d["prefix_cache"]
    for k in ("ttft_s", "tpot_s"):
        assert set(d["latency"][k]) >= {"p50", "p90", "p99"}
    assert set(d["spec_decode"]) >= {"lifetime", "window"}


# --------------------------------------------------------------------------- tracker


def test_tracker_windows_staleness_and_errors() -> None:
    tr = MetricsTracker(window_s=10.0, stale_after_s=5.0)
    assert tr.window() is None
    for i in range(21):  # one sample a second, 10 generated tokens a second
        tr.feed(parse_metrics(build_page(gen=100 + 10 * i), timestamp=1000.0 + i))
    w = tr.window(now=1020.0)
    assert w is not None and w.window_s == pytest.approx(10.0)
    assert w.throughput.generation_tokens_per_s == pytest.approx(10.0)
    start = tr.since_start(now=1020.0)
    assert start is not None and start.window_s == pytest.approx(20.0)
    last = tr.last_interval(now=1020.0)
    assert last is not None and last.window_s == pytest.approx(1.0)
    assert not last.stale and last.age_s == 0.0
    # A failed scrape keeps the last good sample and marks it stale with its age.
    tr.feed_error(MetricsError("cannot reach x"), at=1023.0)
    f = tr.window(now=1023.0)
    assert f is not None and f.stale and f.age_s == pytest.approx(3.0)
    assert f.throughput.generation_tokens_per_s == pytest.approx(10.0)
    assert isinstance(tr.last_error, MetricsError)
    # Recovery clears the error; old age without error marks stale too.
    tr.feed(parse_metrics(build_page(gen=400), timestamp=1024.0))
    assert tr.last_error is None
    assert tr.window(now=1030.0).stale  # type: ignore[union-attr]


def test_tracker_restarts_history_when_the_server_restarts() -> None:
    tr = MetricsTracker(window_s=60)
    tr.feed(parse_metrics(build_page(gen=1000), timestamp=1))
    tr.feed(parse_metrics(build_page(gen=1100), timestamp=2))
    tr.feed(parse_metrics(build_page(gen=5), timestamp=3))  # restarted
    assert tr.first is tr.latest
    assert tr.since_start(now=3).window_s is None  # type: ignore[union-attr]
    tr.feed(parse_metrics(build_page(gen=25), timestamp=4))
    assert tr.since_start(now=4).throughput.generation_tokens_per_s == 20  # type: ignore[union-attr]


def test_window_never_spans_more_than_it_says_after_a_gap() -> None:
    """Nobody sampled for 90 s: the window restarts from the samples inside it,
    and its label is the span it covers, never "last 60 s" over 90 s."""
    from console.metrics import window_label

    tr = MetricsTracker(window_s=60)
    for i in range(5):
        tr.feed(parse_metrics(build_page(gen=100 + 10 * i), timestamp=1000.0 + i))
    assert window_label(tr.window(now=1004.0).window_s) == "last 4 s"  # type: ignore[union-attr]
    tr.feed(parse_metrics(build_page(gen=2000), timestamp=1094.0))
    assert tr.window(now=1094.0).window_s is None  # type: ignore[union-attr]
    assert window_label(None) == "no window yet"
    tr.feed(parse_metrics(build_page(gen=2010), timestamp=1095.0))
    w = tr.window(now=1095.0)
    assert w is not None and w.window_s == 1.0
    assert w.throughput.generation_tokens_per_s == 10.0
    for i in range(1, 80):  # a full minute and more at 1 Hz: the window stays 60 s
        tr.feed(parse_metrics(build_page(gen=2010 + i), timestamp=1095.0 + i))
    assert tr.window(now=1174.0).window_s == 60.0  # type: ignore[union-attr]
    assert window_label(90.0) == "last 90 s" and window_label(300.0) == "last 5 min"


# --------------------------------------------------------------------------- real server


def test_metrics_url_accepts_base_or_metrics_url() -> None:
    assert metrics_url("http://h:1") == "http://h:1/metrics"
    assert metrics_url("http://h:1/metrics") == "http://h:1/metrics"
    assert metrics_url("http://h:1/v1/") == "http://h:1/metrics"


def test_scrape_unreachable_names_the_url() -> None:
    with pytest.raises(MetricsError) as info:
        scrape("http://127.0.0.1:9", timeout=2.0)
    assert "http://127.0.0.1:9/metrics" in str(info.value)
    assert "cannot reach" in str(info.value)


def test_scrape_real_server(vllm_server) -> None:
    s = scrape(vllm_server.url)
    f = derive(s)
    assert f.requests.running is not None and f.kv_cache.usage is not None
    assert f.kv_cache.capacity_tokens and f.kv_cache.capacity_tokens > 0
    assert f.spec_decode is None  # the plain server runs without spec decode


async def test_ascrape_real_ngram_server(vllm_ngram_server) -> None:
    async with httpx.AsyncClient() as client:
        s = await ascrape(client, vllm_ngram_server.url)
    f = derive(s)
    assert f.spec_decode is not None and f.spec_decode.num_speculative_tokens == 4


# --------------------------------------------------------------------------- properties


@given(
    bounds=st.lists(st.floats(0.001, 1000), min_size=1, max_size=12, unique=True),
    counts=st.lists(st.integers(0, 50), min_size=13, max_size=13),
    qs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=5),
)
def test_quantile_is_monotonic_and_inside_the_buckets(
    bounds: list[float], counts: list[int], qs: list[float]
) -> None:
    bounds = sorted(bounds)
    cum, total = [], 0
    for i in range(len(bounds) + 1):
        total += counts[i]
        cum.append(float(total))
    buckets = (*zip(bounds, cum, strict=False), (float("inf"), cum[-1]))
    values = [bucket_quantile(q, buckets) for q in sorted(qs)]
    if total == 0:
        assert all(v is None for v in values)
        return
    assert all(v is not None and 0.0 <= v <= bounds[-1] for v in values)
    assert values == sorted(values)  # type: ignore[type-var]


def test_tracker_takes_kv_capacity_from_the_log_when_metrics_lack_it() -> None:
    from console.logs import parse_line

    tr = MetricsTracker()
    tr.feed(parse_metrics(build_page(cache_info='block_size="16"'), timestamp=1))
    assert tr.window(now=1).kv_cache.capacity_tokens is None  # type: ignore[union-attr]
    tr.note_log_event(parse_line("INFO 01-01 00:00:00 [k.py:1] GPU KV cache size: 4,096 tokens"))
    kv = tr.window(now=1).kv_cache  # type: ignore[union-attr]
    assert (kv.capacity_tokens, kv.capacity_source) == (4096, "log")


def test_old_per_step_histogram_is_not_tpot_with_spec_decode() -> None:
    """≤ v0.10 with spec decode: time_per_output_token_seconds is per step, not per token."""
    itl = {"0.05": 4, "+Inf": 4}
    page = build_page(
        itl_name="vllm:time_per_output_token_seconds",
        itl=itl,
        spec=(10, 40, 20, (8, 6, 4, 2)),
    )
    lat = derive(parse_metrics(page, timestamp=1)).latency
    assert lat.itl_s is not None and lat.itl_s.count == 4
    assert lat.tpot_s is None
