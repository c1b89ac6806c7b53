"""Shared pytest set-up. Real-server and real-engine fixtures live in their
own plugin modules so each area owns its fixtures."""

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.vllm_server",
    "tests.fixtures.docker_engine",
    "tests.fixtures.hostile_server",
    "tests.fixtures.sshd",
]


@pytest.fixture
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The console's state and config folders under ``tmp_path`` (``state/``,
    ``config/``), and no API key from the caller's environment, so a test
    never reads or writes the user's own. Returns ``tmp_path``."""
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path
