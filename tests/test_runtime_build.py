"""Image builds against a real dockerd (started by the docker_engine fixture)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from console.buildlog import BuildDone, BuildError, BuildOutput, BuildStep
from console.cli import main
from console.errors import ConsoleError
from console.profiles import load_profile
from console.runtime.build import ImageBuild, build_image, check_patch_sources, write_context
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]


def write_profile(folder: Path, name: str, image: dict, **serve: object) -> Path:
    data = {
        "name": name,
        "runtime": "docker",
        "image": image,
        "serve": {"model": "/models/none", **serve},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def containers(client) -> set[str]:
    return {c.id for c in client.containers.list(all=True)}


def test_build_succeeds_with_labels_and_log(tmp_path, docker_engine, busybox_image) -> None:
    path = write_profile(
        tmp_path,
        "bb-ok",
        {
            "base": busybox_image,
            "tag": "vllm-console-test/bb-ok:1",
            "vllm_ref": "v0.0-test",
            "steps": [
                "RUN echo hello-out; echo hello-err >&2",
                "RUN echo second > /tmp/x",
                "RUN echo transformers 5.8.0.dev0",
            ],
            "entrypoint": ["/bin/sh", "-c"],
            "workdir": "/tmp",
        },
    )
    profile = load_profile(str(path))
    build = ImageBuild(profile, no_cache=True)
    events = list(build)
    steps = [e for e in events if isinstance(e, BuildStep)]
    assert steps[0].instruction == f"FROM {busybox_image}"
    assert [s.index for s in steps] == list(range(1, len(steps) + 1))
    assert all(s.total == len(steps) for s in steps)
    outputs = {(e.text, e.stream) for e in events if isinstance(e, BuildOutput)}
    assert ("hello-out", "stdout") in outputs
    assert ("hello-err", "stderr") in outputs
    done = events[-1]
    assert isinstance(done, BuildDone), events[-3:]
    assert build.result == done
    assert done.tags == ("vllm-console-test/bb-ok:1",)

    client = docker_engine.client()
    image = client.images.get("vllm-console-test/bb-ok:1")
    assert image.id == done.image_id
    labels = image.labels
    assert labels["vllm-console.profile"] == "bb-ok"
    assert labels["vllm-console.base"] == busybox_image
    assert labels["vllm-console.vllm-ref"] == "v0.0-test"
    assert re.match(r"\d{4}-\d\d-\d\dT", labels["vllm-console.built-at"])
    assert labels["vllm-console.build-log"] == str(build.log_path)
    # the version the build printed is recorded too
    assert labels["vllm-console.transformers"] == "5.8.0.dev0"
    assert image.attrs["Config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert image.attrs["Config"]["WorkingDir"] == "/tmp"

    log = build.log_path.read_text()
    assert build.log_path.parent == tmp_path / "state" / "builds"
    for line in ("hello-out", "hello-err", "RUN echo second > /tmp/x", "Successfully built"):
        assert line in log
    assert build.dockerfile_path.read_text().startswith("# vllm-console profile: bb-ok")
    # the build context is cleaned up
    assert not list(build.log_path.parent.glob("ctx-*"))


def test_build_failure_names_the_step_and_keeps_every_line(
    tmp_path, docker_engine, busybox_image
) -> None:
    client = docker_engine.client()
    before = containers(client)
    failing = "RUN echo failing-output; echo failing-err >&2; exit 3"
    path = write_profile(
        tmp_path,
        "bb-fail",
        {
            "base": busybox_image,
            "tag": "vllm-console-test/bb-fail:1",
            "steps": ["RUN for i in 1 2 3; do echo line-$i; done", failing, "RUN echo never"],
        },
    )
    build = ImageBuild(load_profile(str(path)), no_cache=True)
    events = list(build)
    error = events[-1]
    assert isinstance(error, BuildError)
    assert error.step is not None and error.step.instruction == failing
    assert error.step.index == 3 and error.step.total > 3
    assert "non-zero code: 3" in error.message
    assert not any(isinstance(e, BuildDone) for e in events)
    log = build.log_path.read_text().splitlines()
    for line in ("line-1", "line-2", "line-3", "failing-output", "failing-err"):
        assert line in log
    assert any(failing in line for line in log)
    assert "never" not in " ".join(log[-3:])
    assert log[-1].startswith("ERROR: ") and "non-zero code: 3" in log[-1]
    # forcerm: the failed step's container is gone
    assert containers(client) == before


def test_build_can_be_cancelled_mid_step(tmp_path, docker_engine, busybox_image) -> None:
    client = docker_engine.client()
    before = containers(client)
    path = write_profile(
        tmp_path,
        "bb-cancel",
        {
            "base": busybox_image,
            "tag": "vllm-console-test/bb-cancel:1",
            "steps": ["RUN echo started; sleep 120; echo finished"],
        },
    )
    build = ImageBuild(load_profile(str(path)), no_cache=True)
    seen: list = []
    started = threading.Event()

    def consume() -> None:
        for event in build:
            seen.append(event)
            if isinstance(event, BuildOutput) and event.text == "started":
                started.set()

    thread = threading.Thread(target=consume)
    t0 = time.monotonic()
    thread.start()
    assert started.wait(60), seen
    build.cancel()
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 60
    assert isinstance(build.result, BuildError)
    assert build.result.message == "build cancelled"
    assert "finished" not in [e.text for e in seen if isinstance(e, BuildOutput)]
    wait_for(lambda: containers(client) == before, 20, "the cancelled step's container to go")


def test_missing_base_image_says_what_to_do(tmp_path, docker_engine) -> None:
    path = write_profile(
        tmp_path,
        "bb-nobase",
        {"base": "local/does-not-exist:1", "tag": "vct/nobase:1", "steps": ["RUN true"]},
    )
    with pytest.raises(ConsoleError) as info:
        build_image(load_profile(str(path)))
    text = str(info.value)
    assert "local/does-not-exist:1" in text
    assert "pull or load it first" in text
    assert "step 1/" in text


def test_patch_that_cannot_be_fetched_fails_before_building(tmp_path) -> None:
    path = write_profile(
        tmp_path,
        "bb-patch",
        {
            "base": "local/busybox:latest",
            "tag": "vct/patch:1",
            "patches": [{"pr": 41745, "commit": "5119058403", "url": "http://127.0.0.1:9/x.diff"}],
        },
    )
    with pytest.raises(ConsoleError) as info:
        check_patch_sources(load_profile(str(path)))
    text = str(info.value)
    assert "image.patches[0]" in text and "PR #41745 at 5119058403" in text
    assert "http://127.0.0.1:9/x.diff" in text


def test_context_holds_every_file_the_dockerfile_copies(tmp_path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "fix.patch").write_text("diff --git a/vllm/x.py b/vllm/x.py\n")
    (tmp_path / "wheels").mkdir()
    wheel = tmp_path / "wheels" / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    path = write_profile(
        tmp_path,
        "ctx",
        {
            "base": "vllm/vllm-openai:v0.20.0",
            "tag": "vct/ctx:1",
            "ca_certificates": ["certs/proxy.crt"],
            "pip": [{"packages": ["./wheels/pkg-1.0-py3-none-any.whl", "transformers==5.8.0"]}],
            "patches": [{"file": "fix.patch"}],
        },
    )
    ctx = write_context(load_profile(str(path)), tmp_path / "ctx")
    dockerfile = (ctx / "Dockerfile").read_text()
    sources = re.findall(r"^COPY (\S+) ", dockerfile, re.M)
    assert len(sources) == 3
    for source in sources:
        assert (ctx / source).is_file(), source
    assert (ctx / sources[0]).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_context_names_a_missing_local_file(tmp_path) -> None:
    path = write_profile(
        tmp_path,
        "ctx-missing",
        {"base": "x", "tag": "vct/x:1", "pip": [{"packages": ["./gone.whl"]}]},
    )
    with pytest.raises(ConsoleError) as info:
        write_context(load_profile(str(path)), tmp_path / "ctx")
    assert "gone.whl" in str(info.value) and "ctx-missing" in str(info.value)


def test_cli_build_streams_and_reports(tmp_path, docker_engine, busybox_image, capsys) -> None:
    ok = write_profile(
        tmp_path,
        "bb-cli",
        {"base": busybox_image, "tag": "vct/cli:1", "steps": ["RUN echo cli-line"]},
    )
    assert main(["build", str(ok), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "Step 2/" in out and "cli-line" in out and "built sha256:" in out
    assert "log: " in out

    bad = write_profile(
        tmp_path,
        "bb-cli-bad",
        {"base": busybox_image, "tag": "vct/cli-bad:1", "steps": ["RUN exit 7"]},
    )
    assert main(["build", str(bad), "--network", "none"]) == 1
    err = capsys.readouterr().err
    assert "error: build of bb-cli-bad failed at step 2/" in err
    assert "(RUN exit 7)" in err and "non-zero code: 7" in err and "full log: " in err


def test_cli_build_rejects_a_local_profile(tmp_path, capsys) -> None:
    path = tmp_path / "loc.yaml"
    path.write_text(yaml.safe_dump({"name": "loc", "runtime": "local", "serve": {"model": "m"}}))
    assert main(["build", str(path)]) == 1
    assert "no image to build" in capsys.readouterr().err


def test_cli_ctrl_c_cancels_the_build(tmp_path, docker_engine, busybox_image) -> None:
    client = docker_engine.client()
    before = containers(client)
    path = write_profile(
        tmp_path,
        "bb-sigint",
        {"base": busybox_image, "tag": "vct/sigint:1", "steps": ["RUN echo started; sleep 120"]},
    )
    env = {**os.environ, "VLLM_CONSOLE_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "build", str(path), "--no-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "started":
                break
        else:
            pytest.fail(f"the build ended before its step started: {proc.stderr.read()}")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "build cancelled; log: " in err
    wait_for(lambda: containers(client) == before, 20, "the cancelled step's container to go")


def test_rebuild_keeps_the_image_so_images_built_from_it_stay_cached(
    tmp_path, docker_engine, busybox_image
) -> None:
    base = write_profile(
        tmp_path,
        "bb-layer-a",
        {"base": busybox_image, "tag": "vct/layer-a:1", "steps": ["RUN echo a > /a"]},
    )
    child = write_profile(
        tmp_path,
        "bb-layer-b",
        {"base": "vct/layer-a:1", "tag": "vct/layer-b:1", "steps": ["RUN echo b-ran"]},
    )
    first_a = build_image(load_profile(str(base)), no_cache=True)
    first_b = build_image(load_profile(str(child)))
    again_a = build_image(load_profile(str(base)))
    assert again_a.image_id == first_a.image_id  # same content: same image, same build time
    job = ImageBuild(load_profile(str(child)))
    events = list(job)
    assert isinstance(events[-1], BuildDone)
    assert events[-1].image_id == first_b.image_id
    assert "b-ran" not in [e.text for e in events if isinstance(e, BuildOutput)]  # cached
    assert "# unchanged: vct/layer-b:1 already holds this build" in job.log_path.read_text()


def test_cli_build_with_the_engine_down_names_it(tmp_path, monkeypatch, capsys) -> None:
    path = write_profile(
        tmp_path, "bb-down", {"base": "x", "tag": "vct/down:1", "steps": ["RUN true"]}
    )
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/vc-no-such-engine.sock")
    assert main(["build", str(path)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Docker engine at unix:///tmp/vc-no-such-engine.sock" in err
    assert "(DOCKER_HOST)" in err
