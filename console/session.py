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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console import paths

if TYPE_CHECKING:
    from console.fleet import FleetSpec
    from console.profiles.schema import Profile

DEFAULT_URL = "http://127.0.0.1:8000"
"""vLLM's default bind; used when neither ``--url`` nor a profile says otherwise."""

API_KEY_VARS = ("VLLM_API_KEY", "OPENAI_API_KEY")
"""Environment variables read for the bearer token, first one set wins."""


def api_key_from_env() -> str | None:
    for var in API_KEY_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def normalize_url(url: str) -> str:
    """Accept ``host:port`` or a URL with a trailing ``/`` or ``/v1``; return the base URL."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


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
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Free slots screens may share (e.g. the last server status); not persisted."""

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
            except Exception:
                if profile:
                    raise
                # A remembered profile that no longer loads is not worth failing over.
                session.profile_name = None
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
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {}

    @property
    def label(self) -> str:
        """Short text for the header: profile and URL, never the key."""
        who = self.profile_name or "no profile"
        key = " · key set" if self.api_key else ""
        return f"{who} · {self.url}{key}"
