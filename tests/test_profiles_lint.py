"""Every lint rule fires on the mistake it knows and stays quiet otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console import paths
from console.profiles import load_profile
from console.profiles.catalogue import Catalogue, shipped
from console.profiles.lint import RULES, Finding, catalogue_for, has_errors, lint, parse_version
from console.profiles.loader import deep_merge
from console.profiles.schema import Profile

ALL_RULES = {
    "moe-backend-gelu-tanh",
    "flashinfer-log-env",
    "gemma4-assistant-transformers",
    "gemma4-mtp-vllm",
    "spec-quantization-bf16",
    "auto-tool-choice-parser",
    "batched-tokens-below-seqs",
    "default-flag",
    "default-env",
    "public-bind-no-api-key",
    "engine-arg-has-field",
    "unknown-engine-arg",
    "gpu-memory-utilization",
    "speculative-config",
    "eager-with-spec",
    "literal-secret",
    "gemma4-mtp-draft-quant",
    "gemma4-moe-mtp-v1-runner",
    "gemma4-mtp-method",
    "gemma4-mtp-tool-calls",
    "gemma4-mtp-k",
    "per-request-spec-metrics",
    # multi-node rules: tested in tests/test_cluster_profiles.py
    "cluster-placeholder",
    "cluster-interface",
    "cluster-gpus",
    "cluster-images-differ",
    "cluster-ray-refused",
    "cluster-managed-flag",
    "cluster-netns",
    "cluster-head-unreachable",
}
"""Each has a test below; a new rule must be added here, tested and documented."""


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))


def variant(base: str, changes: dict[str, Any]) -> Profile:
    """``base`` with ``changes`` merged over it (null removes), like ``extends:``."""
    data = load_profile(base).model_dump()
    return Profile.model_validate(deep_merge(data, changes))


def run(profile: Profile, catalogue: Catalogue | None = None) -> list[Finding]:
    return lint(profile, catalogue=catalogue or shipped())


def ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def fired(rule_id: str, profile: Profile, catalogue: Catalogue | None = None) -> list[Finding]:
    assert rule_id in ALL_RULES
    return [f for f in run(profile, catalogue) if f.rule_id == rule_id]


def mtp(**changes: Any) -> Profile:
    return variant("gemma4-26b-mtp", changes)


def cpu(**changes: Any) -> Profile:
    return variant("gemma3-270m-cpu", changes)


# --- the seed --------------------------------------------------------------------------------


def test_seed_preset_passes_with_its_flashinfer_env_reported() -> None:
    findings = run(load_profile("gemma4-26b-mtp"))
    assert not has_errors(findings), findings
    flash = [f for f in findings if f.rule_id == "flashinfer-log-env"]
    assert len(flash) == 1
    assert flash[0].severity == "warning"
    assert "FLASHINFER_LOGGING_LEVEL" in flash[0].fix
    assert flash[0].field == "serve.env.FLASHINFER_JIT_LOG_LEVEL"
    for finding in findings:
        assert finding.message and finding.fix and finding.severity in ("warning", "info")


@pytest.mark.parametrize(
    "name", ["gemma4-26b-baseline", "gemma3-270m-cpu", "gemma3-270m-cpu-ngram"]
)
def test_other_presets_have_no_errors(name: str) -> None:
    assert not has_errors(run(load_profile(name)))


def test_cpu_presets_are_clean() -> None:
    assert run(load_profile("gemma3-270m-cpu")) == []
    assert run(load_profile("gemma3-270m-cpu-ngram")) == []


# --- each rule ---------------------------------------------------------------------------------


def test_moe_backend_cutlass_on_old_vllm() -> None:
    found = fired("moe-backend-gelu-tanh", mtp(serve={"engine_args": {"moe-backend": "cutlass"}}))
    assert [f.severity for f in found] == ["error"]
    assert "GELU_TANH" in found[0].message and "remove moe-backend" in found[0].fix
    new = mtp(image={"base": "vllm/vllm-openai:v0.23.0", "vllm_ref": None},
              serve={"engine_args": {"moe-backend": "cutlass"}})  # fmt: skip
    assert fired("moe-backend-gelu-tanh", new) == []
    assert (
        fired("moe-backend-gelu-tanh", mtp(serve={"engine_args": {"moe-backend": "marlin"}})) == []
    )
    assert fired("moe-backend-gelu-tanh", load_profile("gemma4-26b-mtp")) == []
    # not Gemma 4: nothing to say
    other = mtp(serve={"model": "org/llama", "engine_args": {"moe-backend": "cutlass"}})
    assert fired("moe-backend-gelu-tanh", other) == []


def test_flashinfer_env_name() -> None:
    renamed = mtp(serve={"env": {"FLASHINFER_JIT_LOG_LEVEL": None,
                                 "FLASHINFER_LOGGING_LEVEL": "ERROR"}})  # fmt: skip
    assert fired("flashinfer-log-env", renamed) == []
    assert len(fired("flashinfer-log-env", load_profile("gemma4-26b-mtp"))) == 1


def test_gemma4_assistant_needs_transformers_58() -> None:
    rule = "gemma4-assistant-transformers"
    no_pip = mtp(image={"pip": []})
    assert [f.severity for f in fired(rule, no_pip)] == ["error"]
    old = mtp(image={"pip": [{"packages": ["transformers==5.7.0"]}]})
    assert "transformers==5.7.0" in fired(rule, old)[0].message
    assert fired(rule, mtp(image={"pip": [{"packages": ["transformers>=5.8"]}]})) == []
    assert fired(rule, mtp(image={"pip": [{"packages": ["transformers==5.9.1"]}]})) == []
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []  # main tarball
    assert fired(rule, load_profile("gemma4-26b-baseline")) == []  # no assistant draft
    # local runtime: what the runtime's vLLM environment has
    local = cpu(serve={"speculative_config": {"model": "google/gemma-4-E2B-it-assistant"}})
    old_rt = Catalogue("0.32.0", shipped().options, "/rt/bin/python", "5.7.0")
    assert len(fired(rule, local, old_rt)) == 1
    new_rt = Catalogue("0.32.0", shipped().options, "/rt/bin/python", "5.19.0")
    assert fired(rule, local, new_rt) == []


def test_gemma4_mtp_needs_vllm_021_or_the_pr() -> None:
    rule = "gemma4-mtp-vllm"
    unpatched = mtp(image={"patches": []})
    assert [f.severity for f in fired(rule, unpatched)] == ["error"]
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []  # v0.20 + PR 41745
    # stock 0.20.0 without the patch is refused, with the PR as its source
    stock_020 = stock("gemma4-26b-a4b-mtp", "v0.20.0")
    found = fired(rule, stock_020)
    assert [f.severity for f in found] == ["error"] and found[0].source.endswith("/41745")
    assert fired(rule, stock("gemma4-26b-a4b-mtp", "v0.21.0")) == []


def stock(name: str, tag: str, **changes: Any) -> Profile:
    """Preset ``name`` on the stock image ``vllm/vllm-openai:TAG`` (no build)."""
    data = load_profile(name).model_dump()
    data = deep_merge(data, {"image": {"base": f"vllm/vllm-openai:{tag}", "vllm_ref": None}})
    return Profile.model_validate(deep_merge(data, changes))


def test_quantized_target_leaks_into_the_draft_on_021_to_024() -> None:
    rule = "gemma4-mtp-draft-quant"
    for tag in ("v0.21.0", "v0.22.0", "v0.24.0"):
        found = fired(rule, stock("gemma4-26b-nvfp4-gb10-mtp", tag))
        assert [f.severity for f in found] == ["error"], tag
        assert "47091" in found[0].message and found[0].source.endswith("/pull/47091")
    assert fired(rule, stock("gemma4-26b-nvfp4-gb10-mtp", "v0.25.0")) == []
    assert fired(rule, stock("gemma4-26b-a4b-mtp", "v0.22.0")) == []  # BF16 target


def test_moe_mtp_on_0251_names_the_v2_runner_and_its_source() -> None:
    rule = "gemma4-moe-mtp-v1-runner"
    crash = stock(
        "gemma4-26b-a4b-mtp", "v0.25.1", serve={"env": {"VLLM_USE_V2_MODEL_RUNNER": None}}
    )
    [found] = fired(rule, crash)
    assert found.severity == "error"
    assert "VLLM_USE_V2_MODEL_RUNNER" in found.fix
    assert found.source == "https://github.com/vllm-project/vllm/issues/48848"
    assert found.versions.startswith("0.25.0")
    # with the env set (as the preset has it) the finding is gone
    assert fired(rule, stock("gemma4-26b-a4b-mtp", "v0.25.1")) == []
    # before 0.25 the V1 runner worked; dense models are not affected
    assert fired(rule, stock("gemma4-26b-a4b-mtp", "v0.24.0", serve=crash.serve.model_dump(
        include={"env"}))) == []  # fmt: skip
    assert fired(rule, stock("gemma4-31b-mtp", "v0.25.1")) == []
    # 0.26-0.28 still choose V1 for MoE by default (crash confirmed on 0.25 only): a warning
    unset = {"env": {"VLLM_USE_V2_MODEL_RUNNER": None}}
    for tag in ("v0.26.0", "v0.27.0", "v0.28.0"):
        later = stock("gemma4-26b-a4b-mtp", tag, serve=unset)
        assert [f.severity for f in fired(rule, later)] == ["warning"], tag
    # from 0.29.0 V2 is every model's default: nothing to say ...
    for tag in ("v0.29.0", "v0.33.0"):
        assert fired(rule, stock("gemma4-26b-a4b-mtp", tag, serve=unset)) == [], tag
    # ... unless the profile forces V1 back
    forced = {"env": {"VLLM_USE_V2_MODEL_RUNNER": "0"}}
    for tag in ("v0.25.1", "v0.33.0"):
        [found] = fired(rule, stock("gemma4-26b-a4b-mtp", tag, serve=forced))
        assert found.severity == "error" and "forces the V1" in found.message, tag


def test_transformers_rule_fires_only_where_the_image_lacks_58() -> None:
    rule = "gemma4-assistant-transformers"
    assert [f.severity for f in fired(rule, stock("gemma4-e2b-mtp", "v0.20.0"))] == ["error"]
    # 0.21-0.28: vLLM's own floor is below 5.8, the image's transformers is unknown: advice
    assert [f.severity for f in fired(rule, stock("gemma4-e2b-mtp", "v0.25.1"))] == ["info"]
    # from 0.29 vLLM itself requires transformers >= 5.10.4: nothing to say
    for tag in ("v0.29.0", "v0.33.0"):
        assert fired(rule, stock("gemma4-e2b-mtp", tag)) == [], tag
    pinned_old = stock("gemma4-e2b-mtp", "v0.33.0", image={
        "tag": "me/x:1", "pip": [{"packages": ["transformers==5.7.0"]}]})  # fmt: skip
    assert [f.severity for f in fired(rule, pinned_old)] == ["error"]


def test_explicit_mtp_method() -> None:
    rule = "gemma4-mtp-method"
    assert fired(rule, load_profile("gemma4-26b-a4b-mtp")) == []  # no method (recipes' form)
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []  # method mtp + model: accepted
    no_model = variant("gemma4-26b-a4b-mtp", {"serve": {"speculative_config": {
        "model": None, "method": "mtp"}}})  # fmt: skip
    assert [f.severity for f in fired(rule, no_model)] == ["error"]
    ascend = variant("gemma4-26b-a4b-mtp", {
        "image": {"base": "quay.io/ascend/vllm-ascend:v0.23.0"},
        "serve": {"speculative_config": {"method": "mtp"}}})  # fmt: skip
    [found] = fired(rule, ascend)
    assert found.severity == "warning" and "vllm-ascend" in found.source


def test_mtp_with_tool_parser_on_021_to_024() -> None:
    rule = "gemma4-mtp-tool-calls"
    tools = {"serve": {"engine_args": {"tool-call-parser": "gemma4",
                                       "enable-auto-tool-choice": True}}}  # fmt: skip
    assert [f.severity for f in fired(rule, stock("gemma4-e4b-mtp", "v0.24.0", **tools))] == [
        "warning"
    ]
    assert fired(rule, stock("gemma4-e4b-mtp", "v0.25.1", **tools)) == []
    assert fired(rule, stock("gemma4-e4b-baseline", "v0.24.0", **tools)) == []


def test_k_far_from_the_recommendation() -> None:
    rule = "gemma4-mtp-k"
    for name in ("gemma4-e2b-mtp", "gemma4-e4b-mtp", "gemma4-26b-a4b-mtp", "gemma4-31b-mtp"):
        assert fired(rule, load_profile(name)) == [], name
    k = {"serve": {"speculative_config": {"num_speculative_tokens": 7}}}
    [found] = fired(rule, variant("gemma4-e2b-mtp", k))
    assert "recommendation is 2" in found.message
    assert fired(rule, variant("gemma4-31b-mtp", k)) == []  # 31B: 4-8


def test_per_request_metrics_advice() -> None:
    rule = "per-request-spec-metrics"
    off = {"serve": {"engine_args": {"per-request-spec-decode-metrics": None}}}
    assert [f.severity for f in fired(rule, stock("gemma4-e4b-mtp", "v0.33.0", **off))] == ["info"]
    assert fired(rule, stock("gemma4-e4b-mtp", "v0.33.0")) == []  # the presets turn it on
    assert fired(rule, stock("gemma4-e4b-baseline", "v0.33.0")) == []


def test_speculative_quantization_with_bf16_assistant() -> None:
    rule = "spec-quantization-bf16"
    bad = mtp(serve={"speculative_config": {"quantization": "modelopt_fp4"}})
    found = fired(rule, bad)
    assert [f.severity for f in found] == ["error"]
    assert found[0].field == "serve.speculative_config.quantization"
    quantized_draft = mtp(
        serve={"speculative_config": {"quantization": "fp8", "model": "org/draft-FP8"}}
    )
    assert fired(rule, quantized_draft) == []
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []


def test_auto_tool_choice_needs_parser() -> None:
    rule = "auto-tool-choice-parser"
    bad = mtp(serve={"engine_args": {"tool-call-parser": None}})
    assert [f.severity for f in fired(rule, bad)] == ["error"]
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []


def test_batched_tokens_below_seqs() -> None:
    rule = "batched-tokens-below-seqs"
    bad = mtp(serve={"engine_args": {"max-num-batched-tokens": 2}})
    found = fired(rule, bad)
    assert [f.severity for f in found] == ["error"] and "at least 4" in found[0].fix
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []


def test_flags_already_default_are_info() -> None:
    found = fired("default-flag", load_profile("gemma4-26b-mtp"))
    fields = {f.field for f in found}
    assert {
        "serve.engine_args.enable-chunked-prefill",
        "serve.engine_args.enable-prefix-caching",
    } <= fields
    assert {f.severity for f in found} == {"info"}
    assert fired("default-flag", load_profile("gemma3-270m-cpu")) == []
    off = mtp(serve={"engine_args": {"enable-prefix-caching": False}})
    assert "serve.engine_args.enable-prefix-caching" not in {
        f.field for f in fired("default-flag", off)
    }


def test_env_already_default_is_info() -> None:
    found = fired("default-env", load_profile("gemma4-26b-mtp"))
    assert [f.severity for f in found] == ["info"]
    assert fired("default-env", mtp(serve={"env": {"VLLM_SKIP_P2P_CHECK": "0"}})) == []


def test_public_bind_without_api_key() -> None:
    rule = "public-bind-no-api-key"
    found = fired(rule, load_profile("gemma4-26b-mtp"))
    assert [f.severity for f in found] == ["warning"] and "127.0.0.1" in found[0].fix
    keyed = mtp(serve={"env": {"VLLM_API_KEY": "${VLLM_API_KEY}"}})
    assert fired(rule, keyed) == []
    assert fired(rule, mtp(serve={"engine_args": {"api-key": "${K}"}})) == []
    assert fired(rule, load_profile("gemma3-270m-cpu")) == []
    assert len(fired(rule, cpu(serve={"host": "0.0.0.0"}))) == 1


def test_engine_arg_that_has_a_field() -> None:
    found = fired("engine-arg-has-field", cpu(serve={"engine_args": {"port": 9}}))
    assert [f.severity for f in found] == ["error"] and "serve.port" in found[0].fix
    assert fired("engine-arg-has-field", load_profile("gemma3-270m-cpu")) == []


def test_unknown_engine_arg_suggests_the_right_one() -> None:
    rule = "unknown-engine-arg"
    found = fired(rule, cpu(serve={"engine_args": {"max-model-length": 2048}}))
    assert [f.severity for f in found] == ["error"]
    assert found[0].fix == "did you mean max-model-len?"
    assert "shipped catalogue (vLLM 0.32.0)" in found[0].message
    no_negative = fired(rule, cpu(serve={"engine_args": {"disable-log-stats": False}}))
    assert "--no-disable-log-stats does not exist" in no_negative[0].message
    bad_choice = fired(rule, cpu(serve={"engine_args": {"kv-cache-dtype": "fp7"}}))
    assert "not one of" in bad_choice[0].message and "fp8" in bad_choice[0].fix
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []
    assert fired(rule, cpu(serve={"engine_args": {"no-enforce-eager": True}})) == []


def test_gpu_memory_utilization_range() -> None:
    rule = "gpu-memory-utilization"
    for bad in (55, 0, -0.1, "lots"):
        found = fired(rule, mtp(serve={"engine_args": {"gpu-memory-utilization": bad}}))
        assert [f.severity for f in found] == ["error"], bad
    assert fired(rule, mtp(serve={"engine_args": {"gpu-memory-utilization": 1}})) == []
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []


def test_speculative_config_shape() -> None:
    rule = "speculative-config"
    typo = fired(rule, mtp(serve={"speculative_config": {"method": "mpt"}}))
    assert typo[0].severity == "error" and typo[0].fix == "did you mean 'mtp'?"
    zero = fired(rule, mtp(serve={"speculative_config": {"num_speculative_tokens": 0}}))
    assert zero[0].field == "serve.speculative_config.num_speculative_tokens"
    trap = fired(rule, mtp(serve={"speculative_config": {"tensor_parallel_size": 1}}))
    assert trap[0].severity == "warning" and "draft_tensor_parallel_size" in trap[0].fix
    draftless = fired(rule, cpu(serve={"speculative_config": {"method": "eagle3"}}))
    assert draftless[0].field == "serve.speculative_config.model"
    empty = fired(rule, cpu(serve={"speculative_config": {"num_speculative_tokens": 2}}))
    assert "method or a draft model" in empty[0].message
    assert fired(rule, load_profile("gemma4-26b-mtp")) == []
    assert fired(rule, load_profile("gemma3-270m-cpu-ngram")) == []


def test_eager_with_speculative_decoding_is_info() -> None:
    found = fired("eager-with-spec", load_profile("gemma4-26b-mtp"))
    assert [f.severity for f in found] == ["info"]
    assert fired("eager-with-spec", load_profile("gemma4-26b-baseline")) == []


def test_literal_secret() -> None:
    rule = "literal-secret"
    found = fired(rule, cpu(serve={"env": {"HF_TOKEN": "hf_abc"}}))
    assert [f.severity for f in found] == ["warning"] and "${HF_TOKEN}" in found[0].fix
    assert "hf_abc" not in found[0].message + found[0].fix
    assert fired(rule, cpu(serve={"env": {"HF_TOKEN": "${HF_TOKEN}"}})) == []
    assert len(fired(rule, cpu(serve={"engine_args": {"api-key": "abc"}}))) == 1


def test_lint_ignore_silences_a_rule() -> None:
    quiet = mtp(lint_ignore=["flashinfer-log-env"])
    assert "flashinfer-log-env" not in ids(run(quiet))


def test_errors_come_first() -> None:
    findings = run(mtp(serve={"engine_args": {"max-num-batched-tokens": 2}}))
    order = [f.severity for f in findings]
    assert order == sorted(order, key=["error", "warning", "info"].index)


def test_every_rule_is_listed_documented_and_sourced() -> None:
    from console.profiles.lint import rules_markdown

    assert {r.id for r in RULES} == ALL_RULES
    docs = Path(__file__).parent.parent / "docs"
    page = (docs / "lint-rules.md").read_text(encoding="utf-8")
    assert page == rules_markdown(), "docs/lint-rules.md is stale: scripts/gen_lint_docs.py"
    assert "lint-rules.md" in (docs / "profiles.md").read_text(encoding="utf-8")
    for r in RULES:
        assert f"`{r.id}`" in page
        assert r.source.startswith(("https://", "docs/")) and r.verified, r.id


def test_stock_presets_have_no_findings_on_their_image() -> None:
    for name in (
        "gemma4-26b-a4b-mtp", "gemma4-26b-a4b-baseline", "gemma4-31b-mtp", "gemma4-31b-baseline",
        "gemma4-e4b-mtp", "gemma4-e4b-baseline", "gemma4-e2b-mtp", "gemma4-e2b-baseline",
        "gemma4-26b-nvfp4-gb10-mtp", "gemma4-26b-nvfp4-gb10-baseline",
    ):  # fmt: skip
        profile = load_profile(name)
        assert profile.image is not None and not profile.image.needs_build
        assert run(profile) == [], name


def test_parse_version() -> None:
    assert parse_version("vllm/vllm-openai:v0.20.0") == (0, 20, 0)
    assert parse_version("0.33") == (0, 33, 0)
    assert parse_version("latest") is None
    assert parse_version("628c43630") is None


# --- vLLM's own parser ----------------------------------------------------------------------------


def test_flags_checked_against_the_runtimes_own_vllm() -> None:
    python = paths.runtimes_dir() / "cpu" / "bin" / "python"
    assert python.is_file(), (
        f"the managed CPU runtime is missing at {python}: run `vllm-console runtime install cpu`"
    )
    profile = cpu(serve={"engine_args": {"max-model-length": 1}})
    cat = catalogue_for(profile)
    assert cat.probed and cat.origin == str(python)
    assert parse_version(cat.vllm_version) >= (0, 22, 0)
    assert cat.transformers_version
    found = [f for f in lint(profile) if f.rule_id == "unknown-engine-arg"]
    assert len(found) == 1 and f"at {python}" in found[0].message
    assert found[0].fix == "did you mean max-model-len?"
    # the probe was cached on disk: a second catalogue needs no subprocess
    cached = list((paths.state_dir() / "vllm-args").glob("*.json"))
    assert len(cached) == 1
