"""The server container lifecycle against a real dockerd.

The "server" is a busybox image that behaves like vLLM where the console
looks: it prints vLLM-style start-up lines (or a start-up failure), then
serves ``/health`` with busybox httpd and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shlex
import threading
import time
from pathlib import Path

import pytest
import yaml

from console.cli import main as cli_main
from console.errors import ConsoleError
from console.profiles import container_name, load_profile, render_docker_run
from console.runtime import ServerState, runtime_for
from console.runtime.build import build_image
from console.runtime.docker import LABEL_SERVER, DockerRuntime
from tests.helpers import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]

FAKE_TAG = "vllm-console-test/fake-vllm:1"

FAKE_SERVER = r"""#!/bin/sh
# A stand-in for vLLM: the same start-up lines, /health over busybox httpd.
port=8000; host=127.0.0.1; model=$1
while [ $# -gt 0 ]; do
  case "$1" in --port) port=$2; shift;; --host) host=$2; shift;; esac; shift
done
ts() { date +'%m-%d %H:%M:%S'; }
echo "(APIServer pid=1) INFO $(ts) [api_server.py:1] vLLM API server version 0.0.0-fake"
echo "(APIServer pid=1) INFO $(ts) [api_server.py:2] non-default args: {'model': '$model'}"
echo "(EngineCore_DP0 pid=7) INFO $(ts) [gpu_model_runner.py:3] Starting to load model $model..."
if [ -n "$FAKE_FAIL" ]; then
  e="(EngineCore_DP0 pid=7) ERROR $(ts) [core.py:4]"
  echo "$e EngineCore failed to start."
  echo "$e Traceback (most recent call last):"
  echo "$e   File \"/vllm/v1/worker/utils.py\", line 759, in request_memory"
  m="Free memory on device cpu (1.0/2.0 GiB) on startup is less than desired"
  echo "$e ValueError: $m GPU memory utilization (0.9, 1.8 GiB). Decrease it."
  exit 1
fi
echo "secret-seen=${HF_TOKEN:+yes}"
sleep "${FAKE_DELAY:-1}"
mkdir -p /www && echo ok > /www/health
echo "INFO:     Started server process [1]"
echo "INFO:     Waiting for application startup."
trap 'echo "INFO:     Shutting down"; kill $pid; exit 0' TERM INT
httpd -f -p "$host:$port" -h /www & pid=$!
echo "INFO:     Application startup complete."
wait $pid
if [ -n "$FAKE_LINGER" ]; then  # the API server died; an engine process lives on
  echo "(EngineCore_DP0 pid=7) INFO $(ts) [core.py:9] still running"
  while :; do sleep 1; done
fi
"""


def image_section(tag: str = FAKE_TAG) -> dict:
    script = base64.b64encode(FAKE_SERVER.encode()).decode()
    return {
        "base": "local/busybox:latest",
        "tag": tag,
        "vllm_ref": "0.0.0-fake",
        "steps": [f"RUN mkdir -p /srv && echo {script} | base64 -d > /srv/serve.sh"],
        "entrypoint": ["/bin/sh", "/srv/serve.sh"],
    }


def write_profile(folder: Path, name: str, *, image: dict | None = None, **serve) -> Path:
    container = {"network": "host", **serve.pop("container", {})}
    data = {
        "name": name,
        "runtime": "docker",
        "image": image or image_section(),
        "serve": {
            "model": "fake/model",
            "host": "127.0.0.1",
            "port": free_port(),
            "container": container,
            **serve,
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def fake_server_image(docker_engine, busybox_image, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("fake-image")
    mp = pytest.MonkeyPatch()
    mp.setenv("VLLM_CONSOLE_STATE_DIR", str(folder / "state"))
    try:
        build_image(load_profile(str(write_profile(folder, "fake-image"))))
    finally:
        mp.undo()
    return FAKE_TAG


@pytest.fixture
def cleanup(docker_engine):
    """Remove the test's server containers even when the test fails."""
    names: list[str] = []
    yield names
    client = docker_engine.client()
    for c in client.containers.list(all=True):
        if c.labels.get(LABEL_SERVER) in names or c.name in names:
            c.remove(force=True)


