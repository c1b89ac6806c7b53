"""``profiles fit``: weights, KV per token and KV capacity, checked against real vLLM."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from console import fit
from console.cli import main
from console.profiles import load_profile, with_overrides

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))


def logged_kv(log: str) -> tuple[int, int, float]:
    """(tokens, max-model-len, concurrency) from vLLM's ``KV cache size`` line."""
    match = re.search(
        r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per "
        r"request: ([\d.]+)x",
        log,
    )
    assert match, "no KV cache size line"
    tokens, length, conc = match.groups()
    return int(tokens.replace(",", "")), int(length.replace(",", "")), float(conc)


def gemma3_kinds() -> tuple[fit.LayerKind, ...]:
    facts = fit.shipped_facts("gemma3-270m")
    assert facts is not None
    return facts.kinds


def test_capacity_reproduces_the_captured_cpu_log() -> None:
    """vLLM 0.32 CPU, Gemma 3 270M, 2 GiB KV (the captured server log): exact."""
    tokens, length, conc = logged_kv(
        (DATA / "vllm-0.32-cpu" / "server_baseline.log").read_text(encoding="utf-8")
    )
    got, got_conc = fit.capacity(
        gemma3_kinds(), 2 * fit.GIB, dtype_bytes=2, max_len=length, block=128, in_flight=2048
    )
    assert (got, round(got_conc, 2)) == (tokens, conc) == (110_733, 54.07)


def test_sliding_window_layers_hold_a_window_not_the_context() -> None:
    facts = fit.shipped_facts("google/gemma-4-26B-A4B-it")
    assert facts is not None
    assert [(k.name, k.count, k.kv_heads, k.head_dim) for k in facts.kinds] == [
        ("full", 5, 2, 512),
        ("sliding", 25, 8, 256),
    ]
    budget = 20 * fit.GIB
    tokens, _ = fit.capacity(
        facts.kinds, budget, dtype_bytes=2, max_len=131072, block=16, in_flight=8192
    )
    every_layer = budget // sum(k.count * k.bytes_per_token(2) for k in facts.kinds)
    full_only = budget // sum(k.count * k.bytes_per_token(2) for k in facts.kinds if not k.window)
    assert every_layer < tokens < full_only  # the windows cost something, not the context
    # E2B: the 20 KV-shared layers store nothing; 15 layers do (3 of them full attention)
    e2b = fit.shipped_facts("google/gemma-4-E2B-it")
    assert e2b is not None and [k.count for k in e2b.kinds] == [3, 12]


def test_real_cpu_server_kv_capacity_within_10_percent(vllm_server) -> None:
    """The small Gemma's estimate against what the running server itself reports."""
    text = httpx.get(f"{vllm_server.url}/metrics", timeout=30).text
    info = next(
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "vllm:cache_config_info"
    )
    reported = int(info["kv_cache_size_tokens"])
    if vllm_server.log_path is not None:  # started by the fixture: the log says the same
        tokens, _, _ = logged_kv(vllm_server.log_path.read_text(encoding="utf-8"))
        assert tokens == reported
    space = int(info["kv_cache_memory_bytes"]) / fit.GIB
    profile = load_profile("gemma3-270m-cpu")
    env = {**profile.serve.env, "VLLM_CPU_KVCACHE_SPACE": f"{space:g}"}
    estimate = fit.estimate(with_overrides(profile, env=env))
    assert abs(estimate.kv_tokens - reported) <= 0.10 * reported, (estimate.kv_tokens, reported)


def test_presets_on_named_boxes() -> None:
    gb10 = fit.estimate(load_profile("gemma4-26b-nvfp4-gb10-mtp"), box="gb10")
    assert gb10.fits and gb10.kv_dtype_bytes == 1 and gb10.weights_draft > 0
    assert (
        gb10.weights_target
        < fit.estimate(load_profile("gemma4-26b-a4b-mtp"), box="gb10").weights_target
    )
    h200 = fit.estimate(load_profile("gemma4-31b-mtp"), box="h200")
    assert h200.fits and h200.max_len == 32768
    small = fit.estimate(load_profile("gemma4-31b-mtp"), gpu_memory_gb=48)
    assert not small.fits and any("does NOT fit" in line for line in small.lines())


def test_cli_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "fit", "gemma4-e2b-mtp", "--box", "h100"]) == 0
    out = capsys.readouterr().out
    assert "KV capacity" in out and "max concurrency at max-model-len 32,768" in out
    assert main(["profiles", "fit", "gemma4-31b-mtp", "--gpu-memory", "24"]) == 1
    assert "does NOT fit" in capsys.readouterr().out
    assert main(["profiles", "fit", "gemma4-e2b-mtp", "--gpu-memory", "0"]) == 2
    assert "--gpu-memory" in capsys.readouterr().err
