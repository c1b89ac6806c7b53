"""Remote Docker: build, run, logs, status and stop through ``ssh://``.

A real sshd (tests/fixtures/sshd.py) on its own loopback port stands in for
the second GPU box; behind it is the real engine. Every call goes through the
system ``ssh`` client and ``docker system dial-stdio`` on the far side: the
sshd's own log must show the key logins, so a client that quietly used the
local socket instead fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from console.cli import main as cli_main
from console.errors import ConsoleError
from console.profiles import load_profile
from console.runtime import runtime_for
from console.runtime.docker import LABEL_SERVER, DockerRuntime
from console.runtime.enginehost import check_host, engine_hostname, is_remote
from tests.fixtures.sshd import SshServer
from tests.test_runtime_docker import image_section, write_profile

pytestmark = pytest.mark.usefixtures("private_state")

SSH_TAG = "vllm-console-test/fake-vllm-ssh:1"


@pytest.fixture
def remote_cleanup(docker_engine):
    """Remove what the test made on the engine (containers by profile, the image)."""
    names: list[str] = []
    yield names
    client = docker_engine.client()
    try:
        for c in client.containers.list(all=True):
            if c.labels.get(LABEL_SERVER) in names:
                c.remove(force=True)
        for image in client.images.list(name=SSH_TAG.split(":")[0]):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


def _with_docker_host(path: Path, host: str) -> Path:
    data = yaml.safe_load(path.read_text())
    data["docker_host"] = host
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_build_run_logs_status_stop_through_ssh(
    tmp_path, capsys, docker_engine, busybox_image, ssh_path: SshServer, remote_cleanup
) -> None:
    path = _with_docker_host(
        write_profile(tmp_path, "t-ssh", image=image_section(SSH_TAG)), ssh_path.url
    )
    profile = load_profile(str(path))
    remote_cleanup.append(profile.name)
    assert profile.docker_host == ssh_path.url
    runtime = runtime_for(profile)
    assert isinstance(runtime, DockerRuntime) and runtime.address == ssh_path.url
    logins = ssh_path.accepted_logins()

    assert cli_main(["build", str(path)]) == 0, ssh_path.log_tail()
    out = capsys.readouterr().out
    assert SSH_TAG in out
    # The image is on the engine behind sshd.
    local = docker_engine.client()
    assert local.images.get(SSH_TAG).labels["vllm-console.profile"] == "t-ssh"
    assert ssh_path.accepted_logins() > logins, "the build did not go through sshd"

    logins = ssh_path.accepted_logins()
    assert cli_main(["up", str(path), "--detach", "--timeout", "90"]) == 0
    out = capsys.readouterr().out
    # Ready is /health 200 (plus the log line, or a short grace if the log lags
    # behind over ssh); the whole log is checked through `logs` below.
    assert f"{profile.name}: ready" in out
    assert ssh_path.accepted_logins() > logins, "up did not go through sshd"

    assert cli_main(["status", str(path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "ready"
    assert status["url"] == f"http://127.0.0.1:{profile.serve.port}"
    container = local.containers.get(status["container_id"])
    assert container.labels[LABEL_SERVER] == "t-ssh" and container.status == "running"

    # Listing every server on that engine goes through --docker-host.
    assert cli_main(["status", "--docker-host", ssh_path.url, "--json"]) == 0
    listed = {s["profile"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["t-ssh"]["container_id"] == status["container_id"]

    assert cli_main(["logs", str(path)]) == 0
    assert "INFO:     Application startup complete." in capsys.readouterr().out.splitlines()

    assert cli_main(["down", str(path)]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not [c for c in local.containers.list(all=True) if c.labels.get(LABEL_SERVER) == "t-ssh"]
    local.close()


@pytest.mark.slow
def test_docker_host_flag_overrides_the_profile(
    tmp_path, capsys, docker_engine, busybox_image, ssh_path: SshServer
) -> None:
    """A profile without docker_host, aimed at the ssh engine by ``--docker-host``."""
    path = write_profile(tmp_path, "t-ssh-flag", image=image_section(SSH_TAG))
    logins = ssh_path.accepted_logins()
    assert cli_main(["status", str(path), "--docker-host", ssh_path.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "absent"
    assert ssh_path.accepted_logins() > logins


@pytest.mark.slow
def test_unreachable_ssh_engine_is_one_clear_error(
    tmp_path, capsys, docker_engine, ssh_path: SshServer
) -> None:

    # Right sshd, wrong user: the key login is refused.
    bad = ssh_path.url.replace(f"{ssh_path.user}@", "nobody-here@")
    path = _with_docker_host(write_profile(tmp_path, "t-ssh-bad"), bad)
    assert cli_main(["status", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the Docker engine at {bad}")
    assert "hint: check that `ssh -p" in err and "Traceback" not in err


def test_docker_host_values_are_checked(tmp_path, capsys) -> None:
    path = write_profile(tmp_path, "t-ssh-val")
    assert cli_main(["status", str(path), "--docker-host", "gpu-box"]) == 2
    assert "--docker-host: 'gpu-box' is not a Docker engine address" in capsys.readouterr().err
    with pytest.raises(ConsoleError):
        check_host("ssh://me@box:notaport")
    with pytest.raises(ConsoleError):
        check_host("ssh://")
    _with_docker_host(path, "ftp://box")
    with pytest.raises(ConsoleError) as info:
        load_profile(str(path))
    assert "docker_host" in str(info.value)


def test_remote_engine_moves_the_server_url(tmp_path) -> None:
    """Bound to every address on the remote box: reached by its name. Bound to its
    loopback: reached through a tunnel, i.e. on ours."""
    from console.runtime.docker import server_url

    assert is_remote("ssh://me@gpu-box:2222") and engine_hostname("ssh://me@gpu-box") == "gpu-box"
    assert not is_remote("unix:///var/run/docker.sock")
    path = _with_docker_host(
        write_profile(tmp_path, "t-ssh-url", host="0.0.0.0"), "ssh://me@gpu-box"
    )
    profile = load_profile(str(path))
    assert profile.url == f"http://gpu-box:{profile.serve.port}" == server_url(profile)
    path = _with_docker_host(write_profile(tmp_path, "t-ssh-lo"), "ssh://me@gpu-box")
    profile = load_profile(str(path))
    assert profile.url == f"http://127.0.0.1:{profile.serve.port}" == server_url(profile)
