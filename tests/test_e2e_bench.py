"""`vllm-console bench` end to end against the real small Gemma: plain vs n-gram."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console.cli import main
from tests.helpers import free_port

MAX_TOKENS = 32


@pytest.fixture(scope="module")
def bench_json(
    vllm_server: Any, vllm_ngram_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(
            [
                "bench",
                "--url",
                vllm_server.url,
                "--url-b",
                vllm_ngram_server.url,
                "--sequential",
                "2",
                "--concurrent",
                "2",
                "--max-tokens",
                str(MAX_TOKENS),
                "--repeats",
                "1",
                "--warmup",
                "1",
                "--json",
                str(out),
                "--quiet",
            ]
        )
    assert rc == 0, stdout.getvalue()
    return json.loads(out.read_text()), stdout.getvalue()


def test_runs_both_arms_with_fixed_lengths(bench_json: tuple[dict[str, Any], str]) -> None:
    data, _ = bench_json
    assert data["complete"] is True
    assert [a["label"] for a in data["arms"]] == ["A", "B"]
    assert all(a["model"] == "gemma3-270m" for a in data["arms"])
    assert {(r["arm"], r["scenario"]) for r in data["runs"]} == {
        ("A", "sequential"),
        ("A", "concurrent"),
        ("B", "sequential"),
        ("B", "concurrent"),
    }
    for run in data["runs"]:
        assert run["failed"] == 0
        assert run["requests"] == 2
        # ignore_eos + max_tokens: every answer has exactly max_tokens tokens
        assert run["output_tokens"] == run["requests"] * MAX_TOKENS
        assert run["output_tok_s"] == pytest.approx(run["output_tokens"] / run["wall_s"])
        for req in run["per_request"]:
            assert req["output_tokens"] == MAX_TOKENS
            assert req["finish_reason"] == "length"
            assert 0 < req["ttft_s"] <= req["latency_s"] <= run["wall_s"]
            tpot = (req["latency_s"] - req["ttft_s"]) / (MAX_TOKENS - 1)
            assert req["tpot_s"] == pytest.approx(tpot)
        # sequential requests never overlap; concurrent ones start together
        starts = [q["start_s"] for q in run["per_request"]]
        if run["scenario"] == "sequential":
            first = run["per_request"][0]
            assert starts[1] >= first["start_s"] + first["latency_s"]
        else:
            assert max(starts) < min(q["ttft_s"] for q in run["per_request"])


def test_spec_decode_only_on_the_ngram_arm(bench_json: tuple[dict[str, Any], str]) -> None:
    data, _ = bench_json
    a, b = data["arms"]
    assert a["spec_decode"] is False and b["spec_decode"] is True
    k = b["num_speculative_tokens"]
    assert k == 4
    for run in data["runs"]:
        spec = run["spec_decode"]
        if run["arm"] == "A":
            assert spec is None
            continue
        d, t, acc = spec["drafts"], spec["draft_tokens"], spec["accepted_tokens"]
        assert d > 0 and 0 < t <= d * k and 0 <= acc <= t
        assert sum(spec["accepted_per_position"]) == acc
        per = spec["accepted_per_position"]
        assert per == sorted(per, reverse=True)  # position i needs i-1 accepted first
        assert spec["mean_acceptance_length"] == pytest.approx(1 + acc / d)
        assert spec["draft_acceptance_rate"] == pytest.approx(acc / t)
        assert spec["per_position"] == pytest.approx([x / d for x in per])
    summary = data["summary"]
    assert summary["arms"]["A"]["sequential"]["spec_decode"] is None
    assert summary["arms"]["B"]["sequential"]["spec_decode"]["drafts"] > 0


def test_speedup_kv_and_lossless_check(bench_json: tuple[dict[str, Any], str]) -> None:
    data, table = bench_json
    summary = data["summary"]
    for scenario in ("sequential", "concurrent"):
        wa = summary["arms"]["A"][scenario]["wall_s"]["median"]
        wb = summary["arms"]["B"][scenario]["wall_s"]["median"]
        assert summary["speedup"][scenario]["wall"] == pytest.approx(wa / wb)
        run_a = next(r for r in data["runs"] if r["arm"] == "A" and r["scenario"] == scenario)
        assert wa == pytest.approx(run_a["wall_s"])
    for arm in data["arms"]:
        assert arm["kv_cache_tokens"] > 0 and arm["kv_source"] == "metrics"
        assert arm["version"]
    eq = data["equality"]
    assert eq["greedy"] is True
    assert eq["checked"] == 4
    assert eq["identical"] + len(eq["mismatches"]) == 4
    for m in eq["mismatches"]:
        assert m["unit"] == "token" and 0 <= m["first_difference"] <= MAX_TOKENS
    assert "Sequential ×2 wall: " in table and "Concurrent ×2 wall: " in table
    assert "Lossless check (greedy)" in table


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert "--url URL" in capsys.readouterr().err
    assert main(["bench", "--url-b", "http://127.0.0.1:1"]) == 2
    assert main(["bench", "--url", "http://x", "--repeats", "0"]) == 2


def test_unreachable_server_names_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["bench", "--url", url, "--sequential", "1", "--concurrent", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and url in err


def test_bad_prompt_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text("not json\n")
    rc = main(["bench", "--url", "http://127.0.0.1:1", "--prompts", str(bad)])
    assert rc == 1
    assert f"{bad}:1: not JSON" in capsys.readouterr().err
