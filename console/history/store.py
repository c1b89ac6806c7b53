"""The history file: SQLite, one row per sample of every watched server.

Why it looks like this:

- **Raw pages, not just figures.** Each row keeps the derived figures
  (tok/s, KV, queue, acceptance) for quick summaries *and* a reference to the
  parsed ``vllm:`` page it came from, so replay feeds the dashboard the very
  samples it saw live and any window can be recomputed with the same formulas.
  Pages are stored once per distinct content (an idle server repeats the same
  page for hours): ``pages`` is keyed by a digest, zlib-compressed.
- **Durability.** WAL journal, one transaction per sample: a ``kill -9`` of the
  writer loses at most the sample being written (the last second); another
  process may read while one writes (``busy_timeout`` covers the overlap).
- **Unknown is not a number.** NaN/Inf never reach the file: figure columns
  hold NULL, page values ``null`` (dropped again when read back).
- **Retention.** By age (``max_age_s``) and by size (``max_bytes``, oldest
  samples first); pages nobody refers to any more go with them.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from console.errors import ConsoleError

SCHEMA_VERSION = 1
DEFAULT_MAX_AGE_S = 7 * 86400.0
DEFAULT_MAX_BYTES = 256 * 2**20
PRUNE_EVERY_S = 600.0

Series = tuple[tuple[tuple[tuple[str, str], ...], float], ...]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS servers (
    name TEXT PRIMARY KEY,
    url TEXT,
    model TEXT,
    version TEXT,
    spec_decode INTEGER,
    first_ts REAL,
    last_ts REAL
);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    server TEXT NOT NULL,
    ts REAL NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    reset INTEGER NOT NULL DEFAULT 0,
    page_id INTEGER REFERENCES pages(id),
    window_s REAL,
    running INTEGER,
    waiting INTEGER,
    kv_usage REAL,
    gen_tps REAL,
    prompt_tps REAL,
    preempted INTEGER,
    accept_len REAL,
    accept_rate REAL,
    gen_total REAL,
    prompt_total REAL,
    preempt_total REAL,
    requests_total REAL,
    drafts_total REAL,
    draft_tokens_total REAL,
    accepted_total REAL,
    rejections_total REAL
);
CREATE INDEX IF NOT EXISTS samples_server_ts ON samples (server, ts);
CREATE INDEX IF NOT EXISTS samples_page ON samples (page_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    server TEXT NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_server_ts ON events (server, ts);
"""


