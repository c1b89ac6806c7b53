"""``vllm-console profiles ...``: what scripts and users see, and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.cli import main

DATA = Path(__file__).parent / "data" / "profiles"
PRESETS = sorted(
    [
        "gemma3-270m-cpu",
        "gemma3-270m-cpu-ngram",
        "gemma4-26b-baseline",
        "gemma4-26b-mtp",
        "gemma4-26b-mtp-2node",
        "smollm2-135m-cpu",
        *(f"gemma4-{size}-{arm}" for size in ("26b-a4b", "31b", "e4b", "e2b", "26b-nvfp4-gb10")
          for arm in ("mtp", "baseline")),
    ]
)  # fmt: skip


@pytest.fixture(autouse=True)
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    folder = tmp_path / "config" / "profiles"
    folder.mkdir(parents=True)
    return folder


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["profiles", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == PRESETS
    code, out, _ = cli(capsys, "list", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == PRESETS
    by_name = {r["name"]: r for r in rows}
    mtp = by_name["gemma4-26b-mtp"]
    assert (mtp["runtime"], mtp["origin"], mtp["speculative"]) == ("docker", "shipped", True)
    assert by_name["gemma4-26b-baseline"]["extends"] == "gemma4-26b-mtp"
    assert by_name["gemma4-e2b-baseline"]["extends"] == "gemma4-e2b-mtp"


def test_list_reports_a_broken_user_file(
    capsys: pytest.CaptureFixture[str], user_dir: Path
) -> None:
    (user_dir / "broken.yaml").write_text("runtime: local\nserve:\n  model: m\n  port: x\n")
    code, out, err = cli(capsys, "list")
    assert code == 1
    assert len(out.splitlines()) == len(PRESETS)
    assert f"error: {user_dir / 'broken.yaml'}:4: serve.port:" in err


def test_show_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "show", "gemma4-26b-baseline")
    assert code == 0
    assert "extends: gemma4-26b-mtp" in out and "speculative_config" not in out
    assert "docker run -d --name vllm-gemma4-26b-baseline" in out
    code, out, _ = cli(capsys, "show", "gemma3-270m-cpu-ngram", "--json")
    data = json.loads(out)
    assert data["serve"]["speculative_config"]["method"] == "ngram"
    assert data["url"] == "http://127.0.0.1:8000"
    assert data["argv"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]


def test_show_never_prints_secrets(
    capsys: pytest.CaptureFixture[str], user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_very_secret_value")
    (user_dir / "s.yaml").write_text(
        "extends: gemma4-26b-mtp\nserve:\n  env:\n    HF_TOKEN: ${HF_TOKEN}\n"
        "    OPENAI_API_KEY: sk-written-in-file\n  engine_args:\n    api-key: sk-flag-value\n"
    )
    for args in (("show", "s"), ("show", "s", "--json"), ("render", "s", "--as", "docker"),
                 ("render", "s", "--as", "argv")):  # fmt: skip
        code, out, err = cli(capsys, *args)
        assert code == 0, err
        for secret in ("hf_very_secret_value", "sk-written-in-file", "sk-flag-value"):
            assert secret not in out + err, (args, secret)
        assert "***" in out


def test_check_all_presets_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "check", "--no-probe")
    # the only errors: the two-Spark preset's placeholders, which the user must fill
    errors = [ln for ln in out.splitlines() if ln.lstrip().startswith("error ")]
    assert code == 1 and len(errors) == 5
    assert all("cluster-placeholder [cluster.nodes[" in ln for ln in errors), errors
    assert "gemma4-26b-mtp-2node (" in out and "gemma4-26b-mtp" in out
    assert "warning flashinfer-log-env [serve.env.FLASHINFER_JIT_LOG_LEVEL]" in out
    assert "fix: rename it to FLASHINFER_LOGGING_LEVEL" in out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "check", "gemma4-26b-mtp", "--json")
    assert code == 0
    [result] = json.loads(out)
    assert result["ok"] is True and result["profile"] == "gemma4-26b-mtp"
    rules = {f["rule_id"] for f in result["findings"]}
    assert {"flashinfer-log-env", "public-bind-no-api-key", "default-flag"} <= rules
    assert set(result["findings"][0]) == {
        "rule_id", "severity", "message", "fix", "field", "source", "versions"
    }  # fmt: skip
    assert all(f["source"].startswith(("https://", "docs/")) for f in result["findings"])


def test_check_exits_1_on_lint_error(capsys: pytest.CaptureFixture[str], user_dir: Path) -> None:
    (user_dir / "bad.yaml").write_text(
        "extends: gemma4-26b-mtp\nserve:\n  engine_args:\n    moe-backend: cutlass\n"
    )
    code, out, _ = cli(capsys, "check", "bad", "--no-probe")
    assert code == 1
    assert "error   moe-backend-gelu-tanh [serve.engine_args.moe-backend]" in out
    assert "fix: remove moe-backend" in out


def test_check_exits_1_on_invalid_file_and_names_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = DATA / "bad-type.yaml"
    code, out, _ = cli(capsys, "check", str(path), "gemma3-270m-cpu", "--no-probe")
    assert code == 1
    assert f"{path}:5: serve.port:" in out
    assert "gemma3-270m-cpu (" in out  # the good one is still checked
    code, out, _ = cli(capsys, "check", str(path), "--json")
    [result] = json.loads(out)
    assert result["ok"] is False
    assert result["problems"][0] == {
        "file": str(path),
        "line": 5,
        "field": "serve.port",
        "message": result["problems"][0]["message"],
    }


def test_render_docker_is_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "render", "gemma4-26b-mtp", "--as", "docker")
    assert code == 0
    seed = (DATA / "seed-launch.txt").read_text()
    tag = "vllm-console/vllm-gemma4-mtp:pr41745-5119058403"
    assert out == seed.replace("<your-vllm-image-with-fixes>", tag)


def test_render_dockerfile_and_argv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "render", "gemma4-26b-mtp", "--as", "dockerfile")
    assert code == 0 and out.startswith("# vllm-console profile: gemma4-26b-mtp\nFROM ")
    assert 'ENTRYPOINT ["vllm","serve"]\n' in out and "WORKDIR /vllm-workspace\n" in out
    code, out, _ = cli(capsys, "render", "gemma3-270m-cpu-ngram", "--as", "argv", "--json")
    argv = json.loads(out)
    assert argv[-1] == '{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_max":4}'
    code, out, _ = cli(capsys, "render", "gemma3-270m-cpu-ngram")
    spec = '{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_max":4}'
    assert out.rstrip().endswith(f"--speculative-config '{spec}'")


def test_render_docker_for_local_profile_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "render", "gemma3-270m-cpu", "--as", "docker")
    assert code == 1 and "runs locally" in err


def test_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "show", "nope")
    assert code == 1 and err.startswith("error: no profile named 'nope'")


@pytest.mark.parametrize(
    "args", [(), ("render", "gemma4-26b-mtp", "--as", "podman"), ("show",), ("frobnicate",)]
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["profiles", *args])
    assert info.value.code == 2
    capsys.readouterr()


# --- stock images and version-aware lint ------------------------------------------------------


def test_check_on_stock_0251_names_the_v2_runner_and_its_source(
    capsys: pytest.CaptureFixture[str], user_dir: Path
) -> None:
    (user_dir / "mine.yaml").write_text(
        "extends: gemma4-26b-a4b-mtp\n"
        "image: {base: 'vllm/vllm-openai:v0.25.1', vllm_ref: null}\n"
        "serve: {env: {VLLM_USE_V2_MODEL_RUNNER: null}}\n"
    )
    code, out, _ = cli(capsys, "check", "mine", "--no-probe")
    assert code == 1
    assert "error   gemma4-moe-mtp-v1-runner" in out
    assert "VLLM_USE_V2_MODEL_RUNNER: '1'" in out
    assert "source: https://github.com/vllm-project/vllm/issues/48848" in out
    (user_dir / "mine.yaml").write_text(
        "extends: gemma4-26b-a4b-mtp\nimage: {base: 'vllm/vllm-openai:v0.25.1', vllm_ref: null}\n"
    )
    code, out, _ = cli(capsys, "check", "mine", "--no-probe")
    assert code == 0 and "gemma4-moe-mtp-v1-runner" not in out


def test_check_refuses_stock_020_without_the_patch(
    capsys: pytest.CaptureFixture[str], user_dir: Path
) -> None:
    (user_dir / "old.yaml").write_text(
        "extends: gemma4-e4b-mtp\nimage: {base: 'vllm/vllm-openai:v0.20.0', vllm_ref: null}\n"
    )
    code, out, _ = cli(capsys, "check", "old", "--no-probe")
    assert code == 1
    assert "error   gemma4-mtp-vllm" in out and "pull/41745" in out


def test_explain_prints_a_rule_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "check", "--explain", "gemma4-moe-mtp-v1-runner")
    assert code == 0
    assert "applies to: vLLM 0.25.0 and later" in out
    assert "https://github.com/vllm-project/vllm/issues/48848" in out
    code, out, _ = cli(capsys, "check", "--explain", "all")
    assert code == 0 and out.count("  source:") >= 20
    code, _, err = cli(capsys, "check", "--explain", "no-such-rule")
    assert code == 2 and "no lint rule 'no-such-rule'" in err and "Traceback" not in err


def test_stock_preset_runs_its_image_and_has_nothing_to_build(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "render", "gemma4-e2b-mtp", "--as", "docker")
    assert code == 0
    assert "\nvllm/vllm-openai:v0.33.0 \\\ngoogle/gemma-4-E2B-it \\\n" in out
    assert main(["build", "gemma4-e2b-mtp"]) == 0
    assert "nothing to build" in capsys.readouterr().out


def test_a_built_image_still_needs_its_tag(
    capsys: pytest.CaptureFixture[str], user_dir: Path
) -> None:
    (user_dir / "x.yaml").write_text(
        "runtime: docker\nimage: {base: b, pip: [{packages: [x]}]}\nserve: {model: m}\n"
    )
    code, _, err = cli(capsys, "show", "x")
    assert code == 1 and "image.tag is required when the image is built" in err
