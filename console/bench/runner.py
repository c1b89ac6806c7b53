"""Headless A/B benchmark: a baseline against speculative decoding, the seed's table.

Two *arms* (two running servers by URL, or two profiles the runner starts,
warms and stops in turn) get the same scenarios — sequential x N (one stream,
latency) and concurrent x M (throughput) — with the same shipped chat prompts,
a fixed output length (``ignore_eos`` + ``max_tokens``) and greedy sampling by
default, repeated R times. The rules for a fair A/B are reference/vllm.md §7.

Everything a run measures lands in a :class:`BenchResult` as it happens and,
with ``json_path``, on disk after every run, so an interrupted bench keeps
what it measured. Spec-decode figures are scoped to each run by differencing
``/metrics`` before and after it (console.metrics), never lifetime averages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from console import metrics
from console.bench.categories import CategoryRun, by_category, load_dataset, run_categories
from console.bench.client import ChatRequest, RequestResult, stream_chat
from console.bench.model import (
    ArmInfo,
    ArmSpec,
    BenchConfig,
    BenchResult,
    Prompt,
    PromptPlan,
    RunRecord,
    Scenario,
    load_prompts,
    utc_now,
)
from console.bench.report import write_json
from console.errors import ConsoleError, UsageError
from console.server_client import STREAM, StreamLimits

# --------------------------------------------------------------------------- events


EventKind = Literal["note", "arm", "run", "done"]


@dataclass(frozen=True)
class BenchEvent:
    """Progress for the CLI and the Bench screen; ``result`` is the live result."""

    kind: EventKind
    message: str
    result: BenchResult
    run: RunRecord | None = None
    arm: ArmInfo | None = None


EventCallback = Callable[[BenchEvent], None]


# --------------------------------------------------------------------------- servers


@contextlib.asynccontextmanager
async def _url_arm(spec: ArmSpec) -> AsyncIterator[tuple[str, ArmInfo]]:
    assert spec.url is not None
    url = metrics.base_url(spec.url)
    yield url, ArmInfo(label=spec.label, name=spec.name, url=url)


def _load_profile(name: str) -> Any:
    from console.profiles.loader import load_profile

    return load_profile(name)


@contextlib.asynccontextmanager
async def _profile_arm(
    spec: ArmSpec, config: BenchConfig, note: Callable[[str], None]
) -> AsyncIterator[tuple[str, ArmInfo]]:
    """Start the profile's server (unless it already runs), yield its URL, stop it."""
    from console.runtime import ServerState, runtime_for

    assert spec.profile is not None
    profile = _load_profile(spec.profile)
    if spec.port is not None:
        serve = profile.serve.model_copy(update={"port": spec.port})
        profile = profile.model_copy(update={"serve": serve})
    runtime = runtime_for(profile)
    info = ArmInfo(label=spec.label, name=spec.name, profile=spec.profile)
    status = await asyncio.to_thread(runtime.status, profile)
    started = False
    if status.state != ServerState.READY:
        note(f"arm {spec.label}: starting {spec.profile} on {profile.url} …")
        t0 = time.monotonic()
        status = await asyncio.to_thread(
            runtime.up, profile, wait=True, timeout=config.server_timeout
        )
        started = True
        if status.state != ServerState.READY:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(runtime.down, profile)
            where = f"; log: {status.log_path}" if status.log_path else ""
            raise ConsoleError(
                f"profile {spec.profile}: server did not become ready "
                f"({status.state}: {status.detail or 'no detail'}){where}"
            )
        note(f"arm {spec.label}: {spec.profile} ready in {time.monotonic() - t0:.0f} s")
    else:
        note(f"arm {spec.label}: {spec.profile} already running at {status.url}; left running")
    info.started_by_bench = started
    info.url = metrics.base_url(status.url or profile.url)
    kv = await asyncio.to_thread(_kv_from_log, runtime, profile)
    if kv is not None:
        info.kv_cache_tokens, info.kv_max_concurrency = kv.tokens, kv.max_concurrency
        info.kv_source = "log"
    try:
        yield info.url, info
    finally:
        if started:
            note(f"arm {spec.label}: stopping {spec.profile}")
            await asyncio.shield(asyncio.to_thread(runtime.down, profile))


def _kv_from_log(runtime: Any, profile: Any) -> Any:
    """The server's last ``KV cache size`` log event (console.logs), or None.

    Older vLLM releases don't put the size in tokens on ``/metrics``; their
    startup log has it. Used when ``/metrics`` doesn't say.
    """
    from console.logs import KvCacheSize, LogParser

    parser = LogParser()
    found = None
    try:
        for line in runtime.logs(profile, follow=False):
            for event in parser.feed(line):
                if isinstance(event, KvCacheSize):
                    found = event
        for event in parser.flush():
            if isinstance(event, KvCacheSize):
                found = event
    except Exception:  # a log we can't read only costs the fallback figure
        return None
    return found


# --------------------------------------------------------------------------- runner


