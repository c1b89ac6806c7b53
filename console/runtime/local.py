"""Local servers: vLLM's OpenAI API server as a child process of the console.

The child runs in its own session (process group) and writes its output straight
into a log file, so it survives the console exiting (``up --detach``) and the
whole process tree (API server, engine core, workers) can be signalled at once.
A record under the state folder (``state.py``) lets any later console find it.

Ready means both the log line ``Application startup complete.`` and ``GET
/health`` 200 (reference/vllm.md 2.3): the port is bound long before the engine
is up, so neither alone is enough. Failure means the process exited (the reason
is taken from its log) or the deadline passed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from console import paths
from console.errors import ConsoleError
from console.logs import READY_LINE, bare, engine_death, failure_reason, last_error
from console.runtime import health, state
from console.runtime.base import Leftover, LineCallback, ServerState, ServerStatus
from console.runtime.provision import Progress
from console.runtime.state import ServerRecord

if TYPE_CHECKING:
    from console.profiles.schema import Profile

POLL_S = 0.25
# Defaults for every local server; the profile's own env wins.
CONSOLE_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}
# Only for console-managed models (a local folder): nothing may reach a hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Children this Python process started: reaped after they exit so they do not
# linger as zombies (which psutil would still report as running).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --- log reading --------------------------------------------------------------------------------


class LogTail:
    """Reads a growing log file line by line (tqdm's carriage returns collapsed)."""

    def __init__(self, path: Path, *, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [_decode(chunk) for chunk in complete]

    def flush(self) -> list[str]:
        """The last line even without its newline (after the writer exited)."""
        lines = self.read()
        if self._partial:
            lines.append(_decode(self._partial))
            self._partial = b""
        return lines


def _decode(chunk: bytes) -> str:
    return chunk.decode("utf-8", "replace").rstrip("\r").rsplit("\r", 1)[-1]


def tail_lines(path: Path, count: int = 40) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except OSError:
        return []
    return [_decode(c) for c in data.split(b"\n") if c.strip()][-count:]


# --- processes and ports ------------------------------------------------------------------------


def _process(record: ServerRecord) -> psutil.Process | None:
    """The recorded server's process if it still runs and is the one we started."""
    child = _CHILDREN.get(record.pid)
    if child is not None and child.poll() is not None:
        return None  # exited and reaped; its exit code stays with the Popen
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def session_members(rec: ServerRecord) -> list[psutil.Process]:
    """Every live process of the server's session: API server, engine core, workers,
    multiprocessing helpers, whatever they spawned.

    The server was started as the leader of a new session, so its session id is
    its PID, and the kernel does not hand that PID to a new process while any
    member of the session lives. So: if ``rec.pid`` now belongs to another
    process, nothing of ours is left; otherwise the session's members are ours
    (a record from before the last boot has none)."""
    if rec.create_time < psutil.boot_time():
        return []
    try:
        leader = psutil.Process(rec.pid)
        if abs(leader.create_time() - rec.create_time) > 1.0:
            return []
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied:
        return []
    members: list[psutil.Process] = []
    for proc in psutil.process_iter(["create_time", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.info["create_time"] + 1.0 < rec.create_time:
                continue
            if os.getsid(proc.pid) == rec.pid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _leftovers(members: list[psutil.Process]) -> tuple[Leftover, ...]:
    out: list[Leftover] = []
    for proc in members:
        try:
            name = _process_title(proc)
            rss = proc.memory_info().rss
        except psutil.Error:
            continue
        out.append(Leftover(proc.pid, name, rss))
    return tuple(out)


def _process_title(proc: psutil.Process) -> str:
    """vLLM names its processes (``VLLM::EngineCore``); else the program's name."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        cmd = []
    if cmd and "::" in cmd[0]:
        return cmd[0].split()[0]
    return proc.name()


def _describe(pid: int | None) -> str:
    if pid is None:
        return "another process (run as root, or `ss -ltnp`, to see which)"
    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"
    if len(cmd) > 100:
        cmd = cmd[:97] + "..."
    return f"pid {pid} ({cmd})"


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not bind ``host:port`` now (someone listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = "" if host in ("0.0.0.0", "::") else host
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_owner(port: int) -> int | None:
    """PID listening on ``port``, if psutil may tell (root or same user)."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def _port_message(host: str, port: int) -> str:
    return f"port {port} on {host} is already in use by {_describe(port_owner(port))}"


def healthy(url: str, client: httpx.Client | None = None) -> bool:
    """/health answers 200, within the server client's deadline and size cap."""
    return health.probe(url, client).ok


def spawn_logged(
    argv: list[str],
    log_path: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    die_with_parent: bool,
    what: str,
    hint: str,
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log_path``.

    Returns the child (the caller keeps it to reap it) and its create time
    (with the pid, what tells our process from a recycled pid)."""
    with log_path.open("ab", buffering=0) as log:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_parent_death_signal if die_with_parent else None,
            )
        except OSError as exc:
            raise ConsoleError(f"cannot start {what}: {exc.strerror or exc}", hint=hint) from None
    try:
        return child, psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:
        return child, time.time()


def _parent_death_signal() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _check_model_path(profile: Profile) -> None:
    """A model given as a path that does not exist fails now, not after vLLM's
    minute of start-up (vLLM would take it for a hub repo id)."""
    if profile.serve.local.managed_model:
        return
    model = profile.serve.model
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        raise ConsoleError(
            f"profile {profile.name}: serve.model {model} does not exist",
            hint=f"fix serve.model in {profile.source or 'the profile'} (a model folder)",
        )


# --- the runtime --------------------------------------------------------------------------------


class ProcessRuntime:
    """What the local and the cluster runtime share: servers as processes this
    machine starts, recorded under ``state_dir`` with their logs beside them."""

    name = ""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        progress: Progress | None = None,
        provision: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        """``die_with_parent``: the server gets SIGTERM when this process dies, even
        by SIGKILL (test sessions: no orphaned 6 GB servers after a killed run)."""
        base = state_dir if state_dir is not None else paths.state_dir()
        self.state_dir = base
        self.servers_dir = base / "servers"
        self.logs_dir = base / "logs"
        self.progress = progress
        self.provision = provision
        self.die_with_parent = die_with_parent

    def status_of(self, rec: ServerRecord) -> ServerStatus:
        raise NotImplementedError

    def servers(self) -> list[ServerStatus]:
        """Every server of this runtime with a record (any console started it)."""
        return [
            self.status_of(rec)
            for rec in state.all_records(self.servers_dir)
            if rec.runtime == self.name
        ]

    def _status(self, rec: ServerRecord, st: ServerState, detail: str = "") -> ServerStatus:
        return ServerStatus(
            profile=rec.profile,
            runtime=self.name,
            state=st,
            url=rec.url,
            pid=rec.pid,
            log_path=rec.log_path,
            detail=detail,
        )

    def _absent(self, profile: Profile, detail: str, log_path: Path | None = None) -> ServerStatus:
        return ServerStatus(
            profile.name,
            self.name,
            ServerState.ABSENT,
            url=profile.url,
            log_path=log_path,
            detail=detail,
        )

    def _base_env(self, profile: Profile) -> dict[str, str]:
        """This process's environment with the console's defaults (and offline for a
        console-managed model); the profile's own env goes on top."""
        env = dict(os.environ)
        env.update(CONSOLE_ENV)
        if profile.serve.local.managed_model:
            env.update(OFFLINE_ENV)
        return env

    def _spawn(
        self,
        argv: list[str],
        stem: str,
        env: dict[str, str],
        children: dict[int, subprocess.Popen[bytes]],
        *,
        what: str,
        hint: str,
    ) -> tuple[int, float, Path]:
        """Start ``argv`` logging to a new ``logs_dir/<stem>-<time>.log``; the child is
        kept in ``children`` to be reaped. Returns pid, create time and log path."""
        paths.ensure(self.logs_dir)
        log_path = self.logs_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        child, created = spawn_logged(
            argv,
            log_path,
            env=env,
            cwd=paths.ensure(self.state_dir),
            die_with_parent=self.die_with_parent,
            what=what,
            hint=hint,
        )
        children[child.pid] = child
        return child.pid, created, log_path

    def _new_record(self, profile: Profile, **fields: Any) -> ServerRecord:
        """A record of ``profile`` started now by this runtime; ``fields`` add the rest."""
        return ServerRecord(
            profile=profile.name,
            host=profile.serve.host,
            port=profile.serve.port,
            url=profile.url,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            runtime=self.name,
            source=profile.source,
            **fields,
        )


class LocalRuntime(ProcessRuntime):
    """Starts, watches, re-attaches to and stops local vLLM server processes."""

    name = "local"

    # -- records

    def record(self, profile: Profile | str) -> ServerRecord | None:
        name = profile if isinstance(profile, str) else profile.name
        return state.load(name, self.servers_dir)

    # -- up

    def prepare(self, profile: Profile, *, progress: Progress | None = None) -> None:
        """Make sure what the profile runs on exists: runtime and model (with progress)."""
        local = profile.serve.local
        say = progress or self.progress
        if local.vllm or local.python:
            field = "serve.local.vllm" if local.vllm else "serve.local.python"
            exe = local.vllm or local.python
            path = Path(str(exe)).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ConsoleError(
                    f"profile {profile.name}: {field} {exe} is not an executable file",
                    hint=f"fix {field} in {profile.source or 'the profile'}",
                )
        runtime = None if (local.vllm or local.python) else local.runtime
        if self.provision and (runtime or local.managed_model):
            # The runtime installs while the model is fetched and converted.
            from console.runtime import prepare

            models = [local.managed_model] if local.managed_model else []
            prepare.prepare(runtime, models, progress=say)

    def command(self, profile: Profile) -> tuple[list[str], dict[str, str], list[str]]:
        """argv, full environment, and the argv as it may be recorded (redacted)."""
        from console.profiles import redact_argv, render_argv, render_env, secret_values
        from console.profiles.redaction import api_key_to_env

        argv, key_env = api_key_to_env(render_argv(profile))
        env = self._base_env(profile)
        env.update(render_env(profile))
        env.update(key_env)  # never in argv: `ps` shows argv to every user
        return argv, env, redact_argv(argv, secret_values(profile))

    def up(
        self,
        profile: Profile,
        *,
        on_line: LineCallback | None = None,
        wait: bool = True,
        timeout: float = 600.0,
    ) -> ServerStatus:
        """Start the server; with ``wait`` return once it is ready or has failed.

        Problems found before anything starts (port taken, runtime missing and not
        installable) raise ConsoleError; a server that starts and then fails is
        returned as FAILED with the reason from its log."""
        rec = self.record(profile)
        if rec is not None and _process(rec) is not None:
            if not wait:
                return self.status(profile)
            return self._await(rec, on_line=on_line, timeout=timeout, offset=0)
        if rec is not None and session_members(rec):
            # The last server's API died but its engine still holds its memory.
            ended = self.down_record(rec, timeout=10.0)
            say = on_line or self.progress
            if say is not None:
                say(f"ended what was left of the previous server: {ended.detail}")
        host, port = profile.serve.host, profile.serve.port
        if port_in_use(host, port):
            raise ConsoleError(
                f"cannot start {profile.name}: {_port_message(host, port)}",
                hint=(
                    "stop that server, or pick another port "
                    f"(e.g. `up {profile.name} --port {_free_port()}`)"
                ),
            )
        _check_model_path(profile)
        self.prepare(profile, progress=self.progress or on_line)
        argv, env, shown = self.command(profile)
        pid, create_time, log_path = self._spawn(
            argv,
            profile.name,
            env,
            _CHILDREN,
            what=f"{profile.name}: {argv[0]}",
            hint="run `vllm-console runtime install cpu`, or fix serve.local.python",
        )
        rec = self._new_record(
            profile, pid=pid, create_time=create_time, log=str(log_path), argv=shown
        )
        state.save(rec, self.servers_dir)
        if not wait:
            return self._status(rec, ServerState.STARTING, f"started (pid {pid})")
        return self._await(rec, on_line=on_line, timeout=timeout, offset=0)

    def _await(
        self,
        rec: ServerRecord,
        *,
        on_line: LineCallback | None,
        timeout: float,
        offset: int,
    ) -> ServerStatus:
        deadline = time.monotonic() + timeout
        reader = LogTail(rec.log_path, offset=offset)
        recent: list[str] = []
        saw_ready = False

        def take(lines: list[str]) -> None:
            nonlocal saw_ready
            for line in lines:
                if on_line is not None:
                    on_line(line)
                if READY_LINE in line:
                    saw_ready = True
                recent.append(line)
            del recent[:-400]

        with httpx.Client(timeout=httpx.Timeout(3.0, connect=0.5)) as client:
            while True:
                take(reader.read())
                if _process(rec) is None:
                    take(reader.flush())
                    return self._exited(rec, recent)
                if saw_ready and healthy(rec.url, client):
                    return self._status(rec, ServerState.READY, f"ready at {rec.url}")
                if time.monotonic() > deadline:
                    last = failure_reason(recent) if recent else "no output"
                    self.down_record(rec, timeout=10.0)
                    return self._status(
                        rec,
                        ServerState.FAILED,
                        f"not ready after {timeout:.0f} s (last: {last}); stopped it. "
                        f"Log: {rec.log}",
                    )
                time.sleep(POLL_S)

    def _exited(self, rec: ServerRecord, recent: list[str]) -> ServerStatus:
        child = _CHILDREN.pop(rec.pid, None)
        code = child.poll() if child is not None else None
        if session_members(rec):
            self.down_record(rec, timeout=10.0)  # its engine core and workers may live on
        state.remove(rec.profile, self.servers_dir)
        how = f"exited with code {code}" if code is not None else "exited"
        reason = failure_reason(recent or tail_lines(rec.log_path, 400))
        return self._status(rec, ServerState.FAILED, f"server {how}: {reason} (log: {rec.log})")

    # -- down

    def down(self, profile: Profile, *, timeout: float = 10.0) -> ServerStatus:
        rec = self.record(profile)
        if rec is None:
            return self._absent(
                profile, f"no server of profile {profile.name} is recorded as running"
            )
        return self.down_record(rec, timeout=timeout)

    def down_record(self, rec: ServerRecord, *, timeout: float = 10.0) -> ServerStatus:
        """End every process of the server's session, then check that none is left.

        SIGTERM goes to the API server alone while it lives: it shuts its engine
        and workers down in order (signalling the group at once would kill
        workers under the engine). If it is already gone (killed, crashed),
        its engine core and workers still run: SIGTERM to the whole group.
        Whatever is left at ``timeout`` gets SIGKILL; then the session is
        looked up again, and anything still there makes the result FAILED."""
        started = time.monotonic()
        leader = _process(rec)
        members = session_members(rec)
        if leader is None and not members:
            state.remove(rec.profile, self.servers_dir)
            _CHILDREN.pop(rec.pid, None)
            ending = last_error(tail_lines(rec.log_path, 400))
            return self._status(
                rec,
                ServerState.STOPPED,
                f"server (pid {rec.pid}) had already exited; cleared its record; {ending}",
            )
        if leader is not None:
            how = f"SIGTERM to pid {rec.pid}"
            with contextlib.suppress(psutil.NoSuchProcess):
                leader.send_signal(signal.SIGTERM)
        else:
            how = (
                f"the API server (pid {rec.pid}) was already gone; SIGTERM to the "
                f"{len(members)} processes left in its session"
            )
            self._signal(rec.pid, members, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=timeout)
        if alive:
            killed = ", ".join(str(p.pid) for p in alive)
            self._signal(rec.pid, alive, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5.0)
            how += f"; after {timeout:.0f} s SIGKILL to what was left ({killed})"
        child = _CHILDREN.pop(rec.pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5.0)
        # Late children (spawned while we signalled) are caught by a second round.
        left = session_members(rec)
        if left:
            self._signal(rec.pid, left, signal.SIGKILL)
            psutil.wait_procs(left, timeout=5.0)
            left = session_members(rec)
        if left:
            return self._status(
                rec,
                ServerState.FAILED,
                f"{how}; still running: "
                + ", ".join(x.describe() for x in _leftovers(left))
                + " (another user's processes? try as root)",
            )
        state.remove(rec.profile, self.servers_dir)
        return self._status(
            rec,
            ServerState.STOPPED,
            f"{how}; all {len(members)} processes of its session ended "
            f"({time.monotonic() - started:.1f} s)",
        )

    @staticmethod
    def _signal(pgid: int, members: list[psutil.Process], sig: signal.Signals) -> None:
        # The server leads its own session, so its group is its PID (the group
        # outlives its leader); members that left the group are signalled one by one.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                member.send_signal(sig)

    # -- status and logs

    def status(self, profile: Profile) -> ServerStatus:
        rec = self.record(profile)
        if rec is None:
            return self._absent(profile, "not running (no record)", self.latest_log(profile.name))
        return self.status_of(rec)

    def status_of(self, rec: ServerRecord) -> ServerStatus:
        proc = _process(rec)
        if proc is None:
            left = _leftovers(session_members(rec))
            if left:
                return replace(
                    self._status(rec, ServerState.FAILED, self._leftover_detail(rec, left)),
                    leftovers=left,
                )
            return self._status(rec, ServerState.STALE, self._stale_detail(rec))
        answer = health.probe(rec.url)
        if answer.ok:
            return self._status(rec, ServerState.READY, f"ready at {rec.url} (pid {rec.pid})")
        lines = tail_lines(rec.log_path, 400)
        death = engine_death(lines)
        if answer.code == 503 or death is not None:
            # vLLM answers 503 on /health once its engine core is dead
            # (EngineDeadError); the API process itself keeps running.
            cause = death or failure_reason(lines)
            return self._status(
                rec,
                ServerState.FAILED,
                f"the engine of pid {rec.pid} is dead ({answer.describe()}): {cause}. "
                f"`vllm-console down {rec.profile}` ends what is left (log: {rec.log})",
            )
        last = next((bare(ln) for ln in reversed(lines) if bare(ln)), "no output yet")
        if any(READY_LINE in ln for ln in lines):
            return self._status(
                rec,
                ServerState.STARTING,
                f"was ready, but /health does not answer now (busy?) (pid {rec.pid}): {last}",
            )
        return self._status(rec, ServerState.STARTING, f"starting (pid {rec.pid}): {last}")

    def _leftover_detail(self, rec: ServerRecord, left: tuple[Leftover, ...]) -> str:
        total = sum(x.rss_bytes for x in left) / 2**30
        ending = last_error(tail_lines(rec.log_path, 400))
        return (
            f"the API server (pid {rec.pid}) is gone but {len(left)} processes of its "
            f"session still run ({total:.1f} GiB): "
            + ", ".join(x.describe() for x in left)
            + f". `vllm-console down {rec.profile}` ends them; {ending}"
        )

    def _stale_detail(self, rec: ServerRecord) -> str:
        parts = [f"the recorded server (pid {rec.pid}, port {rec.port}) is no longer running"]
        try:
            other = psutil.Process(rec.pid)
            parts.append(f"pid {rec.pid} now belongs to another process ({other.name()})")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        if port_in_use(rec.host, rec.port):
            parts.append(f"{_port_message(rec.host, rec.port)}")
        parts.append(last_error(tail_lines(rec.log_path, 400)))
        return "; ".join(parts) + f". `vllm-console down {rec.profile}` clears the record."

    def latest_log(self, name: str) -> Path | None:
        found = sorted(self.logs_dir.glob(f"{name}-*.log")) if self.logs_dir.is_dir() else []
        return found[-1] if found else None

    def logs(self, profile: Profile, *, follow: bool = False) -> Iterator[str]:
        rec = self.record(profile)
        path = rec.log_path if rec else self.latest_log(profile.name)
        if path is None or not path.exists():
            raise ConsoleError(
                f"no log for profile {profile.name} in {self.logs_dir}",
                hint=f"start it with `vllm-console up {profile.name}`",
            )
        reader = LogTail(path)
        while True:
            yield from reader.read()
            if not follow or rec is None or _process(rec) is None:
                yield from reader.flush()
                return
            time.sleep(POLL_S)