def finite(x: Any) -> float | None:
    """A finite float, or None (unknown) for None, NaN, ±Inf and non-numbers."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class SampleRow:
    """One sample of one server: the figures, the raw counters, and its page."""

    server: str
    ts: float
    ok: bool
    error: str | None = None
    reset: bool = False
    window_s: float | None = None
    running: int | None = None
    waiting: int | None = None
    kv_usage: float | None = None
    gen_tps: float | None = None
    prompt_tps: float | None = None
    preempted: int | None = None
    accept_len: float | None = None
    accept_rate: float | None = None
    gen_total: float | None = None
    prompt_total: float | None = None
    preempt_total: float | None = None
    requests_total: float | None = None
    drafts_total: float | None = None
    draft_tokens_total: float | None = None
    accepted_total: float | None = None
    rejections_total: float | None = None
    page_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "page_id"}


_ROW_FIELDS = tuple(f.name for f in fields(SampleRow))
_INT_FIELDS = {"running", "waiting", "preempted"}


@dataclass(frozen=True)
class Event:
    """Something that happened to a server (started, restarted, KV high, ...)."""

    server: str
    ts: float
    kind: str
    severity: str
    message: str
    data: Mapping[str, Any]
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "ts": self.ts,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class ServerRecord:
    name: str
    url: str | None
    model: str | None
    version: str | None
    spec_decode: bool | None
    first_ts: float | None
    last_ts: float | None


# --------------------------------------------------------------------------- pages


def encode_series(series: Mapping[str, Series]) -> bytes:
    """A parsed page as compact JSON (non-finite values as null), zlib-compressed."""
    doc = [
        [name, [[[list(p) for p in labels], finite(v)] for labels, v in values]]
        for name, values in sorted(series.items())
    ]
    raw = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return zlib.compress(raw, 6)


def decode_series(body: bytes) -> Mapping[str, Series]:
    doc = json.loads(zlib.decompress(body))
    out: dict[str, Series] = {}
    for name, values in doc:
        out[name] = tuple(
            (tuple((str(k), str(v)) for k, v in labels), float(value))
            for labels, value in values
            if value is not None
        )
    return MappingProxyType(out)


# --------------------------------------------------------------------------- store


class _SchemaPending(Exception):
    """The file exists but its tables do not (yet): a writer may be creating them."""


class HistoryStore:
    """The history file. Thread-safe (one connection behind a lock)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.readonly = readonly
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._conn = self._connect_settled()

    def _connect_settled(self) -> sqlite3.Connection:
        """A reader that opens a file a writer is creating this instant (no tables yet)
        waits for the schema, up to a few seconds, instead of calling it foreign."""
        deadline = time.monotonic() + 3.0
        while True:
            try:
                return self._connect()
            except _SchemaPending:
                if time.monotonic() > deadline:
                    raise ConsoleError(
                        f"{self.path}: not a vllm-console history file (no schema)", exit_code=2
                    ) from None
                time.sleep(0.1)

    def _connect(self) -> sqlite3.Connection:
        where = str(self.path)
        try:
            if self.readonly:
                if not self.path.is_file():
                    raise ConsoleError(f"{where}: no such history file", exit_code=2)
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5.0
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    where, check_same_thread=False, timeout=5.0, isolation_level=None
                )
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                # One transaction: a reader sees no tables or all of them.
                conn.executescript(
                    "BEGIN IMMEDIATE;"
                    + _SCHEMA
                    + "INSERT OR IGNORE INTO meta (key, value) VALUES "
                    + f"('schema', '{SCHEMA_VERSION}');COMMIT;"
                )
            conn.execute("PRAGMA busy_timeout=5000")
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError as exc:
            if self.readonly and "no such table: meta" in str(exc):
                raise _SchemaPending from None
            raise ConsoleError(
                f"{where}: not a vllm-console history file ({exc})", exit_code=2
            ) from None
        except sqlite3.DatabaseError as exc:
            raise ConsoleError(
                f"{where}: not a vllm-console history file ({exc})",
                exit_code=2,
                hint="give a file written by `vllm-console history --export` or the state folder's "
                "history.sqlite3",
            ) from None
        except OSError as exc:
            raise ConsoleError(f"{where}: cannot open ({exc.strerror})") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            conn.close()
            raise ConsoleError(
                f"{where}: history schema {row[0] if row else 'missing'}, "
                f"this console reads {SCHEMA_VERSION}",
                exit_code=2,
            )
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------

    def _page_id(self, body: bytes) -> int:
        # No cache of ids: another process's retention may have dropped the page.
        digest = hashlib.sha1(body).digest()
        c = self._conn
        c.execute("INSERT OR IGNORE INTO pages (digest, body) VALUES (?, ?)", (digest, body))
        (pid,) = c.execute("SELECT id FROM pages WHERE digest = ?", (digest,)).fetchone()
        return int(pid)

    def add_sample(self, row: SampleRow, series: Mapping[str, Series] | None = None) -> None:
        """Write one sample (and its page) in one transaction: durable when this returns."""
        values = []
        for name in _ROW_FIELDS:
            v = getattr(row, name)
            if name in ("server", "error"):
                values.append(v)
            elif name in ("ok", "reset"):
                values.append(1 if v else 0)
            elif name == "page_id":
                values.append(None)
            elif name in _INT_FIELDS:
                f = finite(v)
                values.append(None if f is None else round(f))
            else:
                values.append(finite(v))
        body = encode_series(series) if series is not None else None
        cols = ", ".join(_ROW_FIELDS)
        marks = ", ".join("?" for _ in _ROW_FIELDS)
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                if body is not None:
                    values[_ROW_FIELDS.index("page_id")] = self._page_id(body)
                c.execute(f"INSERT INTO samples ({cols}) VALUES ({marks})", values)
                c.execute(
                    "UPDATE servers SET last_ts = max(coalesce(last_ts, ?), ?),"
                    " first_ts = min(coalesce(first_ts, ?), ?) WHERE name = ?",
                    (row.ts, row.ts, row.ts, row.ts, row.server),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        self._maybe_prune(row.ts)

    def add_event(self, event: Event) -> None:
        data = json.dumps(_strict(dict(event.data)), allow_nan=False, sort_keys=True)
        with self._lock:
            self._conn.execute(
                "INSERT INTO events (server, ts, kind, severity, message, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event.server, event.ts, event.kind, event.severity, event.message, data),
            )

    def note_server(
        self,
        name: str,
        *,
        url: str | None = None,
        model: str | None = None,
        version: str | None = None,
        spec_decode: bool | None = None,
    ) -> None:
        """Create or update a server's record; None leaves a known value as it is."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO servers (name, url, model, version, spec_decode) VALUES (?,?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET url=coalesce(excluded.url, url),"
                " model=coalesce(excluded.model, model), version=coalesce(excluded.version,"
                " version), spec_decode=coalesce(excluded.spec_decode, spec_decode)",
                (name, url, model, version, None if spec_decode is None else int(spec_decode)),
            )

    # -- retention -------------------------------------------------------------

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self.prune(now)

    def size_bytes(self) -> int:
        """Bytes in use in the main file (free pages excluded; the WAL is bounded)."""
        with self._lock:
            c = self._conn
            (count,) = c.execute("PRAGMA page_count").fetchone()
            (free,) = c.execute("PRAGMA freelist_count").fetchone()
            (size,) = c.execute("PRAGMA page_size").fetchone()
        return int((count - free) * size)

    def prune(self, now: float | None = None) -> int:
        """Apply retention: age first, then size (oldest samples first). Returns rows deleted."""
        if self.readonly:
            return 0
        now = time.time() if now is None else now
        cutoff = now - self.max_age_s
        deleted = 0
        with self._lock:
            c = self._conn
            deleted += c.execute("DELETE FROM samples WHERE ts < ?", (cutoff,)).rowcount
            c.execute("DELETE FROM events WHERE ts < ?", (cutoff,))
        while self.size_bytes() > self.max_bytes:
            with self._lock:
                c = self._conn
                (n,) = c.execute("SELECT count(*) FROM samples").fetchone()
                if n == 0:
                    break
                chunk = max(1, n // 10)
                (edge,) = c.execute(
                    "SELECT ts FROM samples ORDER BY ts LIMIT 1 OFFSET ?", (chunk - 1,)
                ).fetchone()
                deleted += c.execute("DELETE FROM samples WHERE ts <= ?", (edge,)).rowcount
                c.execute("DELETE FROM events WHERE ts <= ?", (edge,))
                self._drop_orphans(c)
        with self._lock:
            self._drop_orphans(self._conn)
        return deleted

    def _drop_orphans(self, c: sqlite3.Connection) -> None:
        c.execute(
            "DELETE FROM pages WHERE id NOT IN (SELECT page_id FROM samples"
            " WHERE page_id IS NOT NULL)"
        )
        c.execute("PRAGMA incremental_vacuum")

    # -- reading ---------------------------------------------------------------

    def servers(self) -> list[ServerRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, url, model, version, spec_decode, first_ts, last_ts FROM servers"
                " ORDER BY name"
            ).fetchall()
        return [
            ServerRecord(n, u, m, v, None if s is None else bool(s), f, last)
            for n, u, m, v, s, f, last in rows
        ]

    def samples(
        self,
        server: str,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[SampleRow]:
        """The server's samples in time order, ``since <= ts <= until``."""
        cols = ", ".join(_ROW_FIELDS)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {cols} FROM samples WHERE server = ? AND ts >= ? AND ts <= ?"
                " ORDER BY ts, id",
                (
                    server,
                    -math.inf if since is None else since,
                    math.inf if until is None else until,
                ),
            ).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_ROW_FIELDS, r, strict=True))
            d["ok"] = bool(d["ok"])
            d["reset"] = bool(d["reset"])
            out.append(SampleRow(**d))
        return out

    def pages(self, ids: Iterable[int]) -> dict[int, Mapping[str, Series]]:
        """Decoded pages by id (each distinct page decoded once)."""
        wanted = sorted(set(ids))
        out: dict[int, Mapping[str, Series]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, body FROM pages WHERE id IN ({marks})", chunk
                ).fetchall()
            for pid, body in rows:
                out[int(pid)] = decode_series(body)
        return out

    def events(
        self,
        server: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Event]:
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        query = "SELECT id, server, ts, kind, severity, message, data FROM events WHERE ts >= ?"
        query += " AND ts <= ?"
        args: list[Any] = [lo, hi]
        if server is not None:
            query += " AND server = ?"
            args.append(server)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY ts, id", args).fetchall()
        return [
            Event(s, ts, k, sev, msg, MappingProxyType(json.loads(data)), id=i)
            for i, s, ts, k, sev, msg, data in rows
        ]

    def iter_servers_in(self, since: float | None, until: float | None) -> Iterator[str]:
        """Names of servers with a sample or an event in the span."""
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT server FROM samples WHERE ts >= ? AND ts <= ?"
                " UNION SELECT DISTINCT server FROM events WHERE ts >= ? AND ts <= ?"
                " ORDER BY 1",
                (lo, hi, lo, hi),
            ).fetchall()
        for (name,) in rows:
            yield name

    # -- sharing ---------------------------------------------------------------

    def export(
        self,
        dest: Path | str,
        *,
        server: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Copy a span (one server or all) into a new standalone file; returns samples copied."""
        dest = Path(dest).expanduser()
        if dest.exists():
            raise ConsoleError(f"{dest}: already exists; choose a new file name", exit_code=2)
        names = [server] if server else list(self.iter_servers_in(since, until))
        known = {s.name: s for s in self.servers()}
        out = HistoryStore(dest, max_age_s=math.inf, max_bytes=2**62)
        copied = 0
        try:
            for name in names:
                rec = known.get(name)
                out.note_server(
                    name,
                    url=rec.url if rec else None,
                    model=rec.model if rec else None,
                    version=rec.version if rec else None,
                    spec_decode=rec.spec_decode if rec else None,
                )
                rows = self.samples(name, since=since, until=until)
                pages = self.pages(r.page_id for r in rows if r.page_id is not None)
                for r in rows:
                    out.add_sample(r, pages.get(r.page_id) if r.page_id is not None else None)
                    copied += 1
                for ev in self.events(name, since=since, until=until):
                    out.add_event(ev)
            with out._lock:
                out._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            out.close()
        return copied


def _strict(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (unknown)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value
