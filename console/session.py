"""What the console is pointed at: one server URL, its API key, the active profile.

Headless on purpose: the TUI keeps one ``Session`` (``app.session``) that every
screen reads, and the CLI builds the same object, so "which server?" has one
answer everywhere. The API key comes from the environment only and never
appears in ``repr`` or logs.

The last active profile is remembered in ``state_dir()/session.json`` so a bare
``vllm-console`` reopens where the user left off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from console import paths

# URL normalising and the API key belong to the one server client; kept importable here.
from console.server_client import API_KEY_VARS as API_KEY_VARS
from console.server_client import DEFAULT_URL as DEFAULT_URL
from console.server_client import api_key_from_env as api_key_from_env
from console.server_client import auth_headers
from console.server_client import normalize_url as normalize_url

if TYPE_CHECKING:
    from console.fleet import FleetSpec
    from console.history.live import SessionHistory
    from console.profiles.schema import Profile
    from console.runtime.base import ServerStatus
    from console.sampler import MetricsSampler
    from console.server_client import ServerClient


def _state_file() -> Path:
    return paths.state_dir() / "session.json"


def load_last_profile() -> str | None:
    """The profile the user last made active, if any (a broken file is ignored)."""
    try:
        data = json.loads(_state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("profile") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def save_last_profile(name: str | None) -> None:
    path = _state_file()
    paths.ensure(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"profile": name}) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_profile_by_name(name: str) -> Profile:
    """Load a profile by name or path (the loader's errors name the file and field)."""
    from console.profiles.loader import load_profile

    return load_profile(name)


def profile_names() -> list[str]:
    """Names of every known profile (shipped and user), for the palette."""
    from console.profiles.loader import available_names

    try:
        return sorted(available_names())
    except Exception:
        return []


@dataclass
class Session:
    """The one server the console talks to, and the profile that describes it."""

    url: str = DEFAULT_URL
    profile_name: str | None = None
    url_pinned: bool = False
    model: str | None = None
    """Served model name to chat with (``--model``); None asks ``/v1/models``."""
    """True when the user gave ``--url``: a profile change does not move the URL."""
    api_key: str | None = field(default=None, repr=False)
    profile: Profile | None = field(default=None, repr=False)
    """The loaded active profile (None when attached by URL only or not loadable)."""
    fleet: FleetSpec | None = None
    """Several servers asked for (``--url`` more than once, ``--discover``, ``--fleet``):
    the TUI opens on the fleet view."""
    server_status: ServerStatus | None = field(default=None, repr=False)
    """The last status a runtime reported for the active profile's server."""
    history: SessionHistory | None = field(default=None, repr=False)
    """Records every sampler's polls into the history file (the App sets it through
    :meth:`attach_history`)."""
    _samplers: dict[str, MetricsSampler] = field(default_factory=dict, repr=False)
    _history_pending: bool = field(default=False, repr=False)
    """True between :meth:`hold_sampling` and :meth:`attach_history`: samplers are
    made but not started, so none polls before its recorder is attached."""
    _recorded: list[MetricsSampler] = field(default_factory=list, repr=False)
    """Samplers not the session's own (the fleet's) waiting for the history."""
    notices: list[str] = field(default_factory=list, repr=False)
    """Problems found while building the session that the UI must show (e.g. the
    remembered profile no longer loads); the App shows each once at start."""

    @classmethod
    def create(
        cls, url: str | None = None, profile: str | None = None, *, remember: bool = True
    ) -> Session:
        """Build the session from ``--url``/``--profile``, else the last active profile."""
        session = cls(api_key=api_key_from_env())
        if url:
            session.url = normalize_url(url)
            session.url_pinned = True
        name = profile or (load_last_profile() if remember else None)
        if name:
            try:
                session.set_profile(load_profile_by_name(name), remember=False)
            except Exception as exc:
                if profile:
                    raise
                # A remembered profile that no longer loads is not worth failing over,
                # but the user must see why the console came up without it.
                session.profile_name = None
                reason = " ".join(str(getattr(exc, "message", exc)).split())
                session.notices.append(
                    f"the last active profile {name!r} does not load, so none is active: "
                    f"{reason}. Fix it, or pick another on the profiles screen (4)"
                )
        return session

    def set_profile(self, profile: Profile, *, remember: bool = True) -> None:
        """Make ``profile`` active; its URL becomes the session URL unless ``--url`` pinned one."""
        self.profile = profile
        self.profile_name = profile.name
        if not self.url_pinned:
            self.url = profile.url
        if remember:
            save_last_profile(profile.name)

    def headers(self) -> dict[str, str]:
        """HTTP headers for the server (the bearer token when a key is set)."""
        return auth_headers(self.api_key)

    def client(self) -> ServerClient:
        """A new async client for the session's server (URL and key); close it
        (``async with``) when done."""
        from console.server_client import ServerClient

        return ServerClient(self.url, api_key=self.api_key)

    # -- sampling ---------------------------------------------------------------

    @property
    def sampler(self) -> MetricsSampler:
        """The running ``/metrics`` sampler of the session's server URL.

        Sampling belongs to the session, not to a screen: it starts on first
        use and keeps going while other screens show. A URL change (another
        profile) starts the new URL's sampler and stops the old one.
        """
        from console.sampler import MetricsSampler

        url = self.url
        current = self._samplers.get(url)
        if current is None:
            for old in self._samplers.values():
                old.stop(timeout=0)
            self._samplers.clear()
            current = self._samplers[url] = MetricsSampler(url, api_key=self.api_key)
            if self.history is not None:
                self.history.attach(current)  # before start: no poll goes unrecorded
        return current if self._history_pending else current.start()

    def hold_sampling(self) -> None:
        """Make samplers without starting them until :meth:`attach_history`.

        The TUI paints its first frame before it reads the console's config and
        opens the history file (pydantic, YAML, SQLite: slow to import), yet every
        poll of the session's server must reach the history: so the first poll
        waits for the history instead of going unrecorded."""
        if self.history is None:
            self._history_pending = True

    @property
    def history_pending(self) -> bool:
        """The history is still being opened (after the TUI's first frame)."""
        return self._history_pending

    def attach_history(self, history: SessionHistory | None) -> None:
        """Record every sampler's polls into ``history`` (None: no history, e.g. it
        could not be read), then start the session's samplers held until now."""
        self._history_pending = False
        if history is not None:
            self.history = history
            for sampler in [*self._samplers.values(), *self._recorded]:
                history.attach(sampler)
        self._recorded.clear()
        for sampler in self._samplers.values():
            sampler.start()

    def record(self, sampler: MetricsSampler) -> None:
        """Record the polls of a sampler the session does not own (the fleet's):
        now, or once the history is attached."""
        if self.history is not None:
            self.history.attach(sampler)
        elif self._history_pending:
            self._recorded.append(sampler)

    def samplers(self) -> list[MetricsSampler]:
        """Every sampler this session runs (one per server URL)."""
        return list(self._samplers.values())

    @property
    def server_pid(self) -> int | None:
        """PID of the session's server when a runtime of this console reported it."""
        st = self.server_status
        if st is None or st.pid is None or st.profile != self.profile_name:
            return None
        return st.pid

    def note_log_event(self, event: object) -> None:
        """A server log event (KV capacity on servers whose /metrics lack it)."""
        self.sampler.note_log_event(event)

    def close(self) -> None:
        """Stop every sampler (the app calls this on exit)."""
        for sampler in self._samplers.values():
            sampler.stop()
        self._samplers.clear()
        if self.history is not None:
            self.history.close()

    @property
    def label(self) -> str:
        """Short text for the header: profile and URL, never the key."""
        who = self.profile_name or "no profile"
        key = " · key set" if self.api_key else ""
        return f"{who} · {self.url}{key}"
