"""Bench by category: the shipped prompts, the per-category figures, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console import metrics
from console.bench.categories import (
    CATEGORIES,
    CategoryRun,
    by_category,
    load_dataset,
    merged,
    render_category_table,
    speedup,
)
from console.bench.client import RequestResult
from console.bench.compare import single_turn, vllm_bench_argv
from console.cli import main


def req(ttft: float, latency: float, tokens: int) -> RequestResult:
    return RequestResult("p", ttft=ttft, latency=latency, output_tokens=tokens)


def spec(d: int, t: int, a: int, pos: tuple[int, ...]) -> metrics.SpecDecodeStats:
    return metrics.SpecDecodeStats.from_counts(d, t, a, pos, None)


def test_shipped_prompts_cover_the_fields_categories() -> None:
    prompts = load_dataset()
    groups = by_category(prompts)
    assert list(groups) == list(CATEGORIES)
    assert all(len(g) == 10 for g in groups.values())
    assert len({p.id for p in prompts}) == 80
    multi = groups["multi-turn"]
    assert all([m["role"] for m in p.messages] == ["user", "assistant", "user"] for p in multi)


def test_user_dataset(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"category": "sql", "prompt": "SELECT 1?"}) + "\n"
        + json.dumps({"prompt": "hello"}) + "\n"
        + json.dumps({"category": "coding", "prompt": "fizzbuzz"}) + "\n"
    )  # fmt: skip
    assert list(by_category(load_dataset(path))) == ["coding", "sql", "chat"]


def test_decode_window_figures_speedup_and_overall() -> None:
    # A: 11 tokens, first after 0.5 s, last at 1.5 s -> 10 tokens in 1 s of decode
    a = [CategoryRun("coding", [req(0.5, 1.5, 11)]), CategoryRun("qa", [req(0.5, 2.5, 11)])]
    b = [
        CategoryRun("coding", [req(0.5, 1.0, 11)], spec(4, 16, 8, (4, 2, 1, 1))),
        CategoryRun("qa", [req(0.5, 2.5, 11)], spec(10, 40, 0, (0, 0, 0, 0))),
    ]
    assert a[0].decode_tok_s == pytest.approx(10.0) and a[0].decode_tpot == pytest.approx(0.1)
    assert a[0].tpot_e2e == pytest.approx(1.5 / 11)
    assert speedup(a[0], b[0]) == pytest.approx(2.0)
    assert speedup(a[1], b[1]) == pytest.approx(1.0)
    overall = merged(b)
    assert overall.spec is not None and overall.spec.drafts == 14
    assert overall.spec.mean_acceptance_length == pytest.approx(1 + 8 / 14)
    table = render_category_table(a, b)
    rows = {line.split()[0]: line for line in table.splitlines() if line[:1].isalpha()}
    assert "3.00" in rows["coding"] and "2.00x" in rows["coding"]  # 1 + 8/4
    assert "0%" in rows["qa"] and "1.00x" in rows["qa"]
    assert "overall" in rows and "decode TPOT" in table
    json.dumps([r.to_dict() for r in b], allow_nan=False)


def test_compare_sends_the_same_single_turn_prompts(tmp_path: Path) -> None:
    texts = single_turn(load_dataset())
    assert len(texts) == 80
    assert texts[70] == "Mostly food. Give me a plan with one food highlight per day."
    argv = vllm_bench_argv("py", "http://h:1", "m", "/tok", tmp_path / "d", 3, 32, tmp_path)
    from console.runtime.cluster import LAUNCHER

    assert argv[1] == str(LAUNCHER) and Path(argv[1]).is_file()
    assert argv[2:4] == ["bench", "serve"]
    joined = " ".join(argv)
    for flag in ("--max-concurrency 1", "--ignore-eos", "--sharegpt-output-len 32",
                 "--disable-shuffle", "--num-prompts 3", "--temperature 0"):  # fmt: skip
        assert flag in joined


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--dataset", "/nope/x.jsonl", "--url", "http://127.0.0.1:9"], "cannot read prompt file"),
        (["--compare-vllm"], "--compare-vllm measures one running server"),
    ],
)
def test_cli_errors(args: list[str], text: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", *args])
    err = capsys.readouterr().err
    assert code in (1, 2) and text in err and "Traceback" not in err


def test_real_server_category_bench(vllm_ngram_server: Any, tmp_path: Path, capsys) -> None:
    """Two categories of a small dataset against the real n-gram server."""
    path = tmp_path / "d.jsonl"
    rows = [
        {"category": "extraction", "prompt": 'Return JSON {"a": 1, "b": 2} exactly, twice.'},
        {"category": "writing", "prompt": "Write one line about the sea."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_json = tmp_path / "r.json"
    args = ["--dataset", str(path), "--max-tokens", "16", "--warmup", "0", "--quiet"]
    code = main(["bench", "--url", vllm_ngram_server.url, *args, "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert {"extraction", "writing", "overall"} <= set(lines)
    data = json.loads(out_json.read_text())
    [runs] = data["categories"].values()
    assert [r["category"] for r in runs] == ["extraction", "writing"]
    assert all(r["spec_decode"]["drafts"] > 0 for r in runs)  # acceptance per category
    assert all(r["decode_tpot_s"] > 0 for r in runs)


def test_compare_with_vllm_bench_serve(vllm_server: Any, tmp_path: Path, capsys) -> None:
    """One alternating pair of rounds: both clients measure the same server and prompts."""
    out_json = tmp_path / "c.json"
    code = main(["bench", "--url", vllm_server.url, "--compare-vllm", "--rounds", "2",
                 "--sequential", "2", "--max-tokens", "8", "--json", str(out_json)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "median ratio console/vllm" in out
    data = json.loads(out_json.read_text())
    assert [r["first"] for r in data["rounds"]] == ["console", "vllm"]
    for r in data["rounds"]:
        assert r["console_tokens"] == r["vllm_tokens"] == 16  # same work on both sides
        assert r["console_tok_s"] > 0 and r["vllm_tok_s"] > 0
    assert data["median_ratio"] > 0


def test_a_round_whose_sides_did_different_work_is_not_counted() -> None:
    from console.bench.compare import Comparison, Round

    good = Round(0, "console", 2.0, 2.0, 72, 72)
    broken = Round(1, "vllm", 1.5, 0.6, 72, 37)  # the server died during vLLM's side
    result = Comparison("u", "m", 3, 24, [good, broken])
    assert broken.ratio is None and result.median_ratio == 1.0
    assert "not counted: 72 vs 37 tokens" in result.render()
