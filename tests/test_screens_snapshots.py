"""SVG snapshots of the four screens on fixed, recorded data (no live server):
real /metrics pages, a real server log, real build streams, recorded NVML.

Update with ``pytest tests/test_screens_snapshots.py --snapshot-update`` after a
deliberate change, and look at the SVGs before committing them.
"""

from __future__ import annotations

import json
import time

import pytest
from textual.pilot import Pilot

from console import logs as L
from console import metrics as M
from console.app import ConsoleApp
from console.buildlog import parse_chunks
from console.gpu import GpuSampler
from console.gpu_recorded import RecordedNvml
from console.screens.build import BuildScreen
from console.screens.dashboard import DashboardScreen, GpuSampled, MetricsPolled, gpu_view_from
from console.screens.server import LogEvents, ServerScreen
from console.session import Session
from tests.screen_helpers import DATA, DOWN_URL, wait_until

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


def app_on(mode: str = "build") -> ConsoleApp:
    return ConsoleApp(Session(url=DOWN_URL), start_mode=mode)


def recorded_gpu(name: str):
    rec = RecordedNvml.load(DATA / name)
    sampler = GpuSampler(rec, host_memory=rec.host_memory, process_name=lambda pid: "vllm")
    sample = sampler.sample()
    return gpu_view_from(sample, sample.timestamp)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "gpu",
    [
        pytest.param("nvml-h200/nvml_busy.json", id="h200"),
        pytest.param("nvml-gb10/nvml_gb10_handmade.json", id="gb10"),
    ],
)
@pytest.mark.usefixtures("private_state")
def test_dashboard_snapshot(snap_compare, size: tuple[int, int], gpu: str) -> None:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        now = time.time()
        screen = DashboardScreen(live=False, clock=lambda: now)  # ages fixed: no "stale"
        await app.push_screen(screen)
        pages = ["metrics_idle.prom", "metrics_ngram.prom"]
        for i, page in enumerate(pages):
            text = (DATA / "metrics" / page).read_text()
            sample = M.parse_metrics(text, timestamp=now - 30 + 29 * i)
            screen.post_message(MetricsPolled(sample, None))
        screen.post_message(GpuSampled(recorded_gpu(gpu)))
        await wait_until(pilot, lambda: screen.polls == 2, timeout=10, what="replayed pages")
        await pilot.pause()

    assert snap_compare(app_on(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.usefixtures("private_state")
def test_server_snapshot(snap_compare, size: tuple[int, int]) -> None:
    lines = (DATA / "serverlog" / "server_ngram.log").read_text().splitlines()

    async def run_before(pilot: Pilot) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, ServerScreen)
        await wait_until(pilot, lambda: screen.status is not None, timeout=15, what="status")
        parser = L.LogParser()
        events = []
        for line in lines:
            screen.query_one("#srv-log").push(line)
            events += parser.feed(line)
        events += parser.flush()
        screen.post_message(LogEvents(events))
        await pilot.pause(0.3)

    assert snap_compare(app_on("server"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.usefixtures("private_state")
def test_profiles_snapshot(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot) -> None:
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.profiles, timeout=20, what="profiles")
        await pilot.press("down")
        await wait_until(
            pilot,
            lambda: screen.selected is not None and screen.selected.name in screen.findings,
            timeout=20,
            what="lint",
        )
        await pilot.pause()

    assert snap_compare(app_on("profiles"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.usefixtures("private_state")
def test_build_snapshot(snap_compare, size: tuple[int, int], tmp_path) -> None:
    path = DATA / "buildlog" / "classic_fail.jsonl"
    events = list(parse_chunks(json.loads(x) for x in path.read_text().splitlines() if x.strip()))

    async def run_before(pilot: Pilot) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, BuildScreen)
        from pathlib import Path

        screen.replay(events, log_path=Path("~/.local/state/vllm-console/builds/demo.log"))
        await wait_until(pilot, lambda: screen.state == "failed", timeout=10, what="the end")
        screen._started_at = screen._ended_at  # elapsed 0:00: stable across runs
        screen._tick()
        await pilot.pause(0.3)

    assert snap_compare(app_on("build"), terminal_size=size, run_before=run_before)
