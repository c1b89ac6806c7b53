"""Bad input stops at the edge with exit 2 and one line naming what is wrong:
profile names that would become paths, twin profile files, ports, URLs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.validate import bad_name

PROFILE = """\
name: {name}
runtime: local
serve:
  model: /nonexistent/model
  port: {port}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_CONSOLE_STATE_DIR"] = str(tmp_path / "state")
    env["VLLM_CONSOLE_CONFIG_DIR"] = str(tmp_path / "config")
    (tmp_path / "config" / "profiles").mkdir(parents=True)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if not ln.startswith(("usage:", "  "))]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("gemma3-270m-cpu", True),
        ("a.b_c-1", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("../../x", False),
        ("a..b", False),
        (".hidden", False),
        ("a/b", False),
        ("a b", False),
        ("", False),
        ("é", False),
    ],
)
def test_profile_names_are_plain_identifiers(name: str, ok: bool) -> None:
    assert (bad_name(name) is None) is ok


def test_a_path_like_profile_name_is_refused_with_file_and_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text(PROFILE.format(name="../../x", port=8000))
    proc = cli(env, "up", str(path))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert f"{path}:1: name: '../../x'" in line
    # Nothing was written anywhere: no state folder, no log outside it.
    assert not (tmp_path / "state").exists()
    assert not (tmp_path.parent / "x.json").exists()


def test_two_profile_files_with_one_name_is_an_error_naming_both(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "config" / "profiles"
    for suffix in (".yaml", ".yml"):
        (folder / f"dup{suffix}").write_text(PROFILE.format(name="dup", port=8000))
    proc = cli(env, "status", "dup")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert str(folder / "dup.yaml") in line and str(folder / "dup.yml") in line
    listed = cli(env, "profiles", "list")
    assert str(folder / "dup.yml") in listed.stderr + listed.stdout


def test_a_profile_port_out_of_range_is_refused_at_load(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "config" / "profiles" / "big.yaml"
    path.write_text(PROFILE.format(name="big", port=99999))
    proc = cli(env, "status", "big")
    assert proc.returncode != 0
    assert f"{path}:5: serve.port" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("port", ["99999", "0", "-1", "x"])
def test_up_port_must_be_1_to_65535(env: dict[str, str], port: str) -> None:
    proc = cli(env, "up", "gemma3-270m-cpu", "--port", port)
    assert proc.returncode == 2
    assert "--port" in one_error_line(proc.stderr)


@pytest.mark.parametrize("url", ["http://", "ftp://box:8000", ":8000", "http://box:99999"])
@pytest.mark.parametrize(
    "command", [["monitor", "--once"], ["chat", "hi"], ["bench"], ["record"], []]
)
def test_url_needs_scheme_and_host(env: dict[str, str], command: list[str], url: str) -> None:
    args = [*command, "--url", url] if command else ["--url", url, "status"]
    proc = cli(env, *args)
    assert proc.returncode == 2, proc.stderr
    assert "--url" in one_error_line(proc.stderr)


@pytest.mark.parametrize("message", ["", "   ", "\n"])
def test_chat_refuses_an_empty_message(env: dict[str, str], message: str) -> None:
    proc = cli(env, "chat", "--url", "http://127.0.0.1:9", message)
    assert proc.returncode == 2, proc.stderr
    assert "empty" in one_error_line(proc.stderr)
    assert "cannot reach" not in proc.stderr  # nothing was sent
