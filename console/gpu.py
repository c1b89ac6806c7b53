"""GPU and memory sampler: NVML (nvidia-ml-py) plus psutil, every call guarded.

No NVML (no GPU, no driver) is a normal state: an empty device list and the
reason. On unified-memory boxes (GB10 / DGX Spark) NVML answers "Not
Supported" for device memory; then the sample says so (``unified=True``) and
the memory story is told by the host pool (total, available, used, page
cache) and the per-process GPU allocations, labelled as such. We never show
``MemTotal - MemAvailable`` as "GPU memory used" (reference/vllm.md §6).

The NVML module is injectable (anything with pynvml's functions), so recorded
readings (console/gpu_recorded.py) drive the tests where no GPU exists. This
module imports nothing heavy: the GPU-only test runs with just nvidia-ml-py,
psutil and pytest.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

UNIFIED_NOTE = (
    "unified memory: NVML does not report device memory here; the host pool is shared "
    "by CPU and GPU, and per-process GPU allocations are listed separately"
)


@dataclass(frozen=True)
class HostMemory:
    """The host's RAM (``/proc/meminfo`` via psutil); on GB10 also the GPU's pool."""

    total: int
    available: int
    used: int  # total - available
    cached: int  # page cache + buffers: reclaimable, but competes with CUDA allocations
    free: int

    @classmethod
    def from_psutil(cls, vm: Any) -> HostMemory:
        total, avail = int(vm.total), int(vm.available)
        cached = int(getattr(vm, "cached", 0) or 0) + int(getattr(vm, "buffers", 0) or 0)
        return cls(
            total=total,
            available=avail,
            used=total - avail,
            cached=cached,
            free=int(getattr(vm, "free", 0) or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GpuProcess:
    """A compute process holding GPU memory (PIDs are the host's)."""

    pid: int
    used_bytes: int | None  # None when NVML can't tell (e.g. in some containers)
    name: str | None = None


@dataclass(frozen=True)
class GpuDevice:
    """One GPU's readings; a reading NVML refused is None and listed in ``errors``."""

    index: int
    name: str | None = None
    uuid: str | None = None
    unified: bool = False  # NVML memory info "Not Supported": see the host pool
    mem_total: int | None = None  # dedicated memory only
    mem_used: int | None = None
    mem_free: int | None = None
    util_pct: float | None = None
    mem_util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    pstate: int | None = None
    processes: tuple[GpuProcess, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()  # (reading, NVML error text)

    @property
    def gpu_attributed_bytes(self) -> int | None:
        """Sum of per-process GPU allocations (what vLLM & co hold)."""
        known = [p.used_bytes for p in self.processes if p.used_bytes is not None]
        return sum(known) if known else (0 if not self.processes else None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = dict(self.errors)
        d["gpu_attributed_bytes"] = self.gpu_attributed_bytes
        d["memory_kind"] = "unified" if self.unified else "dedicated"
        if self.unified:
            d["memory_note"] = UNIFIED_NOTE
        return d


@dataclass(frozen=True)
class GpuSample:
    """One reading of every GPU and of host memory."""

    timestamp: float
    available: bool  # NVML usable and at least one device
    reason: str | None = None  # why not available ("normal" on a CPU box)
    driver: str | None = None
    devices: tuple[GpuDevice, ...] = ()
    host: HostMemory | None = None

    @property
    def unified(self) -> bool:
        return any(d.unified for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "available": self.available,
            "reason": self.reason,
            "driver": self.driver,
            "devices": [d.to_dict() for d in self.devices],
            "host": self.host.to_dict() if self.host else None,
        }

    def host_memory_dict(self) -> dict[str, Any] | None:
        """``host_memory`` for the monitor JSON, labelled when it is the GPU's pool too."""
        if self.host is None:
            return None
        d = self.host.to_dict()
        d["role"] = "unified pool shared by CPU and GPU" if self.unified else "host RAM"
        return d


def _load_pynvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None  # another PID namespace (container) or gone


def _host_memory() -> HostMemory | None:
    try:
        return HostMemory.from_psutil(psutil.virtual_memory())
    except (OSError, AttributeError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuSampler:
    """Reads every GPU through NVML; safe to call from a thread worker at ~1 Hz.

    ``nvml`` is pynvml or anything with the same functions (recorded readings
    in tests). NVML is initialised on first use; if that fails the reason is
    kept and retried at most every ``retry_s`` seconds.
    """

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        host_memory: Callable[[], HostMemory | None] = _host_memory,
        process_name: Callable[[int], str | None] = _process_name,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nvml = nvml if nvml is not None else _load_pynvml()
        self._host_memory = host_memory
        self._process_name = process_name
        self._retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = False
        self._reason: str | None = None
        self._last_try: float | None = None
        self._driver: str | None = None

    # ----------------------------------------------------------------- NVML life

    def _init(self) -> bool:
        if self._ready:
            return True
        now = self._clock()
        if self._last_try is not None and now - self._last_try < self._retry_s:
            return False
        self._last_try = now
        nv = self._nvml
        if nv is None:
            self._reason = "nvidia-ml-py is not installed"
            return False
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            self._reason = f"NVML unavailable ({_text(exc)}): no NVIDIA driver or GPU"
            return False
        except OSError as exc:  # the library itself failed to load
            self._reason = f"NVML unavailable ({exc})"
            return False
        self._ready = True
        self._reason = None
        try:
            self._driver = _text(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError:
            self._driver = None
        return True

    def close(self) -> None:
        with self._lock:
            if self._ready and self._nvml is not None:
                with contextlib.suppress(self._nvml.NVMLError):
                    self._nvml.nvmlShutdown()
            self._ready = False

    # ----------------------------------------------------------------- sampling

    def sample(self) -> GpuSample:
        """One reading; never raises for NVML trouble (it becomes ``reason``/``errors``)."""
        with self._lock:
            now = self._clock()
            host = self._host_memory()
            if not self._init():
                return GpuSample(timestamp=now, available=False, reason=self._reason, host=host)
            nv = self._nvml
            try:
                count = int(nv.nvmlDeviceGetCount())
            except nv.NVMLError as exc:
                return GpuSample(
                    timestamp=now,
                    available=False,
                    reason=f"NVML could not count devices ({_text(exc)})",
                    driver=self._driver,
                    host=host,
                )
            devices = tuple(self._device(i) for i in range(count))
            return GpuSample(
                timestamp=now,
                available=bool(devices),
                reason=None if devices else "NVML sees no GPU",
                driver=self._driver,
                devices=devices,
                host=host,
            )

    __call__ = sample

    def _device(self, index: int) -> GpuDevice:
        nv = self._nvml
        errors: list[tuple[str, str]] = []

        def guarded(reading: str, fn: Callable[..., Any], *args: Any) -> Any:
            try:
                return fn(*args)
            except nv.NVMLError as exc:
                errors.append((reading, _text(exc)))
                return None

        try:
            h = nv.nvmlDeviceGetHandleByIndex(index)
        except nv.NVMLError as exc:
            return GpuDevice(index=index, errors=(("handle", _text(exc)),))

        name = guarded("name", nv.nvmlDeviceGetName, h)
        uuid = guarded("uuid", nv.nvmlDeviceGetUUID, h)
        unified = False
        mem_total = mem_used = mem_free = None
        try:
            mi = nv.nvmlDeviceGetMemoryInfo(h)
            mem_total, mem_used, mem_free = int(mi.total), int(mi.used), int(mi.free)
            if mem_total == 0:  # some drivers answer zeros instead of Not Supported
                unified, mem_total, mem_used, mem_free = True, None, None, None
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) == nv.NVML_ERROR_NOT_SUPPORTED:
                unified = True
            else:
                errors.append(("memory", _text(exc)))
        util = guarded("utilization", nv.nvmlDeviceGetUtilizationRates, h)
        temp = guarded("temperature", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
        power = guarded("power", nv.nvmlDeviceGetPowerUsage, h)
        limit = guarded("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit, h)
        sm = guarded("sm_clock", nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
        sm_max = guarded("max_sm_clock", nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM)
        pstate = guarded("pstate", nv.nvmlDeviceGetPerformanceState, h)
        procs = guarded("processes", nv.nvmlDeviceGetComputeRunningProcesses, h) or []
        return GpuDevice(
            index=index,
            name=_text(name) if name is not None else None,
            uuid=_text(uuid) if uuid is not None else None,
            unified=unified,
            mem_total=mem_total,
            mem_used=mem_used,
            mem_free=mem_free,
            util_pct=float(util.gpu) if util is not None else None,
            mem_util_pct=float(util.memory) if util is not None else None,
            temp_c=float(temp) if temp is not None else None,
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            sm_clock_mhz=int(sm) if sm is not None else None,
            max_sm_clock_mhz=int(sm_max) if sm_max is not None else None,
            pstate=int(pstate) if pstate is not None else None,
            processes=tuple(self._proc(p) for p in procs),
            errors=tuple(errors),
        )

    def _proc(self, p: Any) -> GpuProcess:
        pid = int(p.pid)
        used = getattr(p, "usedGpuMemory", None)
        # NVML_VALUE_NOT_AVAILABLE comes back as None (pynvml) or a huge sentinel.
        if used is not None and (used < 0 or used >= 2**63):
            used = None
        return GpuProcess(
            pid=pid,
            used_bytes=int(used) if used is not None else None,
            name=self._process_name(pid),
        )


@dataclass
class _Shared:
    sampler: GpuSampler | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_shared = _Shared()


def default_sampler() -> GpuSampler:
    """One process-wide sampler (NVML init is not free)."""
    with _shared.lock:
        if _shared.sampler is None:
            _shared.sampler = GpuSampler()
        return _shared.sampler
