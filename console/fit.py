"""Will it fit? Weights, KV cache per token and KV capacity of a profile on a box.

The capacity follows vLLM's own accounting for hybrid models (v1
``kv_cache_utils``: ``get_max_concurrency_for_kv_cache_config`` and the
``SlidingWindowSpec`` admission cap), re-derived here:

- layers are bucketed by attention type and split into groups of equal size
  (the smaller bucket's count, or the larger one when they are within 1.5x);
  every group draws blocks from one pool whose page is ``group size`` layers
  wide, so ``blocks = KV memory / (page bytes x group size)``;
- a request at ``max-model-len`` needs ``ceil(len / block)`` blocks in each
  full-attention group, and in each sliding-window group only
  ``ceil(min(window - 1 + in-flight tokens, len) / block) + 1``;
- capacity in tokens = ``blocks / blocks per request x max-model-len`` — the
  figure vLLM logs as ``KV cache size: N tokens``.

So sliding-window layers are counted for what they hold (a window), not for
the whole context. Model facts come from the model's own ``config.json`` when it
is on this machine (a managed model), else from the Gemma 4 facts shipped in
``console/data/models/gemma4.json``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from console.errors import ConsoleError
from console.profiles.render import model_ref
from console.profiles.schema import Profile

GIB = 1024**3

BOXES: dict[str, tuple[str, int, bool]] = {
    "gb10": ("DGX Spark / GB10, 128 GB unified", int(121.69 * GIB), True),
    "h100": ("H100 80 GB", 85_520_809_984, False),
    "h200": ("H200 141 GB", 150_754_820_096, False),
}
"""Name -> (label, bytes the device reports, unified memory). GB10: what CUDA reports
of the 128 GB (reference/vllm.md §4); H100/H200: NVML totals of those cards."""

GPU_OVERHEAD_BYTES = int(2.5 * GIB)
"""Activation peak, CUDA graphs and the CUDA context on a GPU: an estimate."""
GPU_BLOCK = 16
CPU_BLOCK = 128
"""vLLM's KV block size on GPUs by default, and what the CPU build logs (128)."""
DEFAULT_BATCHED_TOKENS = {"gpu": 8192, "cpu": 4096}
"""--max-num-batched-tokens when the profile leaves it out (an assumption)."""


@dataclass(frozen=True)
class LayerKind:
    """KV-storing layers of one attention type."""

    name: str  # "full" | "sliding"
    count: int
    kv_heads: int
    head_dim: int
    window: int | None = None

    def bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.kv_heads * self.head_dim * dtype_bytes  # K and V


@dataclass(frozen=True)
class ModelFacts:
    name: str
    kinds: tuple[LayerKind, ...]
    params: float
    """Total parameters (target); weights are estimated from them unless known."""
    embed_params: float
    max_len: int
    source: str
    weights_bytes: int | None = None
    """Exact on-disk size when the checkpoint is on this machine."""


@dataclass(frozen=True)
class Fit:
    profile: str
    facts: ModelFacts
    where: str
    memory_bytes: int
    utilization: float | None
    weights_target: int
    weights_draft: int
    overhead: int
    kv_budget: int
    kv_dtype_bytes: int
    max_len: int
    block: int
    in_flight: int
    kv_tokens: int
    concurrency: float
    full_bytes_per_token: int
    sliding_bytes_per_request: int
    estimated_weights: bool

    @property
    def fits(self) -> bool:
        return self.kv_budget > 0 and self.concurrency >= 1

    def lines(self) -> list[str]:
        """Human-readable summary (CLI and the Profiles screen)."""
        est = " (estimate)" if self.estimated_weights else ""
        out = [f"{self.profile}: {self.facts.name} on {self.where}"]
        draft = f" + draft {_gib(self.weights_draft)}" if self.weights_draft else ""
        out.append(f"  weights      target {_gib(self.weights_target)}{draft}{est}")
        if self.utilization is not None:
            out.append(
                f"  KV budget    {self.utilization:g} x {_gib(self.memory_bytes)} - weights - "
                f"{_gib(self.overhead)} overhead (estimate) = {_gib(self.kv_budget)}"
            )
        else:
            out.append(f"  KV budget    {_gib(self.kv_budget)} (VLLM_CPU_KVCACHE_SPACE)")
        kinds = ", ".join(f"{k.count} {k.name}" for k in self.facts.kinds)
        out.append(
            f"  KV per token {self.full_bytes_per_token / 1024:.1f} KiB in the full-attention "
            f"layers; sliding-window layers {self.sliding_bytes_per_request / 2**20:.1f} MiB "
            f"per request at most ({kinds} KV layers, {self.kv_dtype_bytes}-byte KV)"
        )
        if not self.fits:
            out.append(
                f"  does NOT fit: {_gib(self.kv_budget)} left for the KV cache, a request at "
                f"max-model-len {self.max_len:,} needs more"
            )
        else:
            out.append(
                f"  KV capacity  {self.kv_tokens:,} tokens; max concurrency at max-model-len "
                f"{self.max_len:,}: {self.concurrency:.2f}x"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "model": self.facts.name,
            "where": self.where,
            "memory_bytes": self.memory_bytes,
            "gpu_memory_utilization": self.utilization,
            "weights_target_bytes": self.weights_target,
            "weights_draft_bytes": self.weights_draft,
            "weights_estimated": self.estimated_weights,
            "overhead_bytes": self.overhead,
            "kv_budget_bytes": self.kv_budget,
            "kv_tokens": self.kv_tokens,
            "max_model_len": self.max_len,
            "max_concurrency": round(self.concurrency, 4),
            "kv_bytes_per_token_full_layers": self.full_bytes_per_token,
            "sliding_bytes_per_request": self.sliding_bytes_per_request,
            "source": self.facts.source,
        }


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


