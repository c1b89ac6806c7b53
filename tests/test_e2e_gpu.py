"""The real NVML layer on a real NVIDIA GPU (marker ``gpu``).

Runs with only nvidia-ml-py, psutil, pytest (+ httpx, pyyaml for the shared
conftest): ``python -m pytest -m gpu tests/test_e2e_gpu.py``. Skips, with the
reason, where there is no NVML or no GPU.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")

from console.gpu import GpuSampler  # noqa: E402
from console.gpu_recorded import RecordedNvml, record  # noqa: E402

pytestmark = pytest.mark.gpu


def _nvml_or_skip() -> int:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVML here ({exc}): needs an NVIDIA driver and GPU")
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    if count == 0:
        pytest.skip("NVML is present but sees no GPU")
    return count


def _smi(query: str) -> list[str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip().splitlines() if out.returncode == 0 else None


def test_real_gpu_sample() -> None:
    count = _nvml_or_skip()
    sampler = GpuSampler()
    try:
        sample = sampler.sample()
    finally:
        sampler.close()
    assert sample.available, sample.reason
    assert len(sample.devices) == count
    assert sample.driver
    for d in sample.devices:
        assert d.name, d.errors
        assert d.util_pct is not None and 0 <= d.util_pct <= 100
        assert d.temp_c is not None and 0 < d.temp_c < 120
        assert d.power_w is not None and d.power_w > 0
        assert d.sm_clock_mhz is not None and d.sm_clock_mhz > 0
        if d.unified:
            assert d.mem_total is None and d.mem_used is None
        else:
            assert d.mem_total and d.mem_used is not None and d.mem_used <= d.mem_total
    assert sample.host is not None and sample.host.total > 0

    smi = _smi("name,memory.total")
    if smi:
        for d, line in zip(sample.devices, smi, strict=True):
            name, mem_mib = (x.strip() for x in line.split(","))
            assert d.name == name
            if not d.unified:
                # nvidia-smi reports MiB of the same NVML total (it may leave out a
                # reserved slice, so allow 2 %).
                assert d.mem_total / 2**20 == pytest.approx(float(mem_mib), rel=0.02)


def test_recording_replays_to_the_same_static_readings() -> None:
    """A fresh recording, replayed through the seam, reads like the real thing."""
    _nvml_or_skip()
    rec = record()
    live = GpuSampler().sample()
    replay_nvml = RecordedNvml(rec)
    replay = GpuSampler(replay_nvml, host_memory=replay_nvml.host_memory).sample()
    assert [d.name for d in replay.devices] == [d.name for d in live.devices]
    assert [d.mem_total for d in replay.devices] == [d.mem_total for d in live.devices]
    assert [d.unified for d in replay.devices] == [d.unified for d in live.devices]
    assert replay.driver == live.driver


def test_real_process_allocation_is_attributed() -> None:
    """A process holding GPU memory shows up in the per-process list (needs torch)."""
    _nvml_or_skip()
    torch = pytest.importorskip("torch", reason="torch is needed to allocate GPU memory")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    sampler = GpuSampler()
    before = sampler.sample().devices[0].gpu_attributed_bytes or 0
    block = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda:0")
    torch.cuda.synchronize()
    try:
        after = sampler.sample().devices[0]
    finally:
        del block
        torch.cuda.empty_cache()
        sampler.close()
    assert after.processes, after.errors
    assert (after.gpu_attributed_bytes or 0) - before >= 2 * 2**30
