"""The bench report: summaries, speedups, the lossless check and the seed-style table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console import metrics
from console.bench import (
    CONCURRENT,
    SEQUENTIAL,
    ArmInfo,
    BenchConfig,
    BenchResult,
    PromptPlan,
    RunRecord,
    load_prompts,
    write_json,
)
from console.bench.client import RequestResult
from console.bench.report import equality, first_difference, headline, render_table, summarize
from console.errors import ConsoleError


def _req(pid: str, ttft: float, latency: float, tokens: int, ids: list[int]) -> RequestResult:
    return RequestResult(
        prompt_id=pid,
        ttft=ttft,
        latency=latency,
        output_tokens=tokens,
        prompt_tokens=20,
        text=" ".join(f"w{i}" for i in ids),
        token_ids=ids,
    )


def _spec(d: int, t: int, a: int, pos: tuple[int, ...]) -> metrics.SpecDecodeStats:
    return metrics.SpecDecodeStats.from_counts(d, t, a, pos, 1.0)


def _result() -> BenchResult:
    config = BenchConfig(sequential=3, concurrent=2, max_tokens=4, repeats=2, warmup=0)
    res = BenchResult(config=config)
    res.arms = [
        ArmInfo("A", "plain", url="http://a", model="m", kv_cache_tokens=1000, spec_decode=False),
        ArmInfo(
            "B",
            "ngram",
            url="http://b",
            model="m",
            kv_cache_tokens=900,
            spec_decode=True,
            num_speculative_tokens=4,
        ),
    ]
    ids = [1, 2, 3, 4]
    for rep, (wa, wb) in enumerate([(23.2, 9.9), (25.0, 10.5)]):
        res.runs.append(
            RunRecord(
                "A", SEQUENTIAL, rep, wa, [_req(f"p{i}", 0.1, wa / 3, 4, ids) for i in range(3)]
            )
        )
        res.runs.append(
            RunRecord(
                "B",
                SEQUENTIAL,
                rep,
                wb,
                [_req(f"p{i}", 0.1, wb / 3, 4, ids if i else [1, 2, 9, 4]) for i in range(3)],
                spec=_spec(10, 40, 20, (8, 6, 4, 2)),
            )
        )
    res.runs.append(
        RunRecord("A", CONCURRENT, 0, 25.9, [_req(f"c{i}", 0.2, 25, 4, ids) for i in range(2)])
    )
    res.runs.append(
        RunRecord(
            "B",
            CONCURRENT,
            0,
            13.6,
            [_req(f"c{i}", 0.2, 13, 4, ids) for i in range(2)],
            spec=_spec(5, 20, 15, (5, 4, 3, 3)),
        )
    )
    return res


def test_summary_medians_and_speedup() -> None:
    s = summarize(_result())
    a_seq = s["arms"]["A"][SEQUENTIAL]
    assert a_seq["wall_s"]["median"] == pytest.approx((23.2 + 25.0) / 2)
    assert a_seq["wall_s"]["min"] == 23.2 and a_seq["wall_s"]["max"] == 25.0
    assert a_seq["output_tokens"] == [12, 12]
    assert a_seq["output_tok_s"]["median"] == pytest.approx(((12 / 23.2) + (12 / 25.0)) / 2)
    assert a_seq["spec_decode"] is None
    sp = s["speedup"][SEQUENTIAL]
    assert sp["wall"] == pytest.approx(((23.2 + 25.0) / 2) / ((9.9 + 10.5) / 2))
    assert s["speedup"][CONCURRENT]["wall"] == pytest.approx(25.9 / 13.6)
    paired = sp["wall_paired"]
    assert paired["n"] == 2
    assert paired["min"] == pytest.approx(23.2 / 9.9) or paired["min"] == pytest.approx(25 / 10.5)
    assert paired["median"] == pytest.approx((23.2 / 9.9 + 25.0 / 10.5) / 2)


def test_spec_figures_sum_counts_across_repeats() -> None:
    spec = summarize(_result())["arms"]["B"][SEQUENTIAL]["spec_decode"]
    assert (spec["drafts"], spec["draft_tokens"], spec["accepted_tokens"]) == (20, 80, 40)
    assert spec["mean_acceptance_length"] == pytest.approx(1 + 40 / 20)
    assert spec["draft_acceptance_rate"] == pytest.approx(40 / 80)
    assert spec["per_position"] == pytest.approx([16 / 20, 12 / 20, 8 / 20, 4 / 20])


def test_tpot_follows_vllm_definition() -> None:
    r = _req("x", ttft=0.5, latency=2.0, tokens=4, ids=[1, 2, 3, 4])
    assert r.tpot == pytest.approx((2.0 - 0.5) / 3)
    assert _req("x", 0.5, 0.5, 1, [1]).tpot is None


def test_equality_names_first_differing_token() -> None:
    eq = equality(_result())
    assert eq is not None
    assert eq["checked"] == 3 * 2 + 2
    assert eq["identical"] == eq["checked"] - 2
    m = eq["mismatches"][0]
    assert (m["prompt_id"], m["first_difference"], m["unit"]) == ("p0", 2, "token")
    assert first_difference([1, 2], [1, 2, 3]) == 2
    assert first_difference("abc", "abc") is None


def test_headline_matches_the_seed_format() -> None:
    res = _result()
    res.runs = [r for r in res.runs if r.repeat == 0]
    res.config = BenchConfig(sequential=3, concurrent=2, max_tokens=4, repeats=1, warmup=0)
    lines = headline(res)
    assert lines[0] == "Sequential ×3 wall: 23.2 s → 9.9 s (2.34x)"
    assert lines[1] == "Concurrent ×2 wall: 25.9 s → 13.6 s (1.90x)"
    assert lines[2].startswith("Avg sequential tok/s:")


def test_table_shows_arms_spec_and_mismatches() -> None:
    table = render_table(_result())
    assert "KV cache 1,000 tokens" in table and "spec decode k=4" in table
    assert "acceptance length" in table and "3.00 / 5" in table
    assert "Lossless check (greedy): 6/8 answers identical" in table
    assert "first difference at token 2" in table


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bench.json"
    write_json(_result(), path)
    data = json.loads(path.read_text())
    assert data["schema"] == "vllm-console.bench/1"
    assert data["complete"] is False
    assert data["summary"]["speedup"][SEQUENTIAL]["wall"] > 2
    assert len(data["runs"]) == 6


def test_shipped_prompts_and_plan() -> None:
    prompts = load_prompts()
    assert len(prompts) >= 40
    assert len({p.id for p in prompts}) == len(prompts)
    kinds = {p.kind for p in prompts}
    assert {"explain", "code", "list", "summary", "rewrite", "repeat", "quote"} <= kinds
    config = BenchConfig()
    plan = PromptPlan(tuple(prompts), config)
    scen = {s.name: s for s in config.scenarios()}
    used = [p.id for r in range(3) for s in scen.values() for p in plan.for_run(s, r)]
    used += [p.id for p in plan.warmup()]
    assert not plan.reused and len(set(used)) == len(used)


def test_prompt_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"id": "x"}\n')
    with pytest.raises(ConsoleError, match=r"p\.jsonl:2: needs `messages`"):
        load_prompts(bad)
    with pytest.raises(ConsoleError, match="cannot read prompt file"):
        load_prompts(tmp_path / "missing.jsonl")


class _LogReplay:
    """Replays a real captured server log where the bench asks a runtime for it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def logs(self, profile: object, *, follow: bool = False) -> list[str]:
        return self.path.read_text().splitlines()


def test_kv_capacity_from_the_startup_log() -> None:
    from console.bench.runner import _kv_from_log

    data = Path(__file__).parent / "data" / "vllm-0.32-cpu"
    kv = _kv_from_log(_LogReplay(data / "server_ngram.log"), None)
    assert kv is not None
    assert kv.tokens == 110_733
    assert kv.max_concurrency == pytest.approx(54.07, abs=0.01)
    assert _kv_from_log(_LogReplay(data / "missing.log"), None) is None
