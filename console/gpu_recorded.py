"""Recorded NVML readings: replay them as an NVML module, or record new ones.

The seam that lets GPU code run where no GPU exists: ``RecordedNvml`` answers
pynvml's calls from a JSON recording (the H200 captures in tests/data, or the
GB10 unified-memory recording built from reference/vllm.md §6), raising the
same ``pynvml.NVMLError`` subclasses the real library raises. ``record()``
writes such a recording on a real GPU box.

Recording schema: ``{"driver": {"ok": ...}, "count": N, "devices": [{"name":
{"ok": ...}, "memory_info": {"ok": {...}} | {"error": "NVMLError_NotSupported"},
...}], "host_memory": {...psutil.virtual_memory()...}}``; an ``"init"`` key
holding an error records a box where ``nvmlInit`` fails.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from console.gpu import HostMemory


def _error(name: str) -> pynvml.NVMLError:
    cls = getattr(pynvml, name, None)
    if isinstance(cls, type) and issubclass(cls, pynvml.NVMLError):
        return cls()
    return pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)


def _answer(entry: dict[str, Any] | None) -> Any:
    if entry is None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    if "error" in entry:
        raise _error(entry["error"])
    return entry["ok"]


def _proc(raw: Any) -> SimpleNamespace:
    d = ast.literal_eval(raw) if isinstance(raw, str) else dict(raw)
    return SimpleNamespace(pid=d["pid"], usedGpuMemory=d.get("usedGpuMemory"))


class RecordedNvml:
    """A pynvml look-alike answering from one recording (handles are device dicts)."""

    NVMLError = pynvml.NVMLError
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM

    def __init__(self, recording: dict[str, Any]) -> None:
        self.recording = recording

    @classmethod
    def load(cls, path: str | Path) -> RecordedNvml:
        return cls(json.loads(Path(path).read_text()))

    def host_memory(self) -> HostMemory | None:
        hm = self.recording.get("host_memory")
        return HostMemory.from_psutil(SimpleNamespace(**hm)) if hm else None

    # pynvml's functions
    def nvmlInit(self) -> None:
        if "init" in self.recording:
            _answer(self.recording["init"])

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return _answer(self.recording.get("driver"))

    def nvmlDeviceGetCount(self) -> int:
        return int(self.recording.get("count", len(self.recording.get("devices", []))))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        devices = self.recording.get("devices", [])
        if index >= len(devices):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return devices[index]

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> str:
        return _answer(h.get("name"))

    def nvmlDeviceGetUUID(self, h: dict[str, Any]) -> str:
        return _answer(h.get("uuid"))

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(**_answer(h.get("memory_info")))

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(**_answer(h.get("utilization")))

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        return _answer(h.get("temperature_gpu"))

    def nvmlDeviceGetPowerUsage(self, h: dict[str, Any]) -> int:
        return _answer(h.get("power_usage_mw"))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: dict[str, Any]) -> int:
        return _answer(h.get("power_limit_mw"))

    def nvmlDeviceGetTotalEnergyConsumption(self, h: dict[str, Any]) -> int:
        return _answer(h.get("total_energy_mj"))

    def nvmlDeviceGetClockInfo(self, h: dict[str, Any], clock: int) -> int:
        key = "clock_sm_mhz" if clock == pynvml.NVML_CLOCK_SM else "clock_mem_mhz"
        return _answer(h.get(key))

    def nvmlDeviceGetMaxClockInfo(self, h: dict[str, Any], clock: int) -> int:
        return _answer(h.get("max_clock_sm_mhz"))

    def nvmlDeviceGetPerformanceState(self, h: dict[str, Any]) -> int:
        return _answer(h.get("pstate"))

    def nvmlDeviceGetFanSpeed(self, h: dict[str, Any]) -> int:
        return _answer(h.get("fan_speed"))

    def nvmlDeviceGetComputeRunningProcesses(self, h: dict[str, Any]) -> list[SimpleNamespace]:
        return [_proc(p) for p in _answer(h.get("compute_processes"))]


# --------------------------------------------------------------------------- recording


def _rec(fn: Any, *args: Any, convert: Any = None) -> dict[str, Any]:
    try:
        value = fn(*args)
    except pynvml.NVMLError as exc:
        return {"error": type(exc).__name__, "text": str(exc)}
    if isinstance(value, bytes):
        value = value.decode()
    return {"ok": convert(value) if convert else value}


def record(nvml: Any = pynvml) -> dict[str, Any]:
    """Ask NVML everything the sampler reads; failures are recorded, not raised."""
    import psutil

    out: dict[str, Any] = {"time": time.time()}
    init = _rec(nvml.nvmlInit)
    if "error" in init:
        out["init"] = init
        out["count"] = 0
        out["devices"] = []
    else:
        out["driver"] = _rec(nvml.nvmlSystemGetDriverVersion)
        count = _rec(nvml.nvmlDeviceGetCount)
        out["count"] = count.get("ok", 0)
        out["devices"] = []
        for i in range(out["count"]):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            out["devices"].append(
                {
                    "index": i,
                    "name": _rec(nvml.nvmlDeviceGetName, h),
                    "uuid": _rec(nvml.nvmlDeviceGetUUID, h),
                    "memory_info": _rec(
                        nvml.nvmlDeviceGetMemoryInfo,
                        h,
                        convert=lambda m: {"total": m.total, "free": m.free, "used": m.used},
                    ),
                    "utilization": _rec(
                        nvml.nvmlDeviceGetUtilizationRates,
                        h,
                        convert=lambda u: {"gpu": u.gpu, "memory": u.memory},
                    ),
                    "temperature_gpu": _rec(
                        nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU
                    ),
                    "power_usage_mw": _rec(nvml.nvmlDeviceGetPowerUsage, h),
                    "power_limit_mw": _rec(nvml.nvmlDeviceGetEnforcedPowerLimit, h),
                    "clock_sm_mhz": _rec(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
                    "clock_mem_mhz": _rec(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM),
                    "max_clock_sm_mhz": _rec(nvml.nvmlDeviceGetMaxClockInfo, h, nvml.NVML_CLOCK_SM),
                    "pstate": _rec(nvml.nvmlDeviceGetPerformanceState, h),
                    "compute_processes": _rec(
                        nvml.nvmlDeviceGetComputeRunningProcesses,
                        h,
                        convert=lambda ps: [
                            {"pid": p.pid, "usedGpuMemory": p.usedGpuMemory} for p in ps
                        ],
                    ),
                }
            )
        nvml.nvmlShutdown()
    vm = psutil.virtual_memory()
    out["host_memory"] = {k: getattr(vm, k) for k in vm._fields}
    return out


if __name__ == "__main__":  # python -m console.gpu_recorded > recording.json
    print(json.dumps(record(), indent=1))
