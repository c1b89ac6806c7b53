"""The k-sweep's core without servers: input checks, the profile per k, the
table and best-k logic on hand-built results, ``--apply``'s profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from console import metrics
from console.bench.categories import CategoryRun
from console.bench.client import RequestResult
from console.bench.sweep import (
    SweepCell,
    SweepConfig,
    SweepResult,
    SweepServer,
    load_sweep_profile,
    parse_ks,
    spec_method,
    sweep_profiles,
)
from console.bench.sweep_apply import MARKER, choose_k, write_applied
from console.bench.sweep_report import (
    advisor_check,
    best_table,
    figures,
    plot_series,
    render_plot,
    render_table,
    write_json,
)
from console.cli import main
from console.errors import ConsoleError, UsageError
from console.profiles import render_argv
from console.profiles.loader import load_profile

# --------------------------------------------------------------------------- input


def test_parse_ks() -> None:
    assert parse_ks("6,1, 2,4,3,2") == (1, 2, 3, 4, 6)
    for bad in ("0,1", "1,x", "", "1,,2", "-1", "99"):
        with pytest.raises(UsageError):
            parse_ks(bad)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--sweep-k", "0,x", "gemma3-270m-cpu-ngram"], "--sweep-k: 0 is out of range"),
        (["--sweep-k", "1,x", "gemma3-270m-cpu-ngram"], "'x' is not a whole number"),
        (["--sweep-k", "1,2", "no-such-profile"], "no profile named 'no-such-profile'"),
        (["--sweep-k", "1,2", "gemma3-270m-cpu"], "has no serve.speculative_config"),
        (["--sweep-k", "1,2"], "needs the profile to sweep"),
        (["gemma3-270m-cpu-ngram"], "goes with --sweep-k"),
        (["--sweep-k", "1", "gemma3-270m-cpu-ngram", "--url", "http://h:1"], "drop --url"),
        (["--per-category", "2", "--url", "http://h:1"], "go with --sweep-k"),
        (["--sweep-k", "1", "gemma3-270m-cpu-ngram", "--per-category", "0"], "at least 1"),
        (["--sweep-k", "1", "gemma3-270m-cpu-ngram", "--category", "poetry"], "unknown poetry"),
        (["--sweep-k", "1", "gemma3-270m-cpu-ngram", "--apply-k", "1"], "go with --apply"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    private_state: Path, argv: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


# --------------------------------------------------------------------------- profiles per k


def _only_k_differs(a: dict, b: dict) -> None:
    for d in (a, b):
        d.pop("name"), d.pop("extends", None), d.pop("description", None)
        d["serve"]["speculative_config"].pop("num_speculative_tokens")
    assert a == b


def test_profile_per_k_ngram_differs_only_in_k_and_name() -> None:
    original = load_profile("gemma3-270m-cpu-ngram")
    plan = sweep_profiles(original, [1, 3, 6], port=18999)
    assert [k for k, _ in plan] == [None, 1, 3, 6]
    base = plan[0][1]
    assert base.serve.speculative_config is None
    assert "per-request-spec-decode-metrics" not in base.serve.engine_args
    assert "--speculative-config" not in render_argv(base)
    names = {p.name for _, p in plan}
    assert len(names) == 4 and original.name not in names  # never the running profile's record
    for k, p in plan[1:]:
        assert p.serve.port == 18999
        argv = render_argv(p)
        spec = json.loads(argv[argv.index("--speculative-config") + 1])
        assert spec == {**original.serve.speculative_config, "num_speculative_tokens": k}
        a = p.model_dump()
        b = original.model_dump()
        a["serve"]["port"] = b["serve"]["port"]
        _only_k_differs(a, b)


@pytest.mark.parametrize("name", ["gemma4-e2b-mtp", "gemma4-26b-a4b-mtp", "gemma4-31b-mtp"])
def test_mtp_presets_render_the_right_speculative_config_per_k(name: str) -> None:
    """GPU-only to run; what can be checked here is the command line each k starts."""
    from console.profiles.container import container_run

    original = load_profile(name)
    assert spec_method(original) == "mtp"
    seen_containers = set()
    for k, p in sweep_profiles(original, [1, 2, 3, 4, 6]):
        argv = render_argv(p)
        run = container_run(p)
        seen_containers.add(run.name)
        if k is None:
            assert "--speculative-config" not in argv
            assert not any("per-request-spec-decode" in a for a in argv)
            continue
        spec = json.loads(argv[argv.index("--speculative-config") + 1])
        assert spec["num_speculative_tokens"] == k
        assert spec["model"] == original.serve.speculative_config["model"]
        assert set(spec) == set(original.serve.speculative_config)
    assert len(seen_containers) == 6  # one container name per server, none the original's


def test_draft_model_profile_per_k(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        "name: draft\nextends: gemma4-31b-baseline\nserve:\n  speculative_config:\n"
        "    model: google/gemma-3-270m-it\n    num_speculative_tokens: 5\n"
    )
    original = load_profile(str(draft))
    assert spec_method(original) == "draft_model"
    for k, p in sweep_profiles(original, [2, 4])[1:]:
        argv = render_argv(p)
        spec = json.loads(argv[argv.index("--speculative-config") + 1])
        assert spec == {"model": "google/gemma-3-270m-it", "num_speculative_tokens": k}


def test_load_sweep_profile_errors_exit_2(private_state: Path) -> None:
    with pytest.raises(UsageError):
        load_sweep_profile("no-such-profile")
    with pytest.raises(UsageError):
        load_sweep_profile("gemma3-270m-cpu")
    assert load_sweep_profile("gemma3-270m-cpu-ngram").name == "gemma3-270m-cpu-ngram"


# --------------------------------------------------------------------------- hand-built results


def _req(pid: str, tokens: int, latency: float, ttft: float = 0.1) -> RequestResult:
    return RequestResult(
        prompt_id=pid, ttft=ttft, latency=latency, output_tokens=tokens, finish_reason="length"
    )


def _spec(per_position: list[float], drafts: int) -> metrics.SpecDecodeStats:
    pos = tuple(round(a * drafts) for a in per_position)
    return metrics.SpecDecodeStats.from_counts(
        drafts, drafts * len(per_position), sum(pos), pos, None
    )


def _cell(cat: str, load: int, tok_s: float, rates: list[float] | None, n: int = 2) -> SweepCell:
    tokens = 32
    wall = n * tokens / tok_s
    reqs = [_req(f"{cat}-{i}", tokens, wall if load > 1 else wall / n) for i in range(n)]
    run = CategoryRun(cat, reqs, _spec(rates, 200) if rates else None)
    return SweepCell(cat, load, run, wall, 1.0)


SEED = [0.85, 0.72, 0.62, 0.51]
# tok/s per (k, load, category): k=4 wins at one stream, k=2 under load, and
# the baseline wins maths at 4 concurrent (speculation does not pay there)
TOK = {
    None: {1: {"coding": 10.0, "maths": 10.0}, 4: {"coding": 30.0, "maths": 30.0}},
    1: {1: {"coding": 14.0, "maths": 12.0}, 4: {"coding": 36.0, "maths": 28.0}},
    2: {1: {"coding": 17.0, "maths": 13.0}, 4: {"coding": 42.0, "maths": 29.0}},
    4: {1: {"coding": 22.0, "maths": 14.0}, 4: {"coding": 33.0, "maths": 26.0}},
}


def _result(tok: dict = TOK, ks: tuple[int, ...] = (1, 2, 4)) -> SweepResult:
    config = SweepConfig(ks=ks, concurrency=4, per_category=2, max_tokens=32)
    result = SweepResult(
        "gemma3-270m-cpu-ngram", "ngram", 4, config, categories=["coding", "maths"]
    )
    for k in (None, *ks):
        server = SweepServer(k, f"x-{k}", phase="done")
        for load in (1, 4):
            for cat in ("coding", "maths"):
                rates = SEED[:k] if k else None
                server.cells.append(_cell(cat, load, tok[k][load][cat], rates))
        result.servers.append(server)
    result.finished = "2026-12-02T08:00:00+00:00"
    return result


def test_figures_speedup_and_best_k_per_category_and_load() -> None:
    result = _result()
    one = {f.k: f for f in figures(result, 1)}
    assert one[None].tok_s == pytest.approx(10.0)
    assert one[4].tok_s == pytest.approx(2 * 32 * 2 / (64 / 22 + 64 / 14))
    assert one[2].speedup == pytest.approx(one[2].tok_s / one[None].tok_s)
    assert one[None].acceptance_length is None  # the baseline has no drafts
    assert one[2].acceptance_length == pytest.approx(1 + 0.85 + 0.72, abs=0.01)
    assert one[4].acceptance_length == pytest.approx(3.70, abs=0.01)
    bests = best_table(result)
    assert bests[1]["coding"].k == 4 and bests[1]["maths"].k == 4
    assert bests[4]["coding"].k == 2
    assert bests[4]["maths"].k is None  # the baseline wins: no k there
    assert bests[4]["overall"].k == 2


def test_a_cell_with_a_failed_request_never_wins() -> None:
    result = _result()
    k4 = result.server(4)
    cell = k4.cell(1, "coding")
    cell.run.requests.append(RequestResult(prompt_id="x", error="HTTP 500"))
    assert best_table(result)[1]["coding"].k == 2


def test_advisor_check_compares_the_estimate_with_the_measurement() -> None:
    check = advisor_check(_result())
    assert check is not None and check.source_k == 4
    assert check.advice.best_k == 4  # n-gram: draft cost 0, the longest measured draft
    assert check.predicted == 4 and check.predicted_order == (4, 2, 1)
    assert check.measured == {1: 4, 4: 2}
    assert check.agrees(1) and not check.agrees(4)
    (note,) = check.notes
    assert note.startswith("at 4 concurrent: measured best k=2")
    assert "verification" in note


def test_table_shows_every_k_the_best_and_the_advisor() -> None:
    text = render_table(_result())
    assert "At 1 stream (all categories)" in text and "At 4 concurrent" in text
    for lb in ("base", "k=1", "k=2", "k=4"):
        assert f"  {lb} " in text
    assert "best: k=4" in text and "best: k=2" in text
    assert "predicts best k=4" in text
    assert "measured at 1 stream: best k=4" in text and ": agrees" in text
    assert "measured at 4 concurrent: best k=2" in text and ": differs" in text
    maths = next(ln for ln in text.splitlines() if ln.strip().startswith("maths") and "x" in ln)
    assert "base 30.0" in maths


def test_plot_series_and_text_plot() -> None:
    result = _result()
    series, base = plot_series(result)
    assert sorted(series) == [1, 4] and [k for k, _ in series[1]] == [1, 2, 4]
    assert base[1] == pytest.approx(10.0)
    text = render_plot(result, width=60, height=15)
    assert "tok/s against k" in text and "1 stream" in text


def test_json_is_strict_and_keeps_a_cut_off_sweep(tmp_path: Path) -> None:
    result = _result()
    result.servers[-1].phase = "pending"
    result.servers[-1].cells.clear()
    result.finished = None
    path = tmp_path / "s.json"
    write_json(result, path)
    data = json.loads(path.read_text())
    assert data["complete"] is False
    assert [s["k"] for s in data["servers"]] == [None, 1, 2, 4]
    assert data["servers"][0]["baseline"] is True
    assert data["summary"]["loads"]["1"]["best"]["overall"]["k"] == 2
    assert "NaN" not in path.read_text()


# --------------------------------------------------------------------------- --apply


def test_apply_writes_a_profile_extending_the_original_with_only_k(private_state: Path) -> None:
    result = _result()
    original = load_profile("gemma3-270m-cpu-ngram")
    k, why = choose_k(result)
    assert k == 2 and "4 concurrent" in why
    assert choose_k(result, load=1)[0] == 4
    path = write_applied(result, original, k, why, argv="vllm-console bench --sweep-k 1,2,4")
    assert path.parent == private_state / "config" / "profiles"
    text = path.read_text()
    assert text.startswith(MARKER)
    assert "# chosen: k=2, best overall tok/s at 4 concurrent" in text
    assert "# tok/s at 4 concurrent: base 30.00 (1.00x) | k=1" in text
    assert "# command: vllm-console bench --sweep-k 1,2,4" in text
    body = yaml.safe_load(text)
    assert body["extends"] == "gemma3-270m-cpu-ngram"
    assert body["serve"] == {"speculative_config": {"num_speculative_tokens": 2}}
    applied = load_profile(path.stem)
    assert applied.extends == "gemma3-270m-cpu-ngram"
    assert applied.serve.speculative_config["num_speculative_tokens"] == 2
    _only_k_differs(applied.model_dump(), original.model_dump())
    # a second apply may replace its own file, never a hand-written one
    write_applied(result, original, 2, why)
    path.write_text("name: gemma3-270m-cpu-ngram-k2\nextends: gemma3-270m-cpu-ngram\n")
    with pytest.raises(ConsoleError, match="not written by a sweep"):
        write_applied(result, original, 2, why)


def test_apply_refuses_when_the_baseline_wins_or_k_was_not_measured() -> None:
    tok = {k: {ld: dict.fromkeys(("coding", "maths"), 5.0) for ld in (1, 4)} for k in TOK}
    tok[None] = {ld: dict.fromkeys(("coding", "maths"), 50.0) for ld in (1, 4)}
    with pytest.raises(ConsoleError, match="baseline without speculation was fastest"):
        choose_k(_result(tok))
    assert choose_k(_result(tok), k=1)[0] == 1
    with pytest.raises(UsageError, match="not measured"):
        choose_k(_result(), k=3)


def test_a_taken_port_stops_the_sweep_before_anything_starts(
    private_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real runtime refuses the port; the sweep stops at once (every k would fail)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = private_state / "s.json"
        argv = ["bench", "--sweep-k", "1,2", "gemma3-270m-cpu-ngram", "--port", str(port)]
        assert main([*argv, "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"port {port}" in err or f":{port}" in err, err
    data = json.loads(out.read_text())
    assert [s["phase"] for s in data["servers"]] == ["failed", "pending", "pending"]
    assert data["servers"][0]["pid"] is None and data["complete"] is False


def test_saved_results_read_back_and_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cut-off sweep plus a later one of the missing ks print as one table."""
    from console.bench.sweep_report import from_json, merge, to_json

    full = _result()
    assert render_table(from_json(to_json(full))) == render_table(full)
    cut = _result()
    cut.servers[-1].phase = "failed"  # k=4 cut off
    later = _result(ks=(4,))
    later.servers = [s for s in _result().servers if s.k in (None, 4)]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_json(cut, a)
    write_json(later, b)
    merged = merge(
        [from_json(json.loads(a.read_text()), "a"), from_json(json.loads(b.read_text()), "b")]
    )
    assert [s.k for s in merged.servers] == [None, 1, 2, 4]
    assert any(n.startswith("baseline measured again in b") for n in merged.notes)
    assert main(["bench", "--sweep-from", str(a), "--sweep-from", str(b)]) == 0
    assert "best: k=4" in capsys.readouterr().out
    (tmp_path / "x.json").write_text('{"schema": "other"}')
    assert main(["bench", "--sweep-from", str(tmp_path / "x.json")]) == 1
    assert "not a k-sweep results file" in capsys.readouterr().err
