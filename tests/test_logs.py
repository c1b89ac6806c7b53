"""Log events: the real 0.32 logs, and hand-made lines for every format in
reference/vllm.md §2 (v0.10 to v0.33), failures and tracebacks included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.commands.logparse import run_parse
from console.errors import ConsoleError
from console.logs import (
    EngineInitialized,
    EngineStats,
    Failure,
    GraphCaptured,
    KvCacheSize,
    Listening,
    LogParser,
    MaxConcurrency,
    ModelLoaded,
    Ready,
    ServerVersion,
    SpecDecodeLogStats,
    parse_line,
    parse_lines,
    summarize,
)

DATA = Path(__file__).parent / "data" / "vllm-0.32-cpu"
API = "(APIServer pid=7) INFO 11-30 12:48:44 [loggers.py:335] "
ENG = "(EngineCore_DP0 pid=9) INFO 11-30 12:48:22 [kv_cache_utils.py:1136] "


def events_of(lines: list[str]) -> list:
    return list(parse_lines(lines))


# --------------------------------------------------------------------------- real logs


def test_real_ngram_log_startup_and_stats() -> None:
    with (DATA / "server_ngram.log").open() as fh:
        events = list(parse_lines(fh))
    kinds = [e.kind for e in events]
    for k in ("version", "loading_model", "weights_loaded", "kv_cache", "engine_ready", "ready"):
        assert k in kinds
    kv = next(e for e in events if isinstance(e, KvCacheSize))
    assert (kv.tokens, kv.max_concurrency, kv.tokens_per_request, kv.device) == (
        110733,
        54.07,
        2048,
        "CPU",
    )
    assert kv.process == "EngineCore" and kv.pid == 27381
    stats = [e for e in events if isinstance(e, EngineStats)]
    spec = [e for e in events if isinstance(e, SpecDecodeLogStats)]
    assert len(stats) == len(spec) == 5
    s = spec[1]
    assert (s.accepted, s.drafted) == (236, 304)
    assert s.mean_acceptance_length == 4.11
    assert s.per_position == (0.816, 0.763, 0.763, 0.763)
    assert s.acceptance_rate == pytest.approx(236 / 304, abs=5e-4)  # printed as 77.6%
    assert stats[1].prefix_hit_rate == pytest.approx(0.5)
    assert stats[0].kv_usage == pytest.approx(0.002)
    assert stats[0].kv_device == "CPU"
    summary = summarize(events)
    assert summary.ready and summary.failure is None
    assert summary.version == "0.32.0" and summary.max_model_len == 2048
    assert summary.engine_init_seconds == 100.98


def test_real_baseline_log_has_no_spec_decode_events() -> None:
    with (DATA / "server_baseline.log").open() as fh:
        events = list(parse_lines(fh))
    assert not any(isinstance(e, SpecDecodeLogStats) for e in events)
    assert any(isinstance(e, Ready) for e in events)


# --------------------------------------------------------------------------- formats


def test_engine_stats_v010_fixed_format_without_prefix() -> None:
    line = (
        "INFO 07-01 10:00:00 [loggers.py:118] Engine 000: Avg prompt throughput: 12.3 tokens/s, "
        "Avg generation throughput: 45.6 tokens/s, Running: 1 reqs, Waiting: 0 reqs, "
        "GPU KV cache usage: 3.2%, Prefix cache hit rate: 41.0%"
    )
    e = parse_line(line)
    assert isinstance(e, EngineStats)
    assert (e.prompt_tokens_per_s, e.generation_tokens_per_s, e.running, e.waiting) == (
        12.3,
        45.6,
        1,
        0,
    )
    assert e.kv_usage == pytest.approx(0.032) and e.prefix_hit_rate == pytest.approx(0.41)
    assert e.process is None and e.time == "07-01 10:00:00" and e.engine == 0


def test_engine_stats_v020_deferred_and_preemptions() -> None:
    e = parse_line(
        API + "Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: "
        "88.0 tokens/s, Running: 4 reqs, Waiting: 3 reqs, Deferred: 1 reqs, Preemptions: 2, "
        "GPU KV cache usage: 97.5%, Prefix cache hit rate: nan%"
    )
    assert isinstance(e, EngineStats)
    assert (e.deferred, e.preemptions, e.waiting) == (1, 2, 3)
    assert e.prefix_hit_rate is None  # nan: no queries yet
    assert e.kv_usage == pytest.approx(0.975)


def test_engine_stats_v033_optional_parts_and_aggregated() -> None:
    e = parse_line(
        "(APIServer pid=1) INFO 05-02 09:00:00 [loggers.py:280] 2 Engines Aggregated: "
        "Avg prompt throughput: 1.0 tokens/s, Avg generation throughput: 2.0 tokens/s, "
        "Running: 1 reqs, Waiting: 0 reqs, Deferred: 0 reqs, KV fetch: 1 waiting to start, "
        "2 in progress, 3 completed waiting, GPU KV cache usage: 10.0%, Corrupted: 0 reqs, "
        "External prefix cache hit rate: 5.0%, MM cache hit rate: 7.5%"
    )
    assert isinstance(e, EngineStats)
    assert e.engines == 2 and e.engine is None
    assert e.prefix_hit_rate is None  # omitted until the first prefix-cache query
    assert e.kv_usage == pytest.approx(0.1)


def test_spec_decode_new_format() -> None:
    e = parse_line(
        API + "SpecDecoding metrics: Mean acceptance length: 3.68, Accepted throughput: "
        "112.40 tokens/s, Drafted throughput: 165.20 tokens/s, Accepted: 1124 tokens, "
        "Drafted: 1652 tokens, Per-position acceptance rate: 0.850, 0.720, 0.620, 0.510, "
        "Avg Draft acceptance rate: 68.0%"
    )
    assert isinstance(e, SpecDecodeLogStats)
    assert (e.accepted, e.drafted, e.mean_acceptance_length) == (1124, 1652, 3.68)
    assert e.per_position == (0.85, 0.72, 0.62, 0.51)
    assert e.acceptance_rate == pytest.approx(0.68)
    assert (e.accepted_tokens_per_s, e.drafted_tokens_per_s) == (112.4, 165.2)
    d = e.to_dict()
    assert d["kind"] == "spec_decode_stats"
    assert {
        "mean_acceptance_length",
        "accepted",
        "drafted",
        "per_position",
        "acceptance_rate",
    } <= set(d)


def test_spec_decode_old_v010_format_and_nan() -> None:
    e = parse_line(
        "INFO 07-01 10:00:10 [metrics.py:90] SpecDecoding metrics: Draft acceptance rate: "
        "68.0%, Mean acceptance length: 3.68, Accepted: 1124 tokens, Drafted: 1652 tokens, "
        "Per-position acceptance rate: 0.850, 0.720, 0.620, 0.510"
    )
    assert isinstance(e, SpecDecodeLogStats)
    assert e.per_position == (0.85, 0.72, 0.62, 0.51) and e.accepted_tokens_per_s is None
    n = parse_line(
        API + "SpecDecoding metrics: Mean acceptance length: nan, Accepted throughput: 0.00 "
        "tokens/s, Drafted throughput: 0.00 tokens/s, Accepted: 0 tokens, Drafted: 0 tokens, "
        "Per-position acceptance rate: nan, nan, Avg Draft acceptance rate: nan%"
    )
    assert isinstance(n, SpecDecodeLogStats)
    assert n.acceptance_rate is None and n.mean_acceptance_length is None


def test_kv_size_single_line_v028_and_gpu_plus_host() -> None:
    e = parse_line(
        ENG + "GPU KV cache size: 1,234,560 tokens, Maximum concurrency for 262,144 tokens "
        "per request: 4.71x"
    )
    assert isinstance(e, KvCacheSize)
    assert (e.tokens, e.max_concurrency, e.tokens_per_request, e.device) == (
        1234560,
        4.71,
        262144,
        "GPU",
    )
    h = parse_line(
        ENG + "GPU + host KV cache size: 2,000 tokens, Maximum concurrency for "
        "1,000 tokens per request: 2.00x"
    )
    assert isinstance(h, KvCacheSize) and h.device == "GPU + host"


def test_kv_size_two_lines_before_v028() -> None:
    lines = [
        ENG + "GPU KV cache size: 1,234,560 tokens",
        ENG + "Maximum concurrency for 262,144 tokens per request: 4.71x",
        API + "Supported tasks: ['generate']",
    ]
    # Stateless: two separate facts.
    assert isinstance(parse_line(lines[0]), KvCacheSize)
    assert isinstance(parse_line(lines[1]), MaxConcurrency)
    # Stateful: one event.
    events = events_of(lines)
    assert len(events) == 1
    kv = events[0]
    assert isinstance(kv, KvCacheSize)
    assert (kv.tokens, kv.max_concurrency, kv.tokens_per_request) == (1234560, 4.71, 262144)


def test_kv_size_line_alone_is_flushed_at_the_end() -> None:
    p = LogParser()
    assert p.feed(ENG + "GPU KV cache size: 100 tokens") == []
    (e,) = p.flush()
    assert isinstance(e, KvCacheSize) and e.tokens == 100 and e.max_concurrency is None


@pytest.mark.parametrize(
    ("message", "cls", "fields"),
    [
        (
            "Model loading took 15.2 GiB memory and 48.123456 seconds",
            ModelLoaded,
            {"memory_gib": 15.2, "seconds": 48.123456},
        ),
        (
            "Model loading took 15.2000 GiB and 48.123456 seconds",
            ModelLoaded,
            {"memory_gib": 15.2, "seconds": 48.123456},
        ),
        (
            "Graph capturing finished in 7 secs, took 0.52 GiB",
            GraphCaptured,
            {"seconds": 7.0, "memory_gib": 0.52},
        ),
        (
            "init engine (profile, create kv cache, warmup model) took 95.31 s (compilation: "
            "12.50 s — language_model: 10.00 s, encoder: 2.50 s)",
            EngineInitialized,
            {"seconds": 95.31, "compilation_seconds": 12.5},
        ),
        (
            "init engine (profile, create kv cache, warmup model) took 95.31 seconds",
            EngineInitialized,
            {"seconds": 95.31},
        ),
        (
            "Starting vLLM API server 0 on http://0.0.0.0:8000",
            Listening,
            {"url": "http://0.0.0.0:8000"},
        ),
        ("Starting vLLM server on http://0.0.0.0:8000", Listening, {"url": "http://0.0.0.0:8000"}),
        ("vLLM API server version 0.11.0", ServerVersion, {"version": "0.11.0"}),
        (
            "vLLM server version 0.33.0, serving model nvidia/Gemma-4-26B-A4B-NVFP4",
            ServerVersion,
            {"version": "0.33.0", "model": "nvidia/Gemma-4-26B-A4B-NVFP4"},
        ),
    ],
)
def test_startup_lines(message: str, cls: type, fields: dict) -> None:
    e = parse_line("(EngineCore_DP0 pid=9) INFO 05-02 09:00:00 [core.py:1] " + message)
    assert isinstance(e, cls)
    for k, v in fields.items():
        assert getattr(e, k) == v
    assert e.process == "EngineCore_DP0" and e.pid == 9


def test_ansi_colour_and_uvicorn_prefix_v020() -> None:
    coloured = (
        "\x1b[1;36m(APIServer pid=12)\x1b[0;0m \x1b[32mINFO\x1b[0m 05-02 09:00:00 "
        "[entry.py:139] Starting vLLM server on http://127.0.0.1:8000"
    )
    e = parse_line(coloured)
    assert isinstance(e, Listening) and e.process == "APIServer" and e.pid == 12
    r = parse_line("(APIServer pid=12) INFO:     Application startup complete.")
    assert isinstance(r, Ready) and r.pid == 12
    assert isinstance(parse_line("INFO:     Application startup complete."), Ready)


# --------------------------------------------------------------------------- failures

# Hand-made from reference/vllm.md §2.0/§2.3 and vLLM 0.32's own messages: a
# start that fails the free-memory check (EngineCore traceback via
# logger.exception, then the frontend's "see root cause above").
FREE_MEM_LOG = (Path(__file__).parent / "data" / "logs" / "failed_free_memory.log").read_text()


def test_free_memory_failure_is_the_cause_not_the_traceback() -> None:
    events = events_of(FREE_MEM_LOG.splitlines(keepends=True))
    failures = [e for e in events if isinstance(e, Failure)]
    causes = [f.cause for f in failures]
    assert causes == ["error", "free_memory", "engine_init"]
    fm = failures[1]
    assert fm.message.startswith("ValueError: Free memory on device cuda:0 (67.92/121.69 GiB)")
    assert "\n" not in fm.message and "File" not in fm.message
    assert (fm.free_gib, fm.total_gib, fm.device) == (67.92, 121.69, "cuda:0")
    assert fm.exception == "ValueError" and fm.location == "utils.py:763"
    assert fm.process == "EngineCore_DP0"
    assert failures[2].exception == "RuntimeError" and failures[2].process == "APIServer"
    s = summarize(events)
    assert s.failure is fm and not s.ready


def test_generic_traceback_with_chained_exception_gives_the_exception_lines() -> None:
    log = [
        "Traceback (most recent call last):",
        '  File "/x/model_runner.py", line 12, in load',
        "    torch.empty(10)",
        "KeyError: 'model.layers.0.weight'",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/x/gpu_worker.py", line 99, in init',
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        "INFO:     Shutting down",
    ]
    failures = [e for e in events_of(log) if isinstance(e, Failure)]
    assert [f.message for f in failures] == [
        "KeyError: 'model.layers.0.weight'",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
    ]
    assert failures[1].exception == "torch.OutOfMemoryError"
    assert failures[1].location == "gpu_worker.py:99"


def test_stateless_free_memory_line() -> None:
    e = parse_line(
        "ValueError: Free memory on device (10.00/80.00 GiB) on startup. Desired GPU memory "
        "utilization is (0.9, 72.00 GiB)."
    )
    assert isinstance(e, Failure) and e.cause == "free_memory" and e.device is None
    assert (e.free_gib, e.total_gib) == (10.0, 80.0)


# --------------------------------------------------------------------------- logs --parse


def test_run_parse_json_real_log(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_parse(str(DATA / "server_ngram.log"), True)
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    objs = [json.loads(x) for x in lines]
    assert all("kind" in o for o in objs)
    kv = next(o for o in objs if o["kind"] == "kv_cache")
    assert (kv["tokens"], kv["max_concurrency"]) == (110733, 54.07)
    es = next(o for o in objs if o["kind"] == "engine_stats")
    assert set(es) >= {
        "prompt_tokens_per_s",
        "generation_tokens_per_s",
        "running",
        "waiting",
        "kv_usage",
        "prefix_hit_rate",
    }
    assert any(o["kind"] == "ready" for o in objs)


def test_run_parse_human_summary_of_a_failed_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "failed.log"
    f.write_text(FREE_MEM_LOG)
    assert run_parse(str(f), False) == 1
    out = capsys.readouterr().out
    assert "FAILED      ValueError: Free memory on device cuda:0 (67.92/121.69 GiB)" in out
    assert "Traceback" not in out
    assert run_parse(str(f), True) == 1
    failures = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert any(o["kind"] == "failure" and o["message"].startswith("ValueError") for o in failures)


def test_run_parse_human_summary_of_a_good_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_parse(str(DATA / "server_ngram.log"), False) == 0
    out = capsys.readouterr().out
    assert "KV cache    110,733 tokens (max concurrency 54.07x)" in out
    assert "ready       listening on http://127.0.0.1:8012" in out
    assert "engine init 101.0 s" in out


def test_run_parse_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConsoleError) as info:
        run_parse(str(tmp_path / "nope.log"), False)
    assert "nope.log" in str(info.value)


# --------------------------------------------------------------------------- properties


_PIECES = [
    "(APIServer pid=1) ",
    "INFO 11-30 12:00:00 [x.py:1] ",
    "ERROR 11-30 12:00:00 [x.py:1] ",
    "Traceback (most recent call last):",
    '  File "a.py", line 3, in f',
    "ValueError: boom",
    "GPU KV cache size: 1,000 tokens",
    "Maximum concurrency for 10 tokens per request: 1.00x",
    "SpecDecoding metrics: ",
    "\x1b[32m",
    "\r",
]


@given(st.lists(st.text() | st.sampled_from(_PIECES), max_size=30))
def test_parser_never_raises_on_any_input(lines: list[str]) -> None:
    p = LogParser()
    for line in lines:
        for e in p.feed(line):
            e.to_dict()
        parse_line(line)
    p.flush()