# --- model facts ---------------------------------------------------------------------------


@cache
def _shipped() -> dict[str, Any]:
    text = resources.files("console").joinpath("data/models/gemma4.json").read_text("utf-8")
    return json.loads(text)


def _lookup(table: dict[str, Any], name: str) -> tuple[str, Any] | None:
    low = name.lower()
    for key, value in table.items():
        if key.lower() == low:
            return key, value
    return None


def shipped_facts(model: str) -> ModelFacts | None:
    data = _shipped()
    alias = _lookup(data["aliases"], model)
    found = _lookup(data["models"], alias[1] if alias else model)
    if found is None:
        return None
    key, f = found
    n, every, shared = f["num_hidden_layers"], f["full_every"], f["num_kv_shared_layers"]
    storing = range(n - shared)
    full = sum(1 for i in storing if i % every == every - 1)
    kinds = (
        LayerKind("full", full, f["num_global_key_value_heads"] or f["num_key_value_heads"],
                  f["global_head_dim"]),
        LayerKind("sliding", len(storing) - full, f["num_key_value_heads"], f["head_dim"],
                  f["sliding_window"]),
    )  # fmt: skip
    return ModelFacts(
        model if alias else key,
        kinds,
        f["params_b"] * 1e9,
        f["embed_params_b"] * 1e9,
        f["max_position_embeddings"],
        f["source"],
    )


def draft_params(model: str) -> float | None:
    found = _lookup(_shipped()["drafts"], model)
    return found[1]["params_b"] * 1e9 if found else None