def test_up_streams_logs_becomes_ready_and_stops_cleanly(
    tmp_path, monkeypatch, docker_engine, fake_server_image, cleanup
) -> None:
    home = tmp_path / "home"
    (home / "models" / "m").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VC_TEST_SECRET", "s3cret-value")
    path = write_profile(
        tmp_path,
        "t-up",
        volumes=["~/models/m:/models/m:ro"],
        env={"HF_TOKEN": "${VC_TEST_SECRET}"},
        container={"shm_size": "256m", "cap_add": ["SYS_NICE"], "ipc": "private"},
    )
    profile = load_profile(str(path))
    cleanup.append(profile.name)
    runtime = runtime_for(profile)
    assert isinstance(runtime, DockerRuntime)
    seen: list[str] = []
    status = runtime.up(profile, on_line=seen.append, timeout=60)
    assert status.state is ServerState.READY, status.detail
    assert status.url == f"http://127.0.0.1:{profile.serve.port}"
    assert "INFO:     Application startup complete." in seen
    # written to disk as it arrived, not only when the server stops
    assert "Application startup complete." in status.log_path.read_text()
    assert any("Starting to load model fake/model..." in line for line in seen)
    assert "secret-seen=yes" in seen
    assert status.image["vllm-console.profile"] == "fake-image"
    assert status.image["vllm-console.vllm-ref"] == "0.0.0-fake"
    assert "vllm-console.built-at" in status.image

    container = docker_engine.client().containers.get(status.container_id)
    host_config = container.attrs["HostConfig"]
    assert host_config["ShmSize"] == 256 * 1024 * 1024
    assert host_config["CapAdd"] == ["SYS_NICE"]
    assert host_config["NetworkMode"] == "host"
    mount = container.attrs["Mounts"][0]
    assert (mount["Source"], mount["Destination"], mount["RW"]) == (
        str(home / "models" / "m"),
        "/models/m",
        False,
    )
    assert "HF_TOKEN=s3cret-value" in container.attrs["Config"]["Env"]
    assert container.attrs["Config"]["Cmd"][:3] == ["fake/model", "--port", str(profile.serve.port)]

    assert runtime.status(profile).state is ServerState.READY
    # `vllm-console status NAME` says which build the server came from
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["status", str(path)]) == 0
    assert "profile: fake-image" in out.getvalue() and "vLLM: 0.0.0-fake" in out.getvalue()
    lines = list(runtime.logs(profile))
    assert "INFO:     Application startup complete." in lines

    t0 = time.monotonic()
    down = runtime.down(profile, timeout=20)
    assert time.monotonic() - t0 < 15  # SIGTERM handled, not killed after the timeout
    assert down.state is ServerState.STOPPED
    assert runtime.find(profile) is None
    assert runtime.status(profile).state is ServerState.ABSENT
    saved = down.log_path.read_text()
    assert "Application startup complete." in saved and "Shutting down" in saved
    assert "s3cret-value" not in saved
    # logs of a removed container come from the saved file
    assert "INFO:     Shutting down" in list(runtime.logs(profile))


def _preview_args(text: str) -> tuple[dict[str, list[str]], str, list[str]]:
    """``docker run`` text -> (options by flag, image, args after the image)."""
    tokens = shlex.split(text.replace(" \\\n", " "))
    assert tokens[:3] == ["docker", "run", "-d"], tokens[:3]
    options: dict[str, list[str]] = {}
    i = 3
    while tokens[i].startswith("-"):
        flag, eq, value = tokens[i].partition("=")
        if not eq:
            i += 1
            value = tokens[i]
        options.setdefault(flag, []).append(value)
        i += 1
    return options, tokens[i], tokens[i + 1 :]


