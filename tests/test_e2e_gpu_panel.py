"""The dashboard's GPU panel on a real NVIDIA GPU (marker ``gpu``).

Renders the real DashboardScreen with the real NVML sampler and checks the
panel against NVML read directly. Skips, with the reason, where there is no
NVML or GPU. Set ``VLLM_CONSOLE_SCREENSHOT_DIR`` to keep an SVG of the panel.
"""

from __future__ import annotations

import os

import pytest

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")

pytestmark = pytest.mark.gpu


def _gpu_or_skip() -> tuple[str, int, int]:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVML here ({exc}): needs an NVIDIA driver and GPU")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pytest.skip("NVML is present but sees no GPU")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        try:
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            return name, int(mem.used), int(mem.total)
        except pynvml.NVMLError_NotSupported:
            return name, -1, -1
    finally:
        pynvml.nvmlShutdown()


async def test_gpu_panel_shows_the_real_device(tmp_path, monkeypatch) -> None:
    name, _used, total = _gpu_or_skip()
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    from console.app import ConsoleApp
    from console.screens.dashboard import DashboardScreen
    from console.session import Session
    from console.widgets.gauge import Gauge
    from tests.screen_helpers import wait_until

    # No server on this port: the engine panels show "down", the GPU panel still fills.
    app = ConsoleApp(Session(url="http://127.0.0.1:9"), start_mode="dashboard")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)

        def gauge_text() -> str:
            return str(screen.query_one("#mem-gauge", Gauge).render())

        def note_text() -> str:
            return str(screen.query_one("#mem-note").render())

        await wait_until(pilot, lambda: name in note_text(), timeout=30, what="GPU name")
        text = gauge_text()
        if total > 0:
            assert "GiB" in text and f"{total / 2**30:.1f}" in text, text
        else:
            assert "unified memory" in note_text()
        shots = os.environ.get("VLLM_CONSOLE_SCREENSHOT_DIR")
        if shots:
            app.save_screenshot(filename="dashboard-h200.svg", path=shots)