class BenchRunner:
    """Runs the scenarios against each arm and fills a :class:`BenchResult`."""

    def __init__(
        self,
        arms: Sequence[ArmSpec],
        config: BenchConfig,
        *,
        on_event: EventCallback | None = None,
        json_path: Path | None = None,
        model: str | None = None,
    ) -> None:
        config.check()
        if not 1 <= len(arms) <= 2:
            raise UsageError("bench compares one or two arms")
        if any((a.url is None) == (a.profile is None) for a in arms):
            raise UsageError("each arm is either a URL or a profile")
        self.arms = list(arms)
        self.config = config
        self.on_event = on_event
        self.json_path = json_path
        self.model = model
        self.plan = PromptPlan(tuple(load_prompts(config.prompts)), config)
        self.result = BenchResult(config=config, prompts_reused=self.plan.reused)
        self.dataset = load_dataset(config.dataset) if config.categories else []
        if self.plan.reused and not config.categories:
            self.result.notes.append(
                f"{self.plan.needed} requests share {len(self.plan.prompts)} prompts: "
                "some prompts repeat, so prefix caching can shorten their prefill"
            )
        self._headers = metrics.auth_headers()
        self._models: dict[str, str] = {}
        self._done = False

    # -- plumbing

    def _emit(self, kind: EventKind, message: str, **kw: Any) -> None:
        if self.json_path is not None and kind in ("arm", "run", "done"):
            write_json(self.result, self.json_path)
        if self.on_event is not None:
            self.on_event(BenchEvent(kind=kind, message=message, result=self.result, **kw))

    def _note(self, message: str) -> None:
        self._emit("note", message)

    def _client(self) -> httpx.AsyncClient:
        c = self.config
        limit = max(c.concurrent, c.sequential, 1) + 4
        return httpx.AsyncClient(
            timeout=httpx.Timeout(c.request_timeout, connect=15.0),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            headers=self._headers,
        )

    def _limits(self) -> StreamLimits:
        """The stream bounds of one request: ``request_timeout`` is its idle timeout."""
        return dataclasses.replace(STREAM, connect_s=15.0, idle_s=self.config.request_timeout)

    # -- one arm

    async def _describe(self, client: httpx.AsyncClient, url: str, info: ArmInfo) -> None:
        server = await metrics.afetch_server_info(client, url)
        if self.model is None and server.model is None:
            raise ConsoleError(
                f"{url}/v1/models lists no model", hint="pass --model NAME (the served model name)"
            )
        self._models[info.label] = self.model or server.model or ""
        info.model = self._models[info.label]
        info.version = server.version
        info.max_model_len = server.max_model_len
        sample = await metrics.ascrape(client, url)
        figures = metrics.derive(sample, kv_capacity_tokens_from_log=info.kv_cache_tokens)
        if figures.kv_cache.capacity_source == "metrics" or info.kv_cache_tokens is None:
            info.kv_cache_tokens = figures.kv_cache.capacity_tokens
            info.kv_max_concurrency = figures.kv_cache.max_concurrency
            info.kv_source = figures.kv_cache.capacity_source
        info.spec_decode = figures.spec_decode is not None
        if figures.spec_decode is not None:
            info.num_speculative_tokens = figures.spec_decode.num_speculative_tokens

    def _request(self, label: str, prompt: Prompt, max_tokens: int) -> ChatRequest:
        return ChatRequest(
            model=self._models[label],
            messages=prompt.messages,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
        )

    async def _warm(self, client: httpx.AsyncClient, url: str, info: ArmInfo) -> None:
        if not self.config.warmup:
            return
        self._note(f"arm {info.label}: {self.config.warmup} warm-up request(s)")
        for prompt in self.plan.warmup():
            req = self._request(info.label, prompt, self.config.warmup_max_tokens)
            res = await stream_chat(client, url, req, prompt_id=prompt.id, limits=self._limits())
            if not res.ok:
                raise ConsoleError(f"arm {info.label}: warm-up request failed: {res.error}")

    async def _run(
        self,
        client: httpx.AsyncClient,
        url: str,
        info: ArmInfo,
        scenario: Scenario,
        repeat: int,
    ) -> RunRecord:
        prompts = self.plan.for_run(scenario, repeat)
        requests = [self._request(info.label, p, self.config.max_tokens) for p in prompts]
        before = await metrics.ascrape(client, url)
        sem = asyncio.Semaphore(scenario.concurrency)
        t0 = time.perf_counter()

        async def one(req: ChatRequest, prompt: Prompt) -> RequestResult:
            async with sem:
                return await stream_chat(
                    client, url, req, prompt_id=prompt.id, run_start=t0, limits=self._limits()
                )

        results = list(
            await asyncio.gather(*(one(r, p) for r, p in zip(requests, prompts, strict=True)))
        )
        wall = time.perf_counter() - t0
        after = await metrics.ascrape(client, url)
        figures = metrics.derive(after, before)
        spec = figures.spec_decode.window if figures.spec_decode else None
        if figures.counter_reset:
            self.result.notes.append(
                f"arm {info.label} {scenario.name} #{repeat + 1}: server counters reset "
                "(restart?) during the run; its spec-decode figures are missing"
            )
        record = RunRecord(
            arm=info.label,
            scenario=scenario.name,
            repeat=repeat,
            wall=wall,
            requests=results,
            spec=spec,
            load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        )
        return record

    def _record(self, record: RunRecord, scenario: Scenario) -> None:
        self.result.runs.append(record)
        tok_s = record.output_tok_s or 0.0
        msg = (
            f"arm {record.arm} {scenario.title} #{record.repeat + 1}/{self.config.repeats}: "
            f"{record.wall:.1f} s, {record.output_tokens} tokens, {tok_s:.1f} tok/s"
        )
        if record.failed:
            first = next(r.error for r in record.requests if not r.ok)
            msg += f", {record.failed} failed ({first})"
        if record.spec and record.spec.mean_acceptance_length is not None:
            msg += f", acceptance length {record.spec.mean_acceptance_length:.2f}"
        self._emit("run", msg, run=record)

    # -- schedules

    async def run(self) -> BenchResult:
        """Run every arm; URL arms interleave by repeat, profile arms run in turn.

        Interleaving (A, B, A, B ...) spreads slow drift — other load on the
        box, thermal throttling — over both arms. Profiles can't interleave:
        only one server fits at a time.
        """
        scenarios = self.config.scenarios()
        try:
            async with self._client() as client:
                if all(a.url for a in self.arms):
                    await self._run_interleaved(client, scenarios)
                else:
                    await self._run_in_turn(client, scenarios)
        finally:
            self.result.finished = utc_now() if self._done else None
            if self.json_path is not None:
                write_json(self.result, self.json_path)
        self._emit("done", "bench complete")
        return self.result

    async def _open(self, client: httpx.AsyncClient, url: str, info: ArmInfo) -> None:
        await self._describe(client, url, info)
        self.result.arms.append(info)
        kv = f"{info.kv_cache_tokens:,} KV tokens" if info.kv_cache_tokens else "KV size unknown"
        spec = (
            f"spec decode k={info.num_speculative_tokens}" if info.spec_decode else "no spec decode"
        )
        self._emit("arm", f"arm {info.label}: {info.name} ({info.model}; {kv}; {spec})", arm=info)
        await self._warm(client, url, info)

    async def _run_interleaved(self, client: httpx.AsyncClient, scenarios: list[Scenario]) -> None:
        opened: list[tuple[str, ArmInfo]] = []
        async with contextlib.AsyncExitStack() as stack:
            for spec in self.arms:
                url, info = await stack.enter_async_context(_url_arm(spec))
                await self._open(client, url, info)
                opened.append((url, info))
            for scenario in scenarios:
                for repeat in range(self.config.repeats):
                    for url, info in opened:
                        record = await self._run(client, url, info, scenario, repeat)
                        self._record(record, scenario)
            if self.config.categories:
                # one category at a time, arms alternating: drift spreads over both
                for category in by_category(self.dataset):
                    for url, info in opened:
                        await self._categories(client, url, info, only=[category])
        self._done = True

    async def _categories(
        self, client: httpx.AsyncClient, url: str, info: ArmInfo, only: list[str] | None = None
    ) -> None:
        def done(run: CategoryRun) -> None:
            self.result.categories.setdefault(info.label, []).append(run)
            spec = run.spec
            accept = (
                f", acceptance length {spec.mean_acceptance_length:.2f}"
                if spec and spec.mean_acceptance_length is not None
                else ""
            )
            rate = run.decode_tok_s
            self._emit(
                "run",
                f"arm {info.label} {run.category}: {len(run.requests)} requests, "
                f"{run.output_tokens} tokens, "
                f"{'?' if rate is None else f'{rate:.1f}'} decode tok/s{accept}",
            )

        await run_categories(
            client,
            url,
            self._models[info.label],
            self.dataset,
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            on_category=done,
            only=only,
        )

    async def _run_in_turn(self, client: httpx.AsyncClient, scenarios: list[Scenario]) -> None:
        for spec in self.arms:
            ctx = _url_arm(spec) if spec.url else _profile_arm(spec, self.config, self._note)
            async with ctx as (url, info):
                await self._open(client, url, info)
                for scenario in scenarios:
                    for repeat in range(self.config.repeats):
                        record = await self._run(client, url, info, scenario, repeat)
                        self._record(record, scenario)
                if self.config.categories:
                    await self._categories(client, url, info)
        self._done = True


async def run_bench(
    arms: Sequence[ArmSpec],
    config: BenchConfig,
    *,
    on_event: EventCallback | None = None,
    json_path: Path | None = None,
    model: str | None = None,
) -> BenchResult:
    """Run a bench to completion (see :class:`BenchRunner`)."""
    runner = BenchRunner(arms, config, on_event=on_event, json_path=json_path, model=model)
    return await runner.run()