def test_the_preview_is_the_container_up_creates(
    tmp_path, monkeypatch, docker_engine, fake_server_image, cleanup
) -> None:
    """`profiles render --as docker` and `docker inspect` of what `up` made agree."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", "hf-from-the-environment")
    path = write_profile(
        tmp_path,
        "t-preview",
        volumes=["~/data:/data:ro"],
        env={"HF_TOKEN": "${HF_TOKEN}", "PLAIN": "a b"},
        engine_args={"max-model-len": 512, "enforce-eager": True},
        container={
            "network": "bridge",
            "ports": {"8000/tcp": free_port()},
            "shm_size": "64m",
            "cap_add": ["SYS_NICE"],
            "ipc": "private",
        },
    )
    profile = load_profile(str(path))
    cleanup.append(profile.name)
    options, image, args = _preview_args(render_docker_run(profile))

    runtime = runtime_for(profile)
    status = runtime.up(profile, wait=False)
    client = docker_engine.client()
    attrs = client.containers.get(status.container_id).attrs
    host = attrs["HostConfig"]

    assert options["--name"] == [attrs["Name"].lstrip("/")]
    assert client.images.get(image).id == attrs["Image"]
    assert args == attrs["Config"]["Cmd"]
    for env in options["-e"]:
        expected = env if "=" in env else f"{env}={os.environ[env]}"
        assert expected in attrs["Config"]["Env"]
    assert options["--network"] == [host["NetworkMode"]]
    assert options["--ipc"] == [host["IpcMode"]]
    assert options["--shm-size"] == ["64m"] and host["ShmSize"] == 64 * 1024 * 1024
    assert options["--cap-add"] == host["CapAdd"]
    published = {
        f"{b['HostIp']}:{b['HostPort']}:{port.removesuffix('/tcp')}"
        for port, bindings in host["PortBindings"].items()
        for b in bindings
    }
    assert set(options["-p"]) == published
    assert all(p.startswith("127.0.0.1:") for p in published)
    mounts = {
        (m["Source"], m["Destination"], "ro" if not m["RW"] else "rw") for m in attrs["Mounts"]
    }
    previewed = set()
    for v in options["-v"]:
        source, dest, mode = v.split(":")
        previewed.add((str(Path(source).expanduser()), dest, mode))
    assert previewed == mounts
    runtime.down(profile, timeout=5)


def test_a_container_whose_api_died_is_shown_as_such_and_the_key_is_not_in_argv(
    tmp_path, monkeypatch, docker_engine, fake_server_image, cleanup
) -> None:
    key = "sk-test-0123456789"
    monkeypatch.setenv("VC_TEST_KEY", key)
    path = write_profile(
        tmp_path, "t-linger", env={"FAKE_LINGER": "1"}, engine_args={"api-key": "${VC_TEST_KEY}"}
    )
    profile = load_profile(str(path))
    cleanup.append(profile.name)
    runtime = runtime_for(profile)
    status = runtime.up(profile, timeout=60)
    assert status.state is ServerState.READY, status.detail
    container = docker_engine.client().containers.get(status.container_id)
    # The key reaches the server through its environment, not its argv (`ps`).
    assert key not in " ".join(container.attrs["Config"]["Cmd"])
    assert f"VLLM_API_KEY={key}" in container.attrs["Config"]["Env"]

    container.exec_run(["sh", "-c", "kill -9 $(pidof httpd)"])  # the API server dies
    wait_for(
        lambda: runtime.status(profile).state is ServerState.FAILED, 30, "status to say failed"
    )
    container.reload()
    assert container.status == "running"
    failed = runtime.status(profile)
    assert "still runs but its API server is gone" in failed.detail, failed.detail
    assert "connection refused" in failed.detail
    assert failed.leftovers and all(x.rss_bytes >= 0 for x in failed.leftovers)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["status", str(path)]) == 1
    assert "t-linger (docker): failed" in out.getvalue()
    assert f"vllm-console down {profile.name}" in out.getvalue()

    down = runtime.down(profile, timeout=10)
    assert down.state is ServerState.STOPPED
    assert runtime.find(profile) is None


def test_failed_start_keeps_the_container_and_its_log(
    tmp_path, docker_engine, fake_server_image, cleanup
) -> None:
    path = write_profile(tmp_path, "t-fail", env={"FAKE_FAIL": "1"})
    profile = load_profile(str(path))
    cleanup.append(profile.name)
    runtime = DockerRuntime()
    seen: list[str] = []
    status = runtime.up(profile, on_line=seen.append, timeout=60)
    assert status.state is ServerState.FAILED
    assert "exited with status 1" in status.detail
    assert "Free memory on device cpu" in status.detail
    assert any("ValueError: Free memory" in line for line in seen)
    container = runtime.find(profile)
    assert container is not None and container.status == "exited"
    assert "EngineCore failed to start." in status.log_path.read_text()
    assert runtime.status(profile).state is ServerState.FAILED
    assert any("Traceback" in line for line in runtime.logs(profile))

    # Fixed profile, same name: the failed container is replaced.
    fixed = load_profile(str(write_profile(tmp_path, "t-fail")))
    status = runtime.up(fixed, timeout=60)
    assert status.state is ServerState.READY, status.detail
    assert status.container_id != container.id
    runtime.down(fixed)


def test_gpu_request_without_gpu_runtime_leaves_nothing(
    tmp_path, docker_engine, fake_server_image, cleanup
) -> None:
    profile = load_profile(str(write_profile(tmp_path, "t-gpu", container={"gpus": "all"})))
    cleanup.append(profile.name)
    runtime = DockerRuntime()
    with pytest.raises(ConsoleError) as info:
        runtime.up(profile, timeout=30)
    text = str(info.value)
    assert "could not select device driver" in text
    assert "serve.container.gpus: all" in text and "NVIDIA Container Toolkit" in text
    assert runtime.find(profile) is None
    names = [c.name for c in docker_engine.client().containers.list(all=True)]
    assert container_name(profile) not in names


def test_stale_container_with_the_same_name_is_left_alone(
    tmp_path, docker_engine, fake_server_image, cleanup
) -> None:
    profile = load_profile(str(write_profile(tmp_path, "t-stale")))
    name = container_name(profile)
    cleanup.append(name)
    client = docker_engine.client()
    other = client.containers.create("local/busybox:latest", ["sleep", "60"], name=name)
    runtime = DockerRuntime()
    assert runtime.status(profile).state is ServerState.STALE
    with pytest.raises(ConsoleError) as info:
        runtime.up(profile, timeout=30)
    text = str(info.value)
    assert f"a container named {name} already exists" in text
    assert "409" in text and f"docker rm -f {name}" in text
    other.reload()
    assert other.status == "created"  # untouched
    assert runtime.find(profile) is None


def test_reattach_and_follow_logs_through_a_restart(
    tmp_path, docker_engine, fake_server_image, cleanup
) -> None:
    profile = load_profile(str(write_profile(tmp_path, "t-attach")))
    cleanup.append(profile.name)
    first = DockerRuntime().up(profile, timeout=60)
    assert first.state is ServerState.READY, first.detail

    # A new console (new runtime object, new client) finds the same server.
    again = DockerRuntime()
    status = again.status(profile)
    assert status.state is ServerState.READY
    assert status.container_id == first.container_id
    listed = {s.profile: s for s in again.servers()}
    assert listed[profile.name].container_id == first.container_id
    assert listed[profile.name].state is ServerState.READY
    # up on a running server re-attaches instead of starting a second one
    assert again.up(profile, timeout=30).container_id == first.container_id

    followed: list[str] = []
    logs = again.logs(profile, follow=True)

    def follow() -> None:
        for line in logs:
            followed.append(line)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    ready = "INFO:     Application startup complete."
    wait_for(lambda: followed.count(ready) == 1, 20, "the first start-up in the followed log")
    # the engine restarts the container (`docker restart`, a restart policy)
    docker_engine.client().containers.get(first.container_id).restart(timeout=10)
    wait_for(
        lambda: again.status(profile).state is ServerState.READY, 60, "ready after the restart"
    )
    restarted = again.status(profile)
    assert restarted.state is ServerState.READY, restarted.detail
    assert restarted.container_id == first.container_id
    wait_for(lambda: followed.count(ready) == 2, 30, "the log to continue after the restart")
    assert followed.count("INFO:     Shutting down") == 1
    assert thread.is_alive()  # still following
    again.down(profile)
    thread.join(20)
    assert not thread.is_alive()  # the follow ends when the container is removed


def test_missing_image_says_to_build(tmp_path, docker_engine) -> None:
    image = image_section("vllm-console-test/never-built:1")
    profile = load_profile(str(write_profile(tmp_path, "t-noimg", image=image)))
    with pytest.raises(ConsoleError) as info:
        DockerRuntime().up(profile)
    text = str(info.value)
    assert "vllm-console-test/never-built:1" in text
    assert "vllm-console build t-noimg" in text


def test_daemon_down_names_the_socket(tmp_path, monkeypatch) -> None:
    profile = load_profile(str(write_profile(tmp_path, "t-down")))
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/vc-no-such-engine.sock")
    with pytest.raises(ConsoleError) as info:
        DockerRuntime().status(profile)
    text = str(info.value)
    assert "unix:///tmp/vc-no-such-engine.sock" in text and "DOCKER_HOST" in text


def test_stock_image_runs_as_it_is(
    tmp_path, docker_engine, fake_server_image, cleanup, capsys
) -> None:
    """A profile whose image needs no build: no tag, `build` has nothing to do, `up` runs it."""
    image = {"base": fake_server_image, "vllm_ref": "0.0.0-fake"}
    path = write_profile(tmp_path, "t-stock", image=image)
    profile = load_profile(str(path))
    assert profile.image is not None and not profile.image.needs_build
    assert cli_main(["build", str(path)]) == 0
    assert "nothing to build" in capsys.readouterr().out
    cleanup.append(profile.name)
    runtime = DockerRuntime()
    status = runtime.up(profile, timeout=60)
    assert status.state is ServerState.READY, status.detail
    container = docker_engine.client().containers.get(status.container_id)
    assert container.image.tags == [fake_server_image]
    assert runtime.down(profile, timeout=20).state is ServerState.STOPPED


def test_stock_image_that_cannot_be_pulled_says_so(tmp_path, docker_engine) -> None:
    image = {"base": "localhost:1/vllm-console-test/absent:1"}
    profile = load_profile(str(write_profile(tmp_path, "t-nopull", image=image)))
    with pytest.raises(ConsoleError) as info:
        DockerRuntime().up(profile)
    text = str(info.value)
    assert "stock image localhost:1/vllm-console-test/absent:1" in text
    assert "could not be pulled" in text and "docker pull" in text
