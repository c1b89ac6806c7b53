"""The monitor's report: one server's figures as a JSON-ready dict, and its text view.

Core, headless: ``vllm-console monitor`` (single server and fleet) and the fleet's
samplers (``console.fleet``) build the same report here, so the commands import
this module and never the reverse (no import cycle, docs/architecture.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from console.errors import ConsoleError

if TYPE_CHECKING:
    import httpx

    from console import metrics as M
    from console.gpu import GpuSample, GpuSampler

# httpx, prometheus_client (console.metrics) and psutil (console.gpu) are imported
# inside the functions: every CLI start builds monitor's parser, few runs monitor.

GIB = 2**30


# --------------------------------------------------------------------------- report

_FIGURE_KEYS = (
    "requests",
    "kv_cache",
    "throughput",
    "prefix_cache",
    "preemptions",
    "latency",
    "spec_decode",
)


def build_report(
    url: str,
    *,
    figures: M.Figures | None,
    server: M.ServerInfo | None,
    gpu: GpuSample | None,
    error: str | M.MetricsError | None,
) -> dict[str, Any]:
    """The monitor JSON object; every key is present, null where unknown."""
    from console import metrics as M

    hint = error.hint if isinstance(error, M.MetricsError) else None
    if isinstance(error, M.MetricsError):
        error = error.message
    report: dict[str, Any] = {
        "url": url,
        "ok": error is None and figures is not None,
        "error": error,
        "hint": hint,
        "timestamp": figures.timestamp if figures is not None else time.time(),
        "window_s": figures.window_s if figures is not None else None,
        "counter_reset": figures.counter_reset if figures is not None else False,
        "server": (server or M.ServerInfo()).to_dict(),
    }
    fd = figures.to_dict() if figures is not None else {}
    for key in _FIGURE_KEYS:
        report[key] = fd.get(key)
    report["nonfinite"] = list(figures.nonfinite) if figures is not None else []
    if figures is not None:
        report["stale"] = figures.stale
        report["age_s"] = figures.age_s
    report["gpu"] = [d.to_dict() for d in gpu.devices] if gpu is not None else []
    report["gpu_status"] = None if gpu is None or gpu.available else gpu.reason
    report["host_memory"] = gpu.host_memory_dict() if gpu is not None else None
    return report


def collect_once(
    url: str,
    *,
    interval: float = 1.0,
    client: httpx.Client | None = None,
    gpu_sampler: GpuSampler | None = None,
    wait: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Two scrapes ``interval`` apart -> one report (ok false on any scrape error).

    Each request is bounded by ``console.server_client``'s deadline and size
    cap, so a server that drips or floods still gives a report, with the error.
    """
    from console import metrics as M
    from console.gpu import GpuSampler
    from console.server_client import SyncServerClient

    base = M.base_url(url)
    sampler = gpu_sampler or GpuSampler()
    figures = server = None
    error: M.MetricsError | None = None
    with SyncServerClient(base, http=client) as c:
        try:
            first = M.scrape(base, client=c)
            try:
                server = M.fetch_server_info(base, client=c)
            except M.MetricsError:
                server = None
            wait(interval)
            second = M.scrape(base, client=c)
            figures = M.derive(second, first)
        except M.MetricsError as exc:
            error = exc
    report = build_report(base, figures=figures, server=server, gpu=sampler.sample(), error=error)
    report["cluster"] = cluster_report(base)
    return report


def cluster_report(url: str) -> dict[str, Any] | None:
    """The nodes of a multi-node server the console started at ``url`` (Ray's state
    for a Ray cluster, the node processes for vLLM's executor); None otherwise."""
    from console.runtime import cluster_view

    return cluster_view.for_url(url)


# --------------------------------------------------------------------------- text


