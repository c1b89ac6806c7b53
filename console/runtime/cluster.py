"""One model over several nodes: start, watch and stop the nodes of a ``cluster:``
profile in order (reference/multi-node.md).

Nodes here are local processes, each optionally inside a network namespace
(``netns``: how the tests make two "machines" on one box, and how a user pins a
node to a link). Per backend:

- **ray**: ``ray start --block --head`` first, then each worker's ``ray start
  --address``; ``up`` waits until Ray's own state (read by a probe run with the
  head's interpreter, inside its namespace) lists every node alive with the
  GPUs the profile gives, then runs ``vllm serve ... --distributed-executor-backend
  ray`` on the head (or stops there with ``serve=False``).
- **vllm** (vLLM's own multi-node executor): the headless followers first, then
  rank 0, which serves; ``up`` waits for the head's log to show the rendezvous of
  all ranks and then for readiness (``Application startup complete.`` + /health).

``down`` stops in reverse order: SIGTERM to each node's process, then SIGKILL to
whatever is left of its session (every process a node started shares the
session the console gave it; Ray's daemons included). Nothing is ever stopped
by name: ``ray stop`` would end every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

from console.errors import ConsoleError
from console.logs import READY_LINE, failure_reason
from console.runtime import state
from console.runtime.base import LineCallback, ServerState, ServerStatus
from console.runtime.local import (
    LogTail,
    ProcessRuntime,
    healthy,
    port_in_use,
    tail_lines,
)
from console.runtime.netns import netns_argv
from console.runtime.state import ServerRecord

if TYPE_CHECKING:
    from console.profiles.nodes import NodeLaunch
    from console.profiles.schema import NodeSpec, Profile

LAUNCHER = Path(__file__).resolve().parent.parent / "data" / "launchers" / "vllm_cli.py"
"""Run by path with the node's Python; alone in its folder, because the folder of a
script run by path comes first on sys.path (console/runtime/select.py would
shadow the standard library's select)."""
POLL_S = 0.5
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
JOINED = re.compile(r"rank 0 in world size (\d+) is assigned as")
"""Rank 0's line after its model-parallel groups formed: group creation needs
every rank, so it means all nodes joined (vllm/distributed/parallel_state.py)."""


@dataclass
class NodeProc:
    """One process the console started for a node (recorded so any console can stop it)."""

    name: str
    rank: int
    role: str
    """``head``, ``worker`` or ``server`` (vllm serve on a Ray head)."""
    pid: int
    create_time: float
    log: str
    netns: str | None = None
    exit_code: int | None = None

    @property
    def label(self) -> str:
        where = f", netns {self.netns}" if self.netns else ""
        return f"{self.role} {self.name} (rank {self.rank}, pid {self.pid}{where})"


def server_proc(procs: list[NodeProc]) -> NodeProc:
    """The process whose log is the server's: vllm serve on a Ray head, else rank 0."""
    server = next((p for p in procs if p.role == "server"), None)
    return server or next((p for p in procs if p.rank == 0), procs[0])


def _alive(proc: NodeProc) -> psutil.Process | None:
    child = _CHILDREN.get(proc.pid)
    if child is not None and child.poll() is not None:
        proc.exit_code = child.returncode
        return None
    try:
        p = psutil.Process(proc.pid)
        if abs(p.create_time() - proc.create_time) > 1.0:
            return None
        if p.status() == psutil.STATUS_ZOMBIE:
            # Our own child died between poll() and now: collect how it ended, so
            # status names the signal instead of "is gone".
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.exit_code = child.wait(timeout=2.0)
            return None
        return p
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def exit_text(code: int | None) -> str:
    if code is None:
        return "is gone"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


_ERRORISH = re.compile(r"Error|Exception|ERROR|CRITICAL|Traceback|Killed|fatal|failed", re.I)


def log_error(path: Path) -> str:
    """The root cause in a node's log, or a plain note when its log has no error
    (a node killed from outside ends mid-log)."""
    from console.sanitize import clean_line

    reason = clean_line(failure_reason(tail_lines(path, 400)))  # a log is untrusted text
    if _ERRORISH.search(reason):
        return reason
    return "no error in its log (stopped from outside?)"


def session_members(pid: int) -> list[psutil.Process]:
    """Every process still in the session ``pid`` leads (what the node started)."""
    out: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getsid(proc.pid) == pid:
                out.append(proc)
    return out


class ClusterRuntime(ProcessRuntime):
    """Starts, watches and stops the nodes of a multi-node profile (local nodes)."""

    name = "cluster"

    # -- plan ------------------------------------------------------------------------------

    def _check(self, profile: Profile) -> None:
        spec = profile.cluster
        if spec is None:
            raise ConsoleError(f"profile {profile.name} has no cluster section")
        from console.profiles.nodes import is_placeholder

        for index, node in enumerate(spec.nodes):
            if node.docker_host or profile.runtime == "docker":
                raise ConsoleError(
                    f"profile {profile.name}: node {node.name} runs in Docker; `up` starts "
                    "local nodes only so far",
                    hint=f"run the per-node commands of `vllm-console profiles render "
                    f"{profile.name} --as docker`",
                )
            for name in ("address", "interface"):
                if is_placeholder(getattr(node, name)):
                    raise ConsoleError(
                        f"profile {profile.name}: cluster.nodes[{index}].{name} is still a "
                        "placeholder",
                        hint=f"`vllm-console profiles check {profile.name}` lists what to fill",
                    )
            if node.netns and not Path("/run/netns", node.netns).exists():
                raise ConsoleError(
                    f"profile {profile.name}: node {node.name}: network namespace "
                    f"{node.netns!r} does not exist",
                    hint=f"create it (`ip netns add {node.netns}`) or drop netns",
                )

    def _python(self, profile: Profile) -> str:
        from console.profiles.render import local_python

        return local_python(profile)

    def _program(self, profile: Profile, program: str) -> list[str]:
        python = self._python(profile)
        if program == "ray":
            return [str(Path(python).parent / "ray")]
        return [python, str(LAUNCHER)]

    def _env(self, profile: Profile, launch_env: dict[str, str]) -> dict[str, str]:
        from console.profiles.redaction import expand

        env = self._base_env(profile)
        env.update(RAY_ENV)
        for key, value in launch_env.items():
            env[key] = expand(value, os.environ, field=f"profile {profile.name}: env {key}")
        return env

    # -- records -----------------------------------------------------------------------------

    def record(self, profile: Profile | str) -> ServerRecord | None:
        name = profile if isinstance(profile, str) else profile.name
        rec = state.load(name, self.servers_dir)
        return rec if rec is not None and rec.runtime == self.name else None

    @staticmethod
    def procs(rec: ServerRecord) -> list[NodeProc]:
        return [NodeProc(**p) for p in rec.extra.get("procs", [])]

    def _save(self, rec: ServerRecord, procs: list[NodeProc]) -> ServerRecord:
        extra = {**rec.extra, "procs": [asdict(p) for p in procs]}
        server = server_proc(procs)
        fields = {"extra": extra, "pid": server.pid, "create_time": server.create_time}
        new = ServerRecord(**{**asdict(rec), **fields, "log": server.log})
        state.save(new, self.servers_dir)
        return new

    # -- starting ----------------------------------------------------------------------------

    def _spawn_node(
        self, profile: Profile, node: NodeSpec, rank: int, role: str, argv: list[str], env: dict
    ) -> NodeProc:
        full = netns_argv(node.netns) + argv
        pid, created, log_path = self._spawn(
            full,
            f"{profile.name}-{node.name}-{role}",
            env,
            _CHILDREN,
            what=f"node {node.name} of {profile.name}: {full[0]}",
            hint="`ip netns exec` needs root; a runtime needs `vllm-console runtime install NAME`",
        )
        return NodeProc(node.name, rank, role, pid, created, str(log_path), node.netns)

    def up(
        self,
        profile: Profile,
        *,
        on_line: LineCallback | None = None,
        wait: bool = True,
        timeout: float = 900.0,
        serve: bool = True,
    ) -> ServerStatus:
        """Start every node in order and wait until all joined, then until ready.

        ``serve=False`` (Ray only) stops once the cluster formed: no vLLM server."""
        from console.profiles import nodes as N
        from console.profiles.render import display_value, resolver

        rec = self.record(profile)
        if rec is not None and any(_alive(p) for p in self.procs(rec)):
            return self.status(profile)
        self._check(profile)
        spec = profile.cluster
        assert spec is not None
        head = spec.head
        if serve and not head.netns and port_in_use(profile.serve.host, profile.serve.port):
            raise ConsoleError(
                f"cannot start {profile.name}: port {profile.serve.port} on "
                f"{profile.serve.host} is already in use",
                hint="stop that server, or set serve.port",
            )
        from console.runtime.local import LocalRuntime

        LocalRuntime(state_dir=self.state_dir, provision=self.provision).prepare(
            profile, progress=self.progress or on_line
        )
        # ${VAR} in engine args resolved now: a missing secret fails before any start
        plan = N.launches(profile, resolver(os.environ))
        order = N.start_order(spec, plan)
        shown_args = {p.rank: p.args for p in N.launches(profile, display_value)}
        rec = self._new_record(
            profile,
            pid=0,
            create_time=0.0,
            log="",
            argv=[],
            extra={"backend": spec.backend, "serve": serve, "procs": []},
        )
        procs: list[NodeProc] = []
        say = on_line or (lambda _line: None)
        deadline = time.monotonic() + timeout
        try:
            for launch in order:
                argv = self._program(profile, launch.program) + launch.args
                env = self._env(profile, launch.env)
                if launch.program == "ray" and launch.rank == 0:
                    env["RAY_ADDRESS"] = ""
                proc = self._spawn_node(profile, launch.node, launch.rank, launch.role, argv, env)
                procs.append(proc)
                rec = self._save(rec, procs)
                shown = " ".join(shown_args[launch.rank][:3])  # never resolved secrets
                say(f"[console] started {proc.label}: {launch.program} {shown} ...")
                if spec.backend == "ray" and launch.rank == 0:
                    failed = self._await_ray(profile, rec, procs, 1, say, deadline)
                    if failed is not None:
                        return failed
            if not wait and spec.backend == "vllm":
                return self._status(rec, ServerState.STARTING, "nodes started")
            if spec.backend == "ray":
                failed = self._await_ray(profile, rec, procs, len(spec.nodes), say, deadline)
                if failed is not None:
                    return failed
                if not serve:
                    return self._status(
                        rec, ServerState.READY, f"Ray cluster of {len(spec.nodes)} nodes formed"
                    )
                launch = self._ray_server(profile)
                argv = self._program(profile, "vllm") + launch.args
                env = self._env(profile, launch.env)
                env["RAY_ADDRESS"] = f"{head.address}:{spec.ray_port}"
                proc = self._spawn_node(profile, head, 0, "server", argv, env)
                procs.append(proc)
                rec = self._save(rec, procs)
                say(f"[console] started {proc.label}: vllm serve (Ray executor)")
            return self._await_ready(profile, rec, procs, on_line, deadline, timeout)
        except BaseException:
            if procs:
                self._stop_procs(procs, timeout=10.0)
                state.remove(profile.name, self.servers_dir)
            raise

    def _ray_server(self, profile: Profile) -> NodeLaunch:
        from console.profiles import nodes as N

        spec = profile.cluster
        assert spec is not None
        from console.profiles.render import resolver

        args = N.ray_serve_args(profile, resolver(os.environ))
        return N.NodeLaunch(spec.head, 0, "server", "vllm", args, N.node_env(profile, spec.head))

    def _dead(self, procs: list[NodeProc]) -> list[NodeProc]:
        return [p for p in procs if _alive(p) is None]

    def _failed(
        self, profile: Profile, rec: ServerRecord, procs: list[NodeProc], why: str
    ) -> ServerStatus:
        self._stop_procs(procs, timeout=10.0)
        state.remove(profile.name, self.servers_dir)
        return self._status(rec, ServerState.FAILED, f"{why}; stopped the other nodes")

    def _dead_detail(self, dead: list[NodeProc]) -> str:
        parts = []
        for proc in dead:
            reason = log_error(Path(proc.log))
            parts.append(f"{proc.label} {exit_text(proc.exit_code)}: {reason} (log: {proc.log})")
        return "; ".join(parts)

    def _await_ray(
        self,
        profile: Profile,
        rec: ServerRecord,
        procs: list[NodeProc],
        want: int,
        say: LineCallback,
        deadline: float,
    ) -> ServerStatus | None:
        """Poll Ray's state until ``want`` nodes are alive (and, for all, the GPUs)."""
        from console.runtime import ray_state

        spec = profile.cluster
        assert spec is not None
        gpus = sum(n.gpus for n in spec.nodes) if want == len(spec.nodes) else None
        last = ""
        while True:
            dead = self._dead(procs)
            if dead:
                return self._failed(profile, rec, procs, self._dead_detail(dead))
            view = ray_state.probe(profile, timeout=20.0)
            alive = [n for n in view.nodes if n.alive]
            have_gpus = sum(n.gpus or 0 for n in alive)
            text = f"Ray: {len(alive)}/{want} nodes alive, {have_gpus:g} GPUs"
            if view.error:
                text = f"Ray: not answering yet ({view.error})"
            if text != last:
                say(f"[console] {text}")
                last = text
            if len(alive) >= want and (gpus is None or have_gpus >= gpus):
                return None
            if time.monotonic() > deadline:
                return self._failed(
                    profile, rec, procs, f"the Ray cluster did not form in time ({text})"
                )
            time.sleep(POLL_S)

    def _await_ready(
        self,
        profile: Profile,
        rec: ServerRecord,
        procs: list[NodeProc],
        on_line: LineCallback | None,
        deadline: float,
        timeout: float,
    ) -> ServerStatus:
        server = server_proc(procs)
        reader = LogTail(Path(server.log))
        saw_ready = False
        joined = False
        spec = profile.cluster
        assert spec is not None
        with httpx.Client(timeout=httpx.Timeout(3.0, connect=0.5)) as client:
            while True:
                for line in reader.read():
                    if on_line is not None:
                        on_line(line)
                    if READY_LINE in line:
                        saw_ready = True
                    match = JOINED.search(line)
                    if match and not joined and spec.backend == "vllm":
                        joined = True
                        rec = self._save(
                            ServerRecord(**{**asdict(rec), "extra": {**rec.extra, "joined": True}}),
                            procs,
                        )
                        if on_line is not None:
                            on_line(
                                f"[console] all {match.group(1)} ranks joined "
                                "(rank 0 formed its parallel groups)"
                            )
                dead = self._dead(procs)
                if dead:
                    for line in reader.flush():
                        if on_line is not None:
                            on_line(line)
                    return self._failed(profile, rec, procs, self._dead_detail(dead))
                if saw_ready and self._healthy(server, rec.url, client):
                    extra = {**rec.extra, "ready_at": time.time()}
                    rec = self._save(ServerRecord(**{**asdict(rec), "extra": extra}), procs)
                    return self._status(
                        rec, ServerState.READY, f"ready at {rec.url} ({len(spec.nodes)} nodes)"
                    )
                if time.monotonic() > deadline:
                    last = failure_reason(tail_lines(Path(server.log), 200))
                    return self._failed(
                        profile,
                        rec,
                        procs,
                        f"not ready after {timeout:.0f} s (last: {last}). Log: {server.log}",
                    )
                time.sleep(POLL_S)

    def _healthy(self, server: NodeProc, url: str, client: httpx.Client) -> bool:
        if not server.netns:
            return healthy(url, client)
        # the server listens inside its namespace: ask from there
        return health_in_netns(server.netns, url)

    # -- stopping ----------------------------------------------------------------------------

    def _stop_procs(self, procs: list[NodeProc], *, timeout: float) -> list[str]:
        """Reverse start order: SIGTERM, wait, SIGKILL the rest of each node's session."""
        notes: list[str] = []
        for proc in reversed(procs):
            live = _alive(proc)
            members = session_members(proc.pid)
            if live is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    live.send_signal(signal.SIGTERM)
                members = list({m.pid: m for m in [live, *members]}.values())
            _, left = psutil.wait_procs(members, timeout=timeout)
            left += [m for m in session_members(proc.pid) if m.pid not in {x.pid for x in left}]
            if left:
                for member in left:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        member.kill()
                psutil.wait_procs(left, timeout=5.0)
                notes.append(f"{proc.name}: SIGKILL to {len(left)} left after {timeout:.0f} s")
            child = _CHILDREN.pop(proc.pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5.0)
        return notes

    def down(self, profile: Profile, *, timeout: float = 20.0) -> ServerStatus:
        rec = self.record(profile)
        if rec is None:
            return self._absent(
                profile, f"no cluster of profile {profile.name} is recorded as running"
            )
        procs = self.procs(rec)
        started = time.monotonic()
        notes = self._stop_procs(procs, timeout=timeout)
        state.remove(profile.name, self.servers_dir)
        how = (
            f"stopped {len(procs)} processes in reverse order ({time.monotonic() - started:.1f} s)"
        )
        if notes:
            how += "; " + "; ".join(notes)
        return self._status(rec, ServerState.STOPPED, how)

    # -- status and logs ------------------------------------------------------------------------

    def status(self, profile: Profile) -> ServerStatus:
        rec = self.record(profile)
        if rec is None:
            return self._absent(profile, "not running (no record)")
        return self.status_of(rec)

    def status_of(self, rec: ServerRecord) -> ServerStatus:
        procs = self.procs(rec)
        dead = self._dead(procs)
        if dead:
            return self._status(
                rec,
                ServerState.FAILED,
                f"{len(dead)} of {len(procs)} node processes down: {self._dead_detail(dead)}. "
                f"`vllm-console down {rec.profile}` stops the rest",
            )
        if not rec.extra.get("serve", True):
            return self._status(rec, ServerState.READY, f"Ray cluster up ({len(procs)} nodes)")
        server = server_proc(procs)
        ok = health_in_netns(server.netns, rec.url) if server.netns else healthy(rec.url)
        if ok:
            return self._status(rec, ServerState.READY, f"ready at {rec.url} ({len(procs)} nodes)")
        return self._status(rec, ServerState.STARTING, f"starting ({len(procs)} node processes)")

    def logs(self, profile: Profile, *, follow: bool = False) -> Iterator[str]:
        rec = self.record(profile)
        if rec is None or not rec.log:
            raise ConsoleError(
                f"no running cluster of profile {profile.name}",
                hint=f"start it with `vllm-console up {profile.name}`",
            )
        reader = LogTail(Path(rec.log))
        procs = self.procs(rec)
        while True:
            yield from reader.read()
            # following ends when a node process ends (a cheap check, no HTTP)
            if not follow or self._dead(procs):
                yield from reader.flush()
                return
            time.sleep(POLL_S)


def health_in_netns(netns: str, url: str) -> bool:
    """``GET /health`` from inside ``netns`` (a server bound to the namespace's loopback)."""
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1] + '/health', timeout=3)\n"
        "    sys.exit(0 if r.status == 200 else 1)\n"
        "except Exception:\n"
        "    sys.exit(1)\n"
    )
    try:
        proc = subprocess.run(
            [*netns_argv(netns), "python3", "-c", code, url], capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0
