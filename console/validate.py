"""Checks at the edge: command-line values and names that become paths.

Each check either returns the clean value or raises with one line that names
what is wrong, so bad input stops before anything starts (argparse turns
``ArgumentTypeError`` into exit 2; the profile loader turns ``bad_name`` into a
problem at the file and field).
"""

from __future__ import annotations

import argparse
import re
from urllib.parse import urlsplit

NAME_MAX = 64
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def bad_name(name: str) -> str | None:
    """Why ``name`` cannot be a profile name (it becomes file names), or None.

    Plain identifiers only: letters, digits, ``-``, ``_``, ``.``; no ``..``,
    not starting with a dot, at most 64 characters."""
    if not name:
        return "is empty"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long (at most {NAME_MAX})"
    if not _NAME.match(name):
        return "may only hold letters, digits and - _ . (it becomes a file name)"
    if ".." in name or name.startswith("."):
        return "may not start with a dot or contain '..' (it becomes a file name)"
    return None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (1-65535)")
    return port


def server_url(text: str) -> str:
    """argparse type: an http(s) URL with a host, e.g. http://127.0.0.1:8000.

    ``host:port`` alone is taken as ``http://host:port`` (what users type)."""
    value = text.strip()
    if "://" not in value:
        value = f"http://{value}"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} needs http:// or https:// and a host, e.g. http://127.0.0.1:8000"
        )
    if port == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: port 0 is not a port (1-65535)")
    return value.rstrip("/")
