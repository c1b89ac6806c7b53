"""Running a k-sweep: each server of ``sweep_profiles`` in turn, measured, stopped.

Kept apart from the model (``sweep``) and the report (``sweep_report``), as
in the A/B bench: imports run ``sweep`` <- ``sweep_report`` <- ``sweep_run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from console import metrics
from console.bench.categories import CategoryRun
from console.bench.client import ChatRequest, RequestResult, stream_chat
from console.bench.model import Prompt, utc_now
from console.bench.sweep import (
    SweepCell,
    SweepConfig,
    SweepResult,
    SweepServer,
    loadavg,
    require_speculation,
    select_dataset,
    spec_method,
    sweep_profiles,
)
from console.bench.sweep_report import write_json
from console.errors import ConsoleError
from console.server_client import STREAM, StreamLimits

if TYPE_CHECKING:
    from console.profiles.schema import Profile
    from console.runtime.base import ServerRuntime

# --------------------------------------------------------------------------- runner


EventKind = Literal["note", "server", "cell", "done"]


@dataclass(frozen=True)
class SweepEvent:
    """Progress for the CLI and the Bench screen; ``result`` is the live result."""

    kind: EventKind
    message: str
    result: SweepResult
    server: SweepServer | None = None
    cell: SweepCell | None = None


RuntimeFor = Callable[["Profile"], "ServerRuntime"]


class SweepRunner:
    """Starts the profile once per k (baseline first), measures, stops each server."""

    def __init__(
        self,
        profile: Profile,
        config: SweepConfig,
        *,
        on_event: Callable[[SweepEvent], None] | None = None,
        json_path: Path | None = None,
        model: str | None = None,
        runtime_for: RuntimeFor | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.profile = profile
        self.plan = sweep_profiles(profile, config.ks, config.port)
        self.groups = select_dataset(config)
        self.on_event = on_event
        self.json_path = json_path
        self.model = model
        if runtime_for is None:
            from console.runtime import runtime_for as default

            runtime_for = default
        self._runtime_for = runtime_for
        self.result = SweepResult(
            profile=profile.name,
            method=spec_method(profile),
            configured_k=require_speculation(profile),
            config=config,
            categories=list(self.groups),
            servers=[SweepServer(k, p.name) for k, p in self.plan],
            json_path=str(json_path) if json_path else None,
            load_average_start=loadavg(),
        )
        if any(len(g) < config.concurrency for g in self.groups.values()):
            self.result.notes.append(
                "some categories have fewer prompts than requests at the concurrent load: "
                "prompts repeat there (prefix caching shortens their prefill)"
            )
        self._headers = metrics.auth_headers()

    # -- plumbing

    def _emit(self, kind: EventKind, message: str, **kw: Any) -> None:
        if self.json_path is not None and kind != "note":
            write_json(self.result, self.json_path)
        if self.on_event is not None:
            self.on_event(SweepEvent(kind, message, self.result, **kw))

    def _client(self) -> httpx.AsyncClient:
        limit = self.config.concurrency + 4
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.request_timeout, connect=15.0),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            headers=self._headers,
        )

    def _limits(self) -> StreamLimits:
        return dataclasses.replace(STREAM, connect_s=15.0, idle_s=self.config.request_timeout)

    # -- one server: start, yield, always stop

    @contextlib.asynccontextmanager
    async def _serving(self, server: SweepServer, profile: Profile) -> AsyncIterator[str]:
        """Start ``profile`` and wait until it is ready; ``down`` when the block ends.

        ``up(wait=False)`` returns once the process exists (its record saved),
        then readiness is polled here, so a cancel (Ctrl-C, the screen's Stop)
        lands between polls and ``down`` ends the server at once. The ``up``
        call itself is always awaited to its end before ``down``, so a cancel
        during it cannot leave a server that ``down`` did not see."""
        from console.runtime.base import ServerState

        runtime = self._runtime_for(profile)
        server.phase = "starting"
        server.url = profile.url
        self._emit(
            "server", f"{server.label}: starting {profile.name} on {profile.url} …", server=server
        )
        t0 = time.monotonic()
        up = asyncio.ensure_future(asyncio.to_thread(runtime.up, profile, wait=False))
        try:
            status = await asyncio.shield(up)
            server.spawned = True
            server.pid = status.pid
            deadline = t0 + self.config.server_timeout
            while status.state is not ServerState.READY:
                if status.state not in (ServerState.STARTING, ServerState.UNKNOWN):
                    raise ConsoleError(
                        f"{profile.name} did not start ({status.state}): "
                        f"{status.detail or 'no detail'}"
                    )
                if time.monotonic() > deadline:
                    raise ConsoleError(
                        f"{profile.name} not ready after {self.config.server_timeout:.0f} s: "
                        f"{status.detail or 'no detail'}"
                    )
                await asyncio.sleep(1.0)
                status = await asyncio.to_thread(runtime.status, profile)
            server.ready_s = time.monotonic() - t0
            server.pid = status.pid or server.pid
            self._emit("note", f"{server.label}: ready in {server.ready_s:.0f} s")
            yield metrics.base_url(status.url or profile.url)
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.shield(up)  # a cancelled start still finishes spawning first
            stopped = await asyncio.shield(asyncio.to_thread(runtime.down, profile))
            server.stopped = stopped.detail
            if stopped.state is ServerState.FAILED:
                self.result.notes.append(
                    f"{server.label}: stopping left something: {stopped.detail}"
                )
            self._emit("note", f"{server.label}: stopped ({stopped.detail})")

    # -- measuring

    async def _describe(self, client: httpx.AsyncClient, url: str, server: SweepServer) -> str:
        info = await metrics.afetch_server_info(client, url)
        model = self.model or info.model
        if not model:
            raise ConsoleError(f"{url}/v1/models lists no model", hint="pass --model NAME")
        self.result.model = self.result.model or model
        self.result.version = self.result.version or info.version
        figures = metrics.derive(await metrics.ascrape(client, url))
        server.measured_k = (
            figures.spec_decode.num_speculative_tokens if figures.spec_decode else None
        )
        if server.k is not None and server.measured_k not in (None, server.k):
            self.result.notes.append(
                f"{server.label}: the server exports {server.measured_k} draft positions, "
                f"not {server.k}"
            )
        return model

    def _request(self, model: str, prompt: Prompt, max_tokens: int) -> ChatRequest:
        return ChatRequest(
            model=model,
            messages=prompt.messages,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
        )

    async def _warm(self, client: httpx.AsyncClient, url: str, model: str) -> None:
        prompts = [p for g in self.groups.values() for p in g][-self.config.warmup :]
        for prompt in prompts if self.config.warmup else []:
            req = self._request(model, prompt, self.config.warmup_max_tokens)
            res = await stream_chat(client, url, req, prompt_id=prompt.id, limits=self._limits())
            if not res.ok:
                raise ConsoleError(f"warm-up request to {url} failed: {res.error}")

    async def _cell(
        self, client: httpx.AsyncClient, url: str, model: str, category: str, load: int
    ) -> SweepCell:
        prompts = self.config.prompts_for(self.groups[category], load)
        sem = asyncio.Semaphore(load)
        before = await metrics.ascrape(client, url)
        t0 = time.perf_counter()

        async def one(prompt: Prompt) -> RequestResult:
            async with sem:
                req = self._request(model, prompt, self.config.max_tokens)
                return await stream_chat(
                    client, url, req, prompt_id=prompt.id, run_start=t0, limits=self._limits()
                )

        results = list(await asyncio.gather(*(one(p) for p in prompts)))
        wall = time.perf_counter() - t0
        after = await metrics.ascrape(client, url)
        figures = metrics.derive(after, before)
        run = CategoryRun(category, results)
        if figures.spec_decode is not None and not figures.counter_reset:
            run.spec = figures.spec_decode.window
        return SweepCell(category, load, run, wall, loadavg())

    async def _measure(self, client: httpx.AsyncClient, url: str, server: SweepServer) -> None:
        model = await self._describe(client, url, server)
        await self._warm(client, url, model)
        server.phase = "measuring"
        for load in self.config.loads:
            for category in self.groups:
                cell = await self._cell(client, url, model, category, load)
                server.cells.append(cell)
                accept = cell.acceptance_length
                tok_s = cell.tok_s
                msg = (
                    f"{server.label} {category} ×{load}: {len(cell.requests)} requests, "
                    f"{cell.output_tokens} tokens, "
                    f"{'?' if tok_s is None else f'{tok_s:.1f}'} tok/s"
                    + ("" if accept is None else f", acceptance length {accept:.2f}")
                )
                if cell.failed:
                    first = next(r.error for r in cell.requests if not r.ok)
                    msg += f", {cell.failed} failed ({first})"
                self._emit("cell", msg, server=server, cell=cell)

    # -- the sweep

    async def run(self) -> SweepResult:
        """Every server in turn; one that fails is recorded and the sweep goes on."""
        try:
            async with self._client() as client:
                for server, (_k, profile) in zip(self.result.servers, self.plan, strict=True):
                    try:
                        async with self._serving(server, profile) as url:
                            await self._measure(client, url, server)
                        server.phase = "done"
                    except ConsoleError as exc:
                        server.phase = "failed"
                        server.error = exc.message
                        self._emit(
                            "server", f"{server.label}: failed: {exc.message}", server=server
                        )
                        if not server.spawned:
                            raise  # never started (port taken, no runtime): nor would the next
                        continue
                    except BaseException:  # Ctrl-C, a cancelled worker: it was stopped
                        server.phase = "failed"
                        server.error = server.error or "stopped before it finished"
                        raise
                    self._emit("server", f"{server.label}: done", server=server)
            self.result.finished = utc_now()
        finally:
            self.result.load_average_end = loadavg()
            if self.json_path is not None:
                write_json(self.result, self.json_path)
        self._emit("done", "sweep complete")
        return self.result


async def run_sweep(
    profile: Profile,
    config: SweepConfig,
    *,
    on_event: Callable[[SweepEvent], None] | None = None,
    json_path: Path | None = None,
    model: str | None = None,
) -> SweepResult:
    """Run a sweep to its end (see :class:`SweepRunner`)."""
    runner = SweepRunner(profile, config, on_event=on_event, json_path=json_path, model=model)
    return await runner.run()