def facts_from_config(folder: Path) -> ModelFacts:
    """A checkpoint on this machine: its own config.json and weight files."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConsoleError(f"{path}: cannot read the model's config: {exc}") from None
    cfg = raw.get("text_config") or raw
    try:
        n = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_key_value_heads"])
        head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsoleError(f"{path}: missing or bad field {exc}") from None
    types = cfg.get("layer_types") or ["full_attention"] * n
    shared = int(cfg.get("num_kv_shared_layers") or 0)
    types = types[: n - shared]
    window = cfg.get("sliding_window")
    full = sum(1 for t in types if t != "sliding_attention")
    kinds = [
        LayerKind(
            "full", full, int(cfg.get("num_global_key_value_heads") or heads),
            int(cfg.get("global_head_dim") or head_dim),
        ),
        LayerKind("sliding", len(types) - full, heads, head_dim, window),
    ]  # fmt: skip
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return ModelFacts(
        str(folder),
        tuple(k for k in kinds if k.count),
        0.0,
        0.0,
        int(cfg.get("max_position_embeddings") or 0),
        f"{path}",
        weights_bytes=weights or None,
    )


def model_facts(profile: Profile) -> ModelFacts:
    folder = Path(model_ref(profile)).expanduser()
    if (folder / "config.json").is_file():
        return facts_from_config(folder)
    found = shipped_facts(profile.serve.model)
    if found is None:
        known = ", ".join(_shipped()["models"])
        raise ConsoleError(
            f"profile {profile.name}: no config facts for model {profile.serve.model}",
            hint=f"fit knows the Gemma 4 family ({known}) and models on this machine",
        )
    return found


# --- the estimate ----------------------------------------------------------------------------


def _bytes_per_param(model: str) -> float:
    low = model.lower()
    if "nvfp4" in low or "fp4" in low:
        return 0.5625  # 4-bit values + one FP8 scale per 16
    if "fp8" in low or "int8" in low or "w8a8" in low:
        return 1.0
    if re.search(r"awq|gptq|int4|w4a16", low):
        return 0.5625
    return 2.0


def _arg(profile: Profile, name: str) -> Any:
    return profile.serve.engine_args.get(name)


def capacity(
    kinds: tuple[LayerKind, ...],
    kv_budget: int,
    *,
    dtype_bytes: int,
    max_len: int,
    block: int,
    in_flight: int,
) -> tuple[int, float]:
    """(KV capacity in tokens, max concurrency at ``max_len``), as vLLM computes them."""
    kinds = tuple(k for k in kinds if k.count)
    if not kinds or kv_budget <= 0:
        return 0, 0.0
    widest = max(k.bytes_per_token(dtype_bytes) for k in kinds)
    page = block * widest  # vLLM unifies the page size: narrower layers get longer blocks
    counts = [k.count for k in kinds]
    group = min(counts)
    if max(counts) < group * 1.5:
        group = max(counts)
    num_blocks = kv_budget // (page * group)
    per_request = 0
    for k in kinds:
        k_block = page // k.bytes_per_token(dtype_bytes)
        tokens = max_len
        extra = 0
        if k.window:
            tokens = min(k.window - 1 + in_flight, max_len)
            extra = 1  # the window may start inside a block
        per_request += math.ceil(k.count / group) * (math.ceil(tokens / k_block) + extra)
    concurrency = num_blocks / per_request
    return int(concurrency * max_len), concurrency


def estimate(
    profile: Profile, *, box: str | None = None, gpu_memory_gb: float | None = None
) -> Fit:
    """The fit of ``profile`` on a named box or a device of ``gpu_memory_gb`` GB."""
    facts = model_facts(profile)
    kv_dtype = 1 if str(_arg(profile, "kv-cache-dtype") or "auto").startswith("fp8") else 2
    max_len = int(_arg(profile, "max-model-len") or facts.max_len)
    local_cpu = profile.runtime == "local" and box is None and gpu_memory_gb is None
    spec = profile.serve.speculative_config or {}
    draft_model = str(spec.get("model") or "")
    d_params = draft_params(draft_model) if draft_model else None
    estimated = facts.weights_bytes is None
    bpp = _bytes_per_param(profile.serve.model)
    if facts.weights_bytes is not None:
        w_target = facts.weights_bytes
    else:
        w_target = int(facts.embed_params * 2 + (facts.params - facts.embed_params) * bpp)
    w_draft = int((d_params or 0) * 2)
    batched = int(_arg(profile, "max-num-batched-tokens") or 0)
    if local_cpu:
        space = float(profile.serve.env.get("VLLM_CPU_KVCACHE_SPACE") or 4)
        budget = int(space * GIB)
        where, memory, util, overhead, block = "this CPU", budget, None, 0, CPU_BLOCK
        in_flight = batched or DEFAULT_BATCHED_TOKENS["cpu"]
    else:
        if gpu_memory_gb is not None:
            if not gpu_memory_gb > 0:
                raise ConsoleError(
                    f"--gpu-memory {gpu_memory_gb}: give the device memory in GB, e.g. 80",
                    exit_code=2,
                )
            memory = int(gpu_memory_gb * 1e9)
            where = f"a {gpu_memory_gb:g} GB device"
        else:
            name = (box or "h100").lower()
            if name not in BOXES:
                raise ConsoleError(
                    f"unknown box {box!r}", hint=f"one of {', '.join(BOXES)}", exit_code=2
                )
            where, memory, _ = BOXES[name]
        util = float(_arg(profile, "gpu-memory-utilization") or 0.92)
        overhead, block = GPU_OVERHEAD_BYTES, GPU_BLOCK
        budget = int(util * memory) - w_target - w_draft - overhead
        # async scheduling (the GPU default) keeps two batches in flight
        in_flight = 2 * (batched or DEFAULT_BATCHED_TOKENS["gpu"])
    tokens, conc = capacity(
        facts.kinds,
        budget,
        dtype_bytes=kv_dtype,
        max_len=max_len,
        block=block,
        in_flight=in_flight,
    )
    full = sum(k.count * k.bytes_per_token(kv_dtype) for k in facts.kinds if not k.window)
    sliding = sum(
        k.count * k.bytes_per_token(kv_dtype) * min((k.window or 0) - 1 + in_flight, max_len)
        for k in facts.kinds
        if k.window
    )
    return Fit(
        profile.name,
        facts,
        where,
        memory,
        util,
        w_target,
        w_draft,
        overhead,
        budget,
        kv_dtype,
        max_len,
        block,
        in_flight,
        tokens,
        conc,
        full,
        sliding,
        estimated,
    )
