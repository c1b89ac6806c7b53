"""The TUI-side commands as a user runs them: ``chat`` one-shot (real server),
``web`` never on port 8000 (the rest of web mode: tests/test_web.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_CONSOLE_STATE_DIR"] = str(tmp_path / "state")
    env["VLLM_CONSOLE_CONFIG_DIR"] = str(tmp_path / "config")
    env.pop("VLLM_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow
def test_chat_one_shot_streams_to_stdout_and_keeps_a_transcript(
    vllm_server, env: dict[str, str], tmp_path: Path
) -> None:
    proc = cli(
        "chat", "--url", vllm_server.url, "--max-tokens", "12", "--temperature", "0",
        "Say hello.", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "TTFT" in proc.stderr and "tokens" in proc.stderr
    (transcript,) = (tmp_path / "state" / "transcripts").glob("*.jsonl")
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert records[-1]["type"] == "answer"
    assert records[-1]["content"].strip() == proc.stdout.strip()
    assert f"{records[-1]['stats']['completion_tokens']} tokens" in proc.stderr


def test_chat_to_a_dead_url_is_a_clear_error(env: dict[str, str]) -> None:
    proc = cli("chat", "--url", "http://127.0.0.1:9", "hi", env=env, timeout=60)
    assert proc.returncode == 1
    assert "error: cannot reach http://127.0.0.1:9" in proc.stderr


def test_chat_bad_setting_is_refused(env: dict[str, str]) -> None:
    proc = cli("chat", "--url", "http://127.0.0.1:9", "--temperature", "7", "hi", env=env)
    assert proc.returncode == 1
    assert "temperature 7.0 is out of range" in proc.stderr


def test_web_refuses_vllms_port(env: dict[str, str]) -> None:
    proc = cli("web", "--port", "8000", env=env, timeout=60)
    assert proc.returncode == 2
    assert "8000" in proc.stderr


@pytest.mark.slow
def test_chat_repl_is_multi_turn(vllm_server, env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console", "--url", vllm_server.url, "chat", "--max-tokens", "6"],
        input="Say hi.\nAgain.\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("TTFT") == 2
    (transcript,) = (tmp_path / "state" / "transcripts").glob("*.jsonl")
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [r["content"] for r in records if r["type"] == "user"] == ["Say hi.", "Again."]
    assert [r["type"] for r in records].count("answer") == 2


@pytest.mark.slow
def test_demo_attaches_to_a_server_already_answering(
    vllm_ngram_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A healthy server on the demo profile's address is reused, never started twice."""
    from console.commands.tui import start_demo_server

    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    port = int(vllm_ngram_server.url.rsplit(":", 1)[1])
    profile = tmp_path / "demo-here.yaml"
    profile.write_text(f"name: demo-here\nextends: gemma3-270m-cpu-ngram\nserve:\n  port: {port}\n")
    status = start_demo_server(str(profile), wait=True, timeout=30)
    assert status.pid is None  # nothing was started
    assert "already answers" in capsys.readouterr().err
    assert not (tmp_path / "state" / "servers").exists()
