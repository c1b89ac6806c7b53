"""vLLM metric names, each with its ordered fallbacks.

vLLM renamed metrics across releases (reference/vllm.md §1.5), so every lookup
is a tuple tried in order: the current name first, then older ones. Counters
are matched on their exposed ``_total`` sample name; histograms on their base
name (the ``_bucket``/``_sum``/``_count`` suffixes are added by the lookup).
"""

from __future__ import annotations

Names = tuple[str, ...]

# Gauges
RUNNING: Names = ("vllm:num_requests_running",)
WAITING: Names = ("vllm:num_requests_waiting",)
WAITING_BY_REASON: Names = ("vllm:num_requests_waiting_by_reason",)
KV_USAGE: Names = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
CACHE_CONFIG_INFO: Names = ("vllm:cache_config_info",)

# Counters (exposed sample names)
PROMPT_TOKENS: Names = ("vllm:prompt_tokens_total",)
PROMPT_TOKENS_BY_SOURCE: Names = ("vllm:prompt_tokens_by_source_total",)
GENERATION_TOKENS: Names = ("vllm:generation_tokens_total",)
PREFIX_QUERIES: Names = ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
PREFIX_HITS: Names = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
PREEMPTIONS: Names = ("vllm:num_preemptions_total",)
REQUEST_SUCCESS: Names = ("vllm:request_success_total",)
# Requests the frontend turned away (queue limits, v0.33+; absent before).
ADMISSION_REJECTIONS: Names = ("vllm:admission_rejections_total",)

# Speculative decoding counters: registered only with --speculative-config.
SPEC_DRAFTS: Names = ("vllm:spec_decode_num_drafts_total",)
SPEC_DRAFT_TOKENS: Names = ("vllm:spec_decode_num_draft_tokens_total",)
SPEC_ACCEPTED: Names = ("vllm:spec_decode_num_accepted_tokens_total",)
SPEC_ACCEPTED_PER_POS: Names = ("vllm:spec_decode_num_accepted_tokens_per_pos_total",)

# Histograms (base names)
TTFT: Names = ("vllm:time_to_first_token_seconds",)
# True per-token TPOT per finished request (v0.11+); before that the only
# per-output-token histogram was time_per_output_token_seconds.
TPOT: Names = (
    "vllm:request_time_per_output_token_seconds",
    "vllm:time_per_output_token_seconds",
)
# Per engine step (several tokens per step with spec decode).
ITL: Names = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
E2E: Names = ("vllm:e2e_request_latency_seconds",)

# Counters whose decrease between two scrapes means the server restarted.
RESET_SENTINELS: tuple[Names, ...] = (GENERATION_TOKENS, PROMPT_TOKENS, SPEC_DRAFTS)

# The metric every vLLM V1 server exports; its absence means a partial page or
# something that is not vLLM.
REQUIRED: Names = RUNNING


def _base(name: str) -> str:
    for suffix in ("_total",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# Base names (``_total`` stripped) of every metric the console reads: the
# scraper parses only these, which is what keeps a 1 Hz scrape cheap.
WANTED: frozenset[str] = frozenset(
    _base(name)
    for value in list(globals().values())
    if isinstance(value, tuple) and value and isinstance(value[0], str)
    for name in value
    if name.startswith("vllm:")
)
