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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from console.errors import ConsoleError
from console.profiles import catalogue as catalogue_mod
from console.profiles.catalogue import Catalogue
from console.profiles.redaction import has_ref, is_secret_name
from console.profiles.render import local_python
from console.profiles.schema import Profile
from console.profiles.userpath import expand_home

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    message: str
    fix: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    check: Callable[[Context], Iterator[Finding]]


Version = tuple[int, int, int]


@dataclass(frozen=True)
class Context:
    profile: Profile
    catalogue: Catalogue
    vllm_version: Version | None
    """The vLLM that will serve, when known (image ref/tag, or the probed runtime)."""

    @property
    def args(self) -> dict[str, Any]:
        return self.profile.serve.engine_args

    @property
    def spec(self) -> dict[str, Any]:
        return self.profile.serve.speculative_config or {}

    def arg(self, name: str) -> Any:
        return self.args.get(name)


RULES: list[Rule] = []


def rule(rule_id: str, severity: Severity, summary: str) -> Callable[..., Any]:
    def register(fn: Callable[[Context], Iterator[Finding]]) -> Callable[..., Any]:
        RULES.append(Rule(rule_id, severity, summary, fn))
        return fn

    return register


def _finding(rule_id: str, message: str, fix: str, field: str, severity: Severity | None = None):
    sev = severity or next(r.severity for r in RULES if r.id == rule_id)
    return Finding(rule_id, sev, message, fix, field)


# --- helpers -------------------------------------------------------------------------------

_VERSION = re.compile(r"(?<![\d.])v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    match = _VERSION.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _fmt(version: Version) -> str:
    return ".".join(map(str, version))


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


@rule("moe-backend-gelu-tanh", "error", "explicit MoE backend that rejects Gemma 4's GELU_TANH")
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


@rule("flashinfer-log-env", "warning", "FLASHINFER_JIT_LOG_LEVEL has no effect")
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


@rule("gemma4-assistant-transformers", "error", "Gemma 4 assistant draft needs transformers ≥ 5.8")
def _assistant_transformers(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx):
        return
    need = (5, 8, 0)
    field = "image.pip"
    fix = (
        "add to image.pip: packages: ['https://github.com/huggingface/transformers/archive/"
        "main.tar.gz'] (or 'transformers>=5.8')"
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
    if not pins:
        yield _finding(
            "gemma4-assistant-transformers",
            f"{msg}; the image installs no transformers, so it keeps the base image's",
            fix,
            field,
        )
        return
    spec, have = pins[-1]
    if have is not None and have < need and not re.search(r">=?\s*5\.(8|9|\d\d)", spec):
        yield _finding(
            "gemma4-assistant-transformers",
            f"{msg}; the image installs {spec}",
            fix,
            field,
        )


@rule("gemma4-mtp-vllm", "error", "Gemma 4 MTP needs vLLM ≥ 0.21 or PR 41745")
def _gemma4_mtp_version(ctx: Context) -> Iterator[Finding]:
    if not _gemma4_assistant(ctx) or ctx.vllm_version is None:
        return
    patched = _has_patch(ctx.profile, 41745)
    if ctx.vllm_version < (0, 21, 0) and not patched:
        yield _finding(
            "gemma4-mtp-vllm",
            f"vLLM {_fmt(ctx.vllm_version)} has no Gemma 4 MTP drafter (PR #41745 landed in 0.21)",
            "use a vLLM >= 0.21 base image, or add image.patches: [{pr: 41745, commit: ...}]",
            "image.base",
        )
    elif (0, 21, 0) <= ctx.vllm_version < (0, 25, 0) and _QUANT_MARK.search(
        ctx.profile.serve.model
    ):
        yield _finding(
            "gemma4-mtp-vllm",
            f"on vLLM {_fmt(ctx.vllm_version)} the quantized target's quant_config leaks into "
            "the BF16 draft (0% acceptance or shape errors; fixed in 0.25 by PR #47091)",
            "use a vLLM >= 0.25 base image",
            "image.base",
            severity="warning",
        )


@rule("spec-quantization-bf16", "error", "speculative `quantization` with a BF16 assistant")
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


@rule("auto-tool-choice-parser", "error", "--enable-auto-tool-choice without --tool-call-parser")
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


@rule("batched-tokens-below-seqs", "error", "--max-num-batched-tokens < --max-num-seqs")
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


@rule("default-flag", "info", "engine arg already at vLLM's default")
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


@rule("default-env", "info", "environment variable already at vLLM's default")
def _default_env(ctx: Context) -> Iterator[Finding]:
    if ctx.profile.serve.env.get("VLLM_SKIP_P2P_CHECK") == "1":
        yield _finding(
            "default-env",
            "VLLM_SKIP_P2P_CHECK=1 is vLLM's default (it skips the P2P check unless set to 0)",
            "remove VLLM_SKIP_P2P_CHECK from env (harmless if you keep it)",
            "serve.env.VLLM_SKIP_P2P_CHECK",
        )


_PUBLIC = ("0.0.0.0", "::", "", "[::]")


@rule("public-bind-no-api-key", "warning", "server reachable from the network without an API key")
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


@rule("engine-arg-has-field", "error", "engine arg that has its own profile field")
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


@rule("unknown-engine-arg", "error", "engine arg that vLLM does not know")
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


@rule("gpu-memory-utilization", "error", "--gpu-memory-utilization outside (0, 1]")
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


@rule("speculative-config", "error", "speculative config that vLLM rejects or misreads")
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


@rule("eager-with-spec", "info", "--enforce-eager with speculative decoding")
def _eager_spec(ctx: Context) -> Iterator[Finding]:
    if ctx.spec and ctx.arg("enforce-eager") is True and ctx.profile.runtime == "docker":
        yield _finding(
            "eager-with-spec",
            "--enforce-eager runs every draft step without CUDA graphs, which eats into the "
            "speculative-decoding speedup",
            "once the setup works, try without enforce-eager (startup gets slower)",
            "serve.engine_args.enforce-eager",
        )


@rule("literal-secret", "warning", "a credential written into the profile")
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
    findings = [f for r in RULES if r.id not in ignored for f in r.check(ctx)]
    return sorted(findings, key=lambda f: _ORDER[f.severity])


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


# The multi-node rules join the registry (they import ``rule`` from here).
from console.profiles import lint_cluster as _lint_cluster  # noqa: E402, F401
