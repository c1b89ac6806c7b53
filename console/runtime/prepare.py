"""First-run set-up of a local server: the runtime and the model at the same time.

The runtime install (pip, mostly downloads) and the model's fetch and conversion
(mostly CPU) used to run one after the other. The model only needs torch and
transformers from the runtime, which a locked install puts in first
(``provision.Lock.convert``), so here each is a step in its own thread: the model
step waits for that point, then fetches and converts while the rest of vLLM
installs. Each step reports its own progress (a bar per step in a terminal, or
lines tagged with the step's name); if one fails the other is ended and the
failure is named; Ctrl-C ends both. Processes are ended through
``provision.Stop`` (each runs in a session of its own), so none outlives us.

When everything is already there (the second run), nothing runs: no threads,
no pip, no output beyond one line.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from console import paths
from console.errors import ConsoleError
from console.runtime import models, provision
from console.runtime.provision import Progress


@dataclass
class Step:
    """One independent piece of set-up and what it has shown so far."""

    name: str
    """What the user reads: ``runtime cpu``, ``model smollm2-135m``."""
    run: Callable[[Progress], object]
    meter: Meter
    stop: provision.Stop = field(init=False)
    started: float = 0.0
    started_wall: float = 0.0
    ended: float = 0.0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.stop = provision.Stop(self.name)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended or time.monotonic()) - self.started) if self.started else 0.0


class View:
    """Where the steps' progress goes. This one: lines tagged with the step's
    name (pipes, log files, the TUI's server log); ``console.commands`` has the
    terminal one with a bar per step."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def start(self, steps: Sequence[Step]) -> None:
        pass

    def line(self, step: Step, text: str) -> None:
        if self.progress is not None:
            self.progress(text if text.startswith(step.name) else f"{step.name} | {text}")

    def finish(self, step: Step) -> None:
        if self.progress is None:
            return
        if step.error is None:
            self.progress(f"{step.name}: done in {step.seconds:.0f} s")
        elif isinstance(step.error, provision.Stopped):
            self.progress(f"{step.name}: stopped after {step.seconds:.0f} s")
        else:
            self.progress(f"{step.name}: failed after {step.seconds:.0f} s")

    def close(self) -> None:
        pass


class Meter:
    """A step's progress as a fraction, read from the lines it prints (pip's
    ``Collecting``/``Processing`` per package, the converter's stage lines)."""

    def __init__(self, stages: Sequence[tuple[str, float]], packages: int = 0) -> None:
        self.stages = [(re.compile(pattern), at) for pattern, at in stages]
        self.packages = packages
        self.seen = 0
        self.fraction = 0.0
        self.label = "waiting"

    def feed(self, line: str) -> None:
        for pattern, at in self.stages:
            if pattern.search(line):
                self.fraction = max(self.fraction, at)
        if self.packages and line.startswith(
            ("Collecting ", "Processing ", "Requirement already satisfied")
        ):
            self.seen += 1
            self.fraction = max(self.fraction, 0.05 + 0.8 * min(1.0, self.seen / self.packages))
        self.label = line


def runtime_meter(name: str) -> Meter:
    lock = provision.read_lock(provision.spec(name))
    packages = len(lock.convert) + len(lock.serve) if lock else 160
    return Meter(
        [
            (r"creating a virtual environment", 0.02),
            (r"checking `import", 0.9),
            (r" ready at ", 1.0),
        ],
        packages=packages,
    )


def model_meter() -> Meter:
    return Meter(
        [
            (r"pip install", 0.1),
            (r"converting", 0.2),
            (r"^loading |assembling", 0.3),
            (r"^saving ", 0.6),
            (r"ready at ", 1.0),
        ]
    )


def needed(runtime: str | None, model_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The runtimes and models that are not there yet (quick checks, no imports)."""
    runtimes = [runtime] if runtime else []
    runtimes += [models.spec(m).runtime for m in model_names]
    missing_rt = [r for r in dict.fromkeys(runtimes) if provision.installed(r, quick=True) is None]
    missing_models = [m for m in dict.fromkeys(model_names) if models.installed(m) is None]
    return missing_rt, missing_models


_VIEW: list[Callable[[Progress | None], View]] = []


@contextlib.contextmanager
def view_factory(make: Callable[[Progress | None], View]) -> Iterator[None]:
    """Inside the block, set-up shows its progress through ``make(progress)`` (the
    CLI's terminal bars) instead of tagged lines."""
    _VIEW.append(make)
    try:
        yield
    finally:
        _VIEW.remove(make)


def prepare(
    runtime: str | None,
    model_names: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    view: View | None = None,
) -> list[Step]:
    """Install what is missing of ``runtime`` and ``model_names``, in parallel
    steps; returns the steps that ran (none when all was there)."""
    missing_rt, missing_models = needed(runtime, model_names)
    if not missing_rt and not missing_models:
        return []
    bases = {r: Base() for r in missing_rt}
    steps = [Step(f"runtime {r}", _runtime_job(r, bases[r]), runtime_meter(r)) for r in missing_rt]
    for rt in dict.fromkeys(models.spec(m).runtime for m in missing_models):
        if rt not in bases:  # installed: the model step starts at once
            bases[rt] = Base()
            bases[rt].set(provision.runtime_python(rt))
        names = [m for m in missing_models if models.spec(m).runtime == rt]
        steps.append(
            Step("model " + ", ".join(names), _models_job(names, bases[rt]), model_meter())
        )
    if view is None:
        view = _VIEW[-1](progress) if _VIEW else View(progress)
    try:
        run_steps(steps, view)
    finally:
        _record(steps)
    return steps


TIMES_FILE = "setup-times.json"
"""In the logs folder: when each step of the last set-up started and ended (wall
clock), so a slow first run can be read back; bench/first_run.py reads it."""


def _record(steps: Sequence[Step]) -> None:
    rows = [
        {
            "step": s.name,
            "started": round(s.started_wall, 3),
            "seconds": round(s.seconds, 1),
            "result": "ok"
            if s.error is None
            else ("stopped" if isinstance(s.error, provision.Stopped) else "failed"),
        }
        for s in steps
    ]
    try:
        folder = paths.ensure(paths.logs_dir())
        (folder / TIMES_FILE).write_text(json.dumps({"steps": rows}, indent=2) + "\n")
    except OSError:
        pass  # a record for later reading; set-up itself went as it went


class Base:
    """The runtime's Python, once torch and transformers are in it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.python: Path | None = None

    def set(self, python: Path) -> None:
        self.python = python
        self._event.set()

    def wait(self, stop: provision.Stop) -> Path:
        while not self._event.wait(0.2):
            stop.check()
        assert self.python is not None
        return self.python


def _runtime_job(name: str, base: Base) -> Callable[[Progress], object]:
    def job(say: Progress) -> object:
        return provision.install(name, progress=say, on_base=base.set)

    return job


def _models_job(names: list[str], base: Base) -> Callable[[Progress], object]:
    def job(say: Progress) -> object:
        stop = provision.current_stop()
        assert stop is not None, "a step runs inside provision.stoppable"
        if base.python is None:
            say(f"waiting for torch and transformers in the runtime ({', '.join(names)} next)")
        python = base.wait(stop)
        return [models.fetch(name, progress=say, python=python) for name in names]

    return job


def run_steps(steps: Sequence[Step], view: View, *, grace: float = 20.0) -> None:
    """Run ``steps`` at the same time; the first failure ends the others and is
    raised naming its step; KeyboardInterrupt ends them all and is re-raised."""
    finished: queue.Queue[Step] = queue.Queue()
    lock = threading.Lock()

    def worker(step: Step) -> None:
        def say(line: str) -> None:
            with lock:
                step.meter.feed(line)
                view.line(step, line)

        step.started, step.started_wall = time.monotonic(), time.time()
        try:
            with provision.stoppable(step.stop):
                step.run(say)
        except BaseException as exc:  # handed to the main thread below
            step.error = exc
        finally:
            step.ended = time.monotonic()
            finished.put(step)

    threads = [
        threading.Thread(target=worker, args=(s,), name=f"setup: {s.name}", daemon=True)
        for s in steps
    ]
    view.start(steps)
    try:
        for thread in threads:
            thread.start()
        pending = len(threads)
        failed: Step | None = None
        while pending:
            try:  # short waits: Ctrl-C lands between them
                step = finished.get(timeout=0.5)
            except queue.Empty:
                continue
            pending -= 1
            with lock:
                view.finish(step)
            if step.error is not None and failed is None:
                failed = step
                for other in steps:
                    other.stop.stop()
    except BaseException:
        for step in steps:
            step.stop.stop()
        _join(threads, grace)
        while not finished.empty():  # show them as stopped
            with lock:
                view.finish(finished.get())
        raise
    finally:
        view.close()
    if failed is not None:
        raise _named(failed, [s for s in steps if s is not failed])


def _join(threads: Sequence[threading.Thread], grace: float) -> None:
    deadline = time.monotonic() + grace
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _named(failed: Step, others: Sequence[Step]) -> ConsoleError:
    exc = failed.error
    message = exc.message if isinstance(exc, ConsoleError) else f"{type(exc).__name__}: {exc}"
    ended = [s.name for s in others if isinstance(s.error, provision.Stopped)]
    note = f" ({', '.join(ended)}: stopped)" if ended else ""
    hint = exc.hint if isinstance(exc, ConsoleError) else None
    return ConsoleError(f"{failed.name} failed{note}: {message}", hint=hint)
