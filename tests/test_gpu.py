"""GPU sampler driven by recorded NVML readings: the H200 captures (dedicated
memory) and a hand-made GB10 recording (unified memory). The real NVML layer
is checked by tests/test_e2e_gpu.py on a GPU box."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from console.gpu import GpuSampler, HostMemory
from console.gpu_recorded import RecordedNvml

DATA = Path(__file__).parent / "data"
H200_IDLE = DATA / "nvml-h200" / "nvml_idle.json"
H200_BUSY = DATA / "nvml-h200" / "nvml_busy.json"
GB10 = DATA / "nvml-gb10" / "nvml_gb10_handmade.json"


def sampler_for(path: Path) -> tuple[GpuSampler, dict]:
    rec = RecordedNvml.load(path)
    s = GpuSampler(rec, host_memory=rec.host_memory, process_name=lambda pid: f"proc{pid}")
    return s, json.loads(path.read_text())


def test_h200_busy_dedicated_memory_and_readings() -> None:
    s, raw = sampler_for(H200_BUSY)
    sample = s.sample()
    assert sample.available and sample.reason is None
    assert sample.driver == "580.159.04"
    (d,) = sample.devices
    rec = raw["devices"][0]
    assert d.name == "NVIDIA H200" and not d.unified
    assert d.mem_total == rec["memory_info"]["ok"]["total"]
    assert d.mem_used == rec["memory_info"]["ok"]["used"]
    assert d.util_pct == 100 and d.temp_c == 59
    assert d.power_w == pytest.approx(693.312) and d.power_limit_w == pytest.approx(700.0)
    assert d.sm_clock_mhz == 1500 and d.max_sm_clock_mhz == 1980
    (p,) = d.processes
    assert (p.pid, p.used_bytes, p.name) == (417, 20916994048, "proc417")
    assert d.gpu_attributed_bytes == 20916994048
    # host RAM is reported, and is not confused with GPU memory
    assert sample.host is not None and sample.host.total == raw["host_memory"]["total"]
    hm = sample.host_memory_dict()
    assert hm is not None and hm["role"] == "host RAM"
    assert d.to_dict()["memory_kind"] == "dedicated"


def test_h200_idle_has_no_processes() -> None:
    s, _ = sampler_for(H200_IDLE)
    (d,) = s.sample().devices
    assert d.processes == () and d.gpu_attributed_bytes == 0
    assert d.util_pct == 0 and d.temp_c == 37


def test_gb10_unified_memory_reports_host_pool_and_process_allocations() -> None:
    s, raw = sampler_for(GB10)
    sample = s.sample()
    (d,) = sample.devices
    assert d.unified and sample.unified
    # no GPU memory total/used invented from the host's numbers
    assert d.mem_total is None and d.mem_used is None and d.mem_free is None
    hm = raw["host_memory"]
    host = sample.host
    assert host is not None
    assert host.total == hm["total"] and host.available == hm["available"]
    assert host.used == hm["total"] - hm["available"]
    assert host.cached == hm["cached"] + hm["buffers"]
    assert d.gpu_attributed_bytes == 91226374144 + 1073741824
    assert d.gpu_attributed_bytes != host.used
    # the other readings work; the missing ones are None with the reason
    assert d.util_pct == 96 and d.temp_c == 61 and d.power_w == pytest.approx(42.15)
    assert d.power_limit_w is None
    errors = dict(d.errors)
    assert errors["power_limit"] == "Not Supported"
    assert "memory" not in errors  # Not Supported memory is the unified case, not an error
    dd = d.to_dict()
    assert dd["memory_kind"] == "unified" and "unified memory" in dd["memory_note"]
    assert sample.host_memory_dict()["role"] == "unified pool shared by CPU and GPU"  # type: ignore[index]


def test_no_nvml_is_a_normal_state() -> None:
    rec = RecordedNvml({"init": {"error": "NVMLError_LibraryNotFound"}, "count": 0})
    now = [100.0]
    s = GpuSampler(rec, host_memory=lambda: None, clock=lambda: now[0], retry_s=60)
    sample = s.sample()
    assert not sample.available and sample.devices == ()
    assert sample.reason is not None and "NVML unavailable" in sample.reason
    # not retried every call (NVML init is not free), but after retry_s
    calls = []
    rec.nvmlInit = lambda: calls.append(1) or _raise()  # type: ignore[method-assign]
    now[0] = 130.0
    s.sample()
    assert calls == []
    now[0] = 161.0
    s.sample()
    assert calls == [1]


def _raise() -> None:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)


def test_failing_readings_are_guarded_one_by_one() -> None:
    raw = json.loads(H200_BUSY.read_text())
    dev = raw["devices"][0]
    dev["temperature_gpu"] = {"error": "NVMLError_GpuIsLost"}
    dev["compute_processes"] = {"error": "NVMLError_NoPermission"}
    dev["memory_info"] = {"error": "NVMLError_Unknown"}
    s = GpuSampler(RecordedNvml(raw), host_memory=lambda: None)
    (d,) = s.sample().devices
    assert d.temp_c is None and d.processes == ()
    assert not d.unified  # an unknown error is not the unified-memory case
    errors = dict(d.errors)
    assert set(errors) >= {"temperature", "processes", "memory"}
    assert d.util_pct == 100  # the rest still read


def test_process_with_unknown_memory() -> None:
    raw = json.loads(H200_BUSY.read_text())
    raw["devices"][0]["compute_processes"] = {"ok": [{"pid": 5, "usedGpuMemory": None}]}
    s = GpuSampler(RecordedNvml(raw), host_memory=lambda: None, process_name=lambda p: None)
    (d,) = s.sample().devices
    assert d.processes[0].used_bytes is None and d.gpu_attributed_bytes is None


def test_host_memory_from_psutil_shape() -> None:
    vm = SimpleNamespace(total=100, available=60, free=10, cached=25, buffers=5)
    h = HostMemory.from_psutil(vm)
    assert (h.used, h.cached) == (40, 30)


def test_real_host_memory_without_gpu() -> None:
    """On this machine NVML may be absent; the sampler still reports host memory."""
    sample = GpuSampler().sample()
    assert sample.host is not None and sample.host.total > 0
    if not sample.available:
        assert sample.reason
        assert sample.devices == ()


def test_recording_made_by_the_console_recorder_replays() -> None:
    """Written by ``python -m console.gpu_recorded`` on a real H200 (this session)."""
    s, raw = sampler_for(DATA / "nvml-h200" / "nvml_recorded_by_console.json")
    sample = s.sample()
    (d,) = sample.devices
    assert d.name == "NVIDIA H200" and not d.unified
    assert d.mem_total == raw["devices"][0]["memory_info"]["ok"]["total"]
    assert sample.driver == raw["driver"]["ok"]
