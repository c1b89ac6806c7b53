"""The session: one URL, the API key from the environment (never shown), the
remembered profile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from console.errors import ConsoleError
from console.session import (
    DEFAULT_URL,
    Session,
    load_last_profile,
    normalize_url,
    profile_names,
    save_last_profile,
)

pytestmark = pytest.mark.usefixtures("private_state")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost:8000", "http://localhost:8000"),
        ("http://h:1/", "http://h:1"),
        ("http://h:1/v1", "http://h:1"),
        ("https://h/v1/", "https://h"),
        (" http://h:2 ", "http://h:2"),
    ],
)
def test_url_forms(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_default_url_without_anything() -> None:
    session = Session.create()
    assert session.url == DEFAULT_URL
    assert session.profile_name is None


def test_api_key_from_env_is_sent_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
    monkeypatch.setenv("VLLM_API_KEY", "sk-secret-123")
    session = Session.create(url="127.0.0.1:8101")
    assert session.headers() == {"Authorization": "Bearer sk-secret-123"}
    assert "sk-secret" not in repr(session)
    assert "sk-secret" not in session.label
    assert "key set" in session.label


def test_openai_key_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    assert Session.create().headers() == {"Authorization": "Bearer sk-fallback"}


def test_profile_sets_the_url_and_is_remembered() -> None:
    session = Session.create(profile="gemma3-270m-cpu-ngram")
    assert session.profile_name == "gemma3-270m-cpu-ngram"
    assert session.url == session.profile.url
    assert load_last_profile() is None  # --profile alone does not change the memory
    session.set_profile(session.profile)
    assert load_last_profile() == "gemma3-270m-cpu-ngram"
    again = Session.create()
    assert again.profile_name == "gemma3-270m-cpu-ngram"


def test_url_given_by_the_user_wins_over_the_profile() -> None:
    session = Session.create(url="http://127.0.0.1:8101", profile="gemma3-270m-cpu")
    assert session.url == "http://127.0.0.1:8101"
    assert session.profile_name == "gemma3-270m-cpu"


def test_unknown_profile_given_is_an_error_but_a_stale_memory_is_not() -> None:
    with pytest.raises(ConsoleError, match="no-such"):
        Session.create(profile="no-such")
    save_last_profile("deleted-since")
    session = Session.create()
    assert session.profile_name is None and session.url == DEFAULT_URL


def test_broken_memory_file_is_ignored(private_state: Path) -> None:
    state = private_state / "state"
    state.mkdir(parents=True)
    (state / "session.json").write_text("{not json")
    assert load_last_profile() is None


def test_shipped_profiles_are_listed_for_the_palette() -> None:
    names = profile_names()
    assert {"gemma3-270m-cpu", "gemma3-270m-cpu-ngram"} <= set(names)


def test_held_sampling_starts_with_the_history_and_records_every_poll(
    vllm_server, tmp_path: Path
) -> None:
    """The TUI paints before it opens the history: until then the session's sampler
    exists but does not poll, and once the history is attached every poll is
    recorded (none before its recorder)."""
    from console.history.live import SessionHistory
    from console.history.store import HistoryStore

    session = Session(url=vllm_server.url)
    session.hold_sampling()
    sampler = session.sampler
    ticks: list[object] = []
    sampler.subscribe(ticks.append)
    assert not sampler.running
    assert sampler.last is None
    history = SessionHistory(HistoryStore(tmp_path / "history.sqlite3"))
    try:
        session.attach_history(history)
        assert session.history is history
        assert sampler.running
        deadline = time.monotonic() + 60
        while len(ticks) < 2:
            assert time.monotonic() < deadline, "no two polls in 60 s"
            time.sleep(0.05)
    finally:
        session.close()
    recorder = history.recorders[sampler.url]
    assert recorder.samples == len(ticks) >= 2


def test_a_sampler_not_the_sessions_is_recorded_once_the_history_comes(
    vllm_server, tmp_path: Path
) -> None:
    from console.history.live import SessionHistory
    from console.history.store import HistoryStore
    from console.sampler import MetricsSampler

    session = Session(url=vllm_server.url)
    session.hold_sampling()
    other = MetricsSampler(vllm_server.url)
    session.record(other)  # the fleet's: before the history exists
    history = SessionHistory(HistoryStore(tmp_path / "history.sqlite3"))
    session.attach_history(history)
    ticks: list[object] = []
    other.subscribe(ticks.append)
    other.start()
    try:
        deadline = time.monotonic() + 60
        while not ticks:
            assert time.monotonic() < deadline, "no poll in 60 s"
            time.sleep(0.05)
    finally:
        other.stop()
        session.close()
    assert history.recorders[other.url].samples >= 1