def _n(v: float | None, fmt: str = "{:.1f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _pct(v: float | None) -> str:
    return _n(v, "{:.1%}")


def _gib(b: float | None) -> str:
    return _n(None if b is None else b / GIB, "{:.1f}")


def _quant(q: dict[str, Any] | None) -> str:
    if not q or not q.get("count"):
        return "-"
    return "p50 {} p90 {} p99 {} s".format(*(_n(q.get(k), "{:.3f}") for k in ("p50", "p90", "p99")))


def _spec_line(label: str, s: dict[str, Any] | None) -> str:
    if s is None:
        return f"  {label:<9} -"
    per = s.get("per_position")
    per_txt = " ".join(f"{x:.2f}" for x in per) if per else "-"
    return (
        f"  {label:<9} mean acceptance length {_n(s.get('mean_acceptance_length'), '{:.2f}')}"
        f"  draft acceptance {_pct(s.get('draft_acceptance_rate'))}"
        f"  per position {per_txt}"
        f"  ({s['accepted_tokens']}/{s['draft_tokens']} tokens, {s['drafts']} drafts)"
    )


def render_text(r: dict[str, Any]) -> str:
    """A compact plain-text view of one report."""
    from console import sanitize
    from console.sanitize import clean_line

    srv = r.get("server") or {}
    head = f"vllm-console monitor  {clean_line(r['url'])}"
    if srv.get("version"):
        head += f"  vLLM {clean_line(srv['version'])}"
    if srv.get("model"):
        ml = f" (max len {srv['max_model_len']:,})" if srv.get("max_model_len") else ""
        head += f"  {clean_line(srv['model'])}{ml}"
    head += "  " + time.strftime("%H:%M:%S", time.localtime(r["timestamp"]))
    lines = [head]
    if not r["ok"]:
        lines.append(f"  DOWN      {clean_line(r['error'] or '')}")
        if r.get("hint"):
            lines.append(f"  hint      {clean_line(r['hint'])}")
    if r.get("nonfinite"):
        names = ", ".join(clean_line(n) for n in r["nonfinite"])
        lines.append(f"  NON-FINITE {names}: NaN/Inf on the page, shown as unknown (-),")
        lines.append("            windows over these counters skipped")
    if r.get("stale"):
        lines.append(
            f"  STALLED   stalled for {r.get('age_s', 0):.0f} s; the last good sample is shown"
        )
    if r.get("counter_reset"):
        lines.append("  RESET     counters went down (server restarted): window restarted")
    if r.get("requests") is not None:
        q, kv, tp = r["requests"], r["kv_cache"], r["throughput"]
        pc, lat = r["prefix_cache"], r["latency"]
        win = f"last {r['window_s']:.1f} s" if r.get("window_s") else "no window yet"
        cap = kv.get("capacity_tokens")
        cap_txt = f" of {cap:,} tokens" if cap else " (capacity unknown)"
        lines += [
            f"  requests  running {_n(q['running'], '{}')}  waiting {_n(q['waiting'], '{}')}",
            f"  kv cache  {_pct(kv['usage'])}{cap_txt}",
            f"  tokens/s  generation {_n(tp['generation_tokens_per_s'])}"
            f"  prompt {_n(tp['prompt_tokens_per_s'])}  ({win})",
            f"  prefix    hit rate {_pct(pc['hit_rate'])} ({win}),"
            f" {_pct(pc['hit_rate_lifetime'])} since start",
            f"  TTFT      {_quant(lat.get('ttft_s'))}",
            f"  TPOT      {_quant(lat.get('tpot_s'))}",
        ]
        sd = r.get("spec_decode")
        if sd is None:
            lines.append("  spec dec  off (server runs without speculative decoding)")
        else:
            lines.append(f"  spec dec  k={sd['num_speculative_tokens']}")
            lines.append(_spec_line("window", sd.get("window")))
            lines.append(_spec_line("lifetime", sd.get("lifetime")))
    for d in r.get("gpu") or []:
        parts = [f"  gpu {d['index']}     {d.get('name') or '?'}"]
        parts.append(f"util {_n(d.get('util_pct'), '{:.0f}')}%")
        parts.append(f"{_n(d.get('temp_c'), '{:.0f}')}°C")
        lim = d.get("power_limit_w")
        parts.append(f"{_n(d.get('power_w'), '{:.0f}')} W" + (f" / {lim:.0f} W" if lim else ""))
        if d.get("unified"):
            parts.append(
                f"memory unified; GPU allocations {_gib(d.get('gpu_attributed_bytes'))} GiB"
            )
        else:
            parts.append(f"memory {_gib(d.get('mem_used'))}/{_gib(d.get('mem_total'))} GiB")
        lines.append("  ".join(parts))
    for ev in r.get("events") or []:
        when = time.strftime("%H:%M:%S", time.localtime(ev["ts"]))
        msg = sanitize.clean_line(ev["message"])
        lines.append(f"  event     {when} {ev['severity']} {ev['kind']}: {msg}")
    cluster = r.get("cluster")
    if cluster:
        nodes = cluster.get("nodes") or []
        up = sum(1 for n in nodes if n.get("alive"))
        lines.append(f"  cluster   {cluster.get('backend')}: {up}/{len(nodes)} nodes up")
        if cluster.get("error"):
            lines.append(f"            {clean_line(cluster['error'])}")
        for n in nodes:
            note = f"  {clean_line(n['detail'])}" if n.get("detail") else ""
            where = clean_line(n.get("address") or "")
            lines.append(f"  node      {n.get('name')}: {n.get('state')} {where}{note}")
    if r.get("gpu_status"):
        lines.append(f"  gpu       none ({r['gpu_status']})")
    hm = r.get("host_memory")
    if hm:
        label = "host pool" if hm.get("role", "").startswith("unified") else "host RAM "
        lines.append(
            f"  {label} {_gib(hm['used'])}/{_gib(hm['total'])} GiB used,"
            f" page cache {_gib(hm['cached'])} GiB ({hm.get('role')})"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- record


def open_record(path: str | None) -> IO[str] | None:
    """``--record FILE`` opened for appending, line-buffered; None without one."""
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return p.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise ConsoleError(
            f"--record {path}: cannot open for appending ({exc.strerror})",
            hint="choose a writable file",
        ) from None


def strict_json(report: dict[str, Any]) -> str:
    """One JSON line, never ``NaN``/``Infinity`` (not JSON): non-finite is null."""
    from console.metrics import finite_tree

    return json.dumps(finite_tree(report), allow_nan=False)


def write_record(fh: IO[str] | None, report: dict[str, Any]) -> None:
    """One strict JSON line to the record, flushed as written."""
    if fh is not None:
        fh.write(strict_json(report) + "\n")
        fh.flush()
