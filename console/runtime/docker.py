"""The server as a Docker container: create from the profile, watch it come up,
stop it, re-attach to it later.

Containers carry labels (``vllm-console.server=<profile>``) so any console,
started any time, finds the server again. They are not ``--rm``: the log of a
failed start stays readable (``vllm-console logs NAME``) and is also copied to
a file under the state folder, as is the log of every stopped server.

Failures users hit are turned into one clear message that leaves nothing
half-created: a container of someone else with the same name (409), a GPU
request on an engine without the NVIDIA runtime, an image not built yet, an
engine that is down.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors
import httpx
from docker.types import DeviceRequest

from console import paths
from console.errors import ConsoleError
from console.logs import READY_LINE, LogParser, Ready, engine_death, failure_reason, worst_failure
from console.profiles.container import container_run
from console.profiles.redaction import api_key_to_env
from console.profiles.render import container_name
from console.profiles.schema import Profile
from console.runtime import health
from console.runtime.base import Leftover, LineCallback, ServerState, ServerStatus
from console.runtime.dockerclient import connect, daemon_down, engine_address, engine_hostname
from console.runtime.dockerlogs import LogFollower, follow_lines, parse_engine_time

LABEL_SERVER = "vllm-console.server"
LABEL_URL = "vllm-console.url"
LABEL_LOG = "vllm-console.log"
LABEL_STARTED = "vllm-console.started-at"
LABEL_SOURCE = "vllm-console.profile-source"
IMAGE_LABEL_PREFIX = "vllm-console."
HEALTH_TIMEOUT_S = 2.0
CHECK_EVERY_S = 1.0
READY_GRACE_S = 2.0


def _parse_gpus(spec: str) -> DeviceRequest:
    """``all``, a count, or ``device=0,1`` (what ``docker run --gpus`` takes)."""
    spec = spec.strip()
    if spec == "all":
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    if spec.isdigit():
        return DeviceRequest(count=int(spec), capabilities=[["gpu"]])
    if spec.startswith("device="):
        ids = [d.strip() for d in spec.removeprefix("device=").strip("\"'").split(",") if d]
        return DeviceRequest(device_ids=ids, capabilities=[["gpu"]])
    raise ConsoleError(
        f"serve.container.gpus: {spec!r} is not understood",
        hint="use all, a count (e.g. 2) or device=0,1",
    )


def _volumes(profile: Profile) -> list[str]:
    """``host:container[:mode]`` with ``~`` and profile-relative host paths resolved."""
    base = Path(profile.source).parent if profile.source else Path.cwd()
    out: list[str] = []
    for index, spec in enumerate(profile.serve.volumes):
        host, sep, rest = spec.partition(":")
        if not sep or not rest:
            raise ConsoleError(
                f"profile {profile.name}: serve.volumes[{index}] {spec!r} is not host:container"
            )
        named = not host.startswith(("/", "~", "."))
        if not named:
            path = Path(host).expanduser()
            if not path.is_absolute():
                path = (base / path).resolve()
            mode = rest.partition(":")[2]
            # On a remote engine the path is on that machine: nothing to check here.
            remote = engine_hostname(profile.docker_host) is not None
            if "ro" in mode.split(",") and not remote and not path.exists():
                raise ConsoleError(
                    f"profile {profile.name}: serve.volumes[{index}]: {path} does not exist "
                    "(a read-only mount of a missing folder would be empty)",
                    hint="fetch the model first or fix the path",
                )
            host = str(path)
        out.append(f"{host}:{rest}")
    return out


def _host_port(profile: Profile) -> tuple[str, int]:
    """Where the server answers from the console's machine: a published port (on
    loopback: through an ``ssh -L`` tunnel for a remote engine), else serve.host/port,
    where "every address" on a remote engine means that engine's machine."""
    container_port = str(profile.serve.port)
    for key, host_port in profile.serve.container.ports.items():
        if key.split("/")[0] == container_port:
            return "127.0.0.1", int(host_port)
    host = profile.serve.host
    if host in ("0.0.0.0", "::", ""):
        host = engine_hostname(profile.docker_host) or "127.0.0.1"
    return host, profile.serve.port


def server_url(profile: Profile) -> str:
    host, port = _host_port(profile)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _health(url: str, client: httpx.Client | None = None) -> bool:
    """/health answers 200. Pass a long-lived client in loops: a new one loads the CA
    bundle each time, which costs ~0.3 s of CPU (and the GIL) per call."""
    from console.server_client import check_health

    return check_health(url, http=client).ok


def _short_api_error(exc: docker.errors.APIError) -> str:
    text = exc.explanation if isinstance(exc.explanation, str) else str(exc)
    return (text or str(exc)).strip()


class DockerRuntime:
    """``ServerRuntime`` on one Docker engine: ``host`` (a profile's ``docker_host``,
    e.g. ``ssh://me@gpu-box``), else ``DOCKER_HOST`` or the default socket."""

    name = "docker"

    def __init__(self, client: Any = None, *, host: str | None = None) -> None:
        self._client = client
        self.host = host

    # -- plumbing --------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(host=self.host)
        return self._client

    @property
    def address(self) -> str:
        """The engine this runtime drives (for messages)."""
        return engine_address(self.host)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an SDK call, turning a vanished engine into the daemon-down message."""
        try:
            return fn(*args, **kwargs)
        except (docker.errors.NotFound, docker.errors.APIError, ConsoleError):
            raise
        except docker.errors.DockerException as exc:
            raise daemon_down(exc, self.host) from None
        except (OSError, httpx.HTTPError) as exc:
            raise daemon_down(exc, self.host) from None
        except Exception as exc:  # requests' ConnectionError and friends
            if "connection" in type(exc).__name__.lower():
                raise daemon_down(exc, self.host) from None
            raise

    def find(self, profile: Profile) -> Any | None:
        """The container serving ``profile`` (by label), newest first."""
        found = self._call(
            self.client.containers.list,
            all=True,
            filters={"label": f"{LABEL_SERVER}={profile.name}"},
        )
        if not found:
            return None
        return max(found, key=lambda c: c.attrs.get("Created", ""))

    def _by_name(self, name: str) -> Any | None:
        try:
            return self._call(self.client.containers.get, name)
        except docker.errors.NotFound:
            return None

    def _log_path(self, profile: Profile) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return paths.ensure(paths.logs_dir()) / f"docker-{profile.name}-{stamp}.log"

    def _save_log(self, container: Any) -> Path | None:
        """Copy the container's whole log to its file (the label says where)."""
        target = container.labels.get(LABEL_LOG)
        if not target:
            return None
        path = Path(target)
        try:
            data = container.logs(stdout=True, stderr=True)
        except docker.errors.APIError:
            return path if path.exists() else None
        paths.ensure(path.parent)
        path.write_bytes(data)
        return path

    def _image_labels(self, container: Any) -> dict[str, str]:
        try:
            labels = container.image.labels or {}
        except docker.errors.APIError:  # image removed under a running container
            labels = {}
        return {k: v for k, v in labels.items() if k.startswith(IMAGE_LABEL_PREFIX)}

    def _status(self, profile: Profile, container: Any, state: ServerState, detail: str = ""):
        log = container.labels.get(LABEL_LOG)
        return ServerStatus(
            profile=profile.name,
            runtime=self.name,
            state=state,
            url=container.labels.get(LABEL_URL) or server_url(profile),
            container_id=container.id,
            log_path=Path(log) if log else None,
            detail=detail,
            image=self._image_labels(container),
        )

    def _failure_detail(self, container: Any) -> str:
        state = container.attrs.get("State", {})
        code = state.get("ExitCode")
        parts = [f"container exited with status {code}"]
        if state.get("OOMKilled"):
            parts.append("killed by the kernel: out of memory")
        try:
            text = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
        except docker.errors.APIError:
            text = ""
        best = worst_failure(text.splitlines())
        if best is not None:
            parts.append(best.message)
        elif text.strip():
            parts.append("last line: " + text.strip().splitlines()[-1][:300])
        return "; ".join(parts)

    # -- ServerRuntime ---------------------------------------------------------------------

    def status(self, profile: Profile) -> ServerStatus:
        container = self.find(profile)
        if container is None:
            other = self._by_name(container_name(profile))
            if other is not None:
                return ServerStatus(
                    profile=profile.name,
                    runtime=self.name,
                    state=ServerState.STALE,
                    container_id=other.id,
                    detail=f"a container named {other.name} ({other.status}) exists but was not "
                    "started by vllm-console for this profile",
                )
            return ServerStatus(profile=profile.name, runtime=self.name, state=ServerState.ABSENT)
        if container.status in ("running", "restarting"):
            return self._running_status(profile, container)
        if container.status == "created":
            return self._status(profile, container, ServerState.STOPPED, "created, not started")
        self._save_log(container)
        return self._status(profile, container, ServerState.FAILED, self._failure_detail(container))

    def _running_status(self, profile: Profile, container: Any) -> ServerStatus:
        """A running container is READY, STARTING, or FAILED with evidence: /health
        503 (engine dead), or nothing listening any more after the log said ready
        (the API server died; the container lives on in its other processes)."""
        url = container.labels.get(LABEL_URL) or server_url(profile)
        answer = health.probe(url)
        if answer.ok:
            return self._status(profile, container, ServerState.READY)
        if answer.code != 503 and not answer.refused:
            return self._status(profile, container, ServerState.STARTING, answer.describe())
        try:
            text = self._call(container.logs, stdout=True, stderr=True, tail=2000)
            lines = text.decode("utf-8", errors="replace").splitlines()
        except docker.errors.APIError:
            lines = []
        if answer.code == 503:
            cause = engine_death(lines) or failure_reason(lines)
            return self._status(
                profile,
                container,
                ServerState.FAILED,
                f"the container runs but its engine is dead (/health 503): {cause}. "
                f"`vllm-console down {profile.name}` stops it",
            )
        if not any(READY_LINE in line for line in lines):
            return self._status(profile, container, ServerState.STARTING, answer.describe())
        left = self._processes(container)
        return replace(
            self._status(
                profile,
                container,
                ServerState.FAILED,
                f"the container still runs but its API server is gone ({answer.describe()} "
                f"at {url}, after the log said ready)"
                + (": left running " + ", ".join(x.describe() for x in left) if left else "")
                + f". `vllm-console down {profile.name}` stops it",
            ),
            leftovers=left,
        )

    def _processes(self, container: Any) -> tuple[Leftover, ...]:
        """The container's processes with their memory (``docker top``)."""
        try:
            top = self._call(container.top, ps_args="-o pid,rss,args")
        except (docker.errors.APIError, ConsoleError):
            return ()
        out: list[Leftover] = []
        for row in top.get("Processes") or []:
            with contextlib.suppress(ValueError, IndexError):
                out.append(Leftover(int(row[0]), row[2][:60], int(row[1]) * 1024))
        return tuple(out)

    def up(
        self,
        profile: Profile,
        *,
        on_line: LineCallback | None = None,
        wait: bool = True,
        timeout: float = 600.0,
    ) -> ServerStatus:
        container = self.find(profile)
        if container is not None and container.status in ("running", "restarting"):
            # Already up: re-attach instead of starting a second server.
            if wait:
                return self._wait(profile, container, on_line=on_line, timeout=timeout)
            return self.status(profile)
        image = self._require_image(profile)
        name = container_name(profile)
        if container is not None:  # ours, exited or never started: keep its log, replace it
            self._save_log(container)
            with contextlib.suppress(docker.errors.NotFound):
                self._call(container.remove, force=True)
        other = self._by_name(name)
        if other is not None:
            raise self._name_conflict(profile, other)
        container = self._create(profile, image, name)
        try:
            self._call(container.start)
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            raise self._start_error(profile, exc) from None
        container.reload()
        if not wait:
            return self._status(profile, container, ServerState.STARTING)
        return self._wait(profile, container, on_line=on_line, timeout=timeout)

    def down(self, profile: Profile, *, timeout: float = 10.0) -> ServerStatus:
        container = self.find(profile)
        if container is None:
            return ServerStatus(profile=profile.name, runtime=self.name, state=ServerState.ABSENT)
        with contextlib.suppress(docker.errors.NotFound):
            if container.status in ("running", "restarting", "paused"):
                self._call(container.stop, timeout=max(1, round(timeout)))
            container.reload()
        status = self._status(profile, container, ServerState.STOPPED)
        self._save_log(container)
        with contextlib.suppress(docker.errors.NotFound):
            self._call(container.remove, force=True)
        return status

    def logs(self, profile: Profile, *, follow: bool = False) -> Iterator[str]:
        container = self.find(profile)
        if container is None:
            yield from self._saved_log_lines(profile)
            return
        yield from follow_lines(container, follow=follow)

    def servers(self) -> list[ServerStatus]:
        """Every server container any console started on this engine (re-attach)."""
        from console.profiles import load_profile

        out: list[ServerStatus] = []
        found = self._call(self.client.containers.list, all=True, filters={"label": LABEL_SERVER})
        for container in found:
            name = container.labels[LABEL_SERVER]
            source = container.labels.get(LABEL_SOURCE)
            try:
                ref = source if source and Path(source).is_file() else name
                out.append(self.status(load_profile(ref)))
            except ConsoleError:
                out.append(
                    ServerStatus(
                        profile=name,
                        runtime=self.name,
                        state=ServerState.STALE,
                        container_id=container.id,
                        url=container.labels.get(LABEL_URL),
                        detail="its profile is no longer available",
                    )
                )
        return out

    # -- pieces of up ----------------------------------------------------------------------

    def _require_image(self, profile: Profile) -> Any:
        if profile.image is None:
            raise ConsoleError(
                f"profile {profile.name}: a docker-runtime profile needs an 'image' section"
            )
        ref = profile.image.run_image
        try:
            return self._call(self.client.images.get, ref)
        except docker.errors.ImageNotFound:
            if profile.image.needs_build:
                raise self._missing_image(profile) from None
        # A stock image: pulled the way `docker run` would (one pull, its own errors).
        try:
            return self._call(self.client.images.pull, ref)
        except docker.errors.APIError as exc:
            raise ConsoleError(
                f"stock image {ref} of profile {profile.name} is not on the engine at "
                f"{self.address} and could not be pulled: {_short_api_error(exc)}",
                hint=f"docker pull {ref} (or docker load it), then start again",
            ) from None

    def _create(self, profile: Profile, image: Any, name: str) -> Any:
        run = container_run(profile)  # the spec `profiles render --as docker` shows
        # The key goes in the environment: container argv shows in the host's `ps`.
        command, key_env = api_key_to_env(run.argv)
        kwargs: dict[str, Any] = {
            "image": image.id,
            "command": command,
            "name": name,
            "detach": True,
            "environment": {**run.env, **key_env},
            "volumes": _volumes(profile),
            "labels": {
                LABEL_SERVER: profile.name,
                LABEL_URL: server_url(profile),
                LABEL_LOG: str(self._log_path(profile)),
                LABEL_STARTED: datetime.now(UTC).isoformat(timespec="seconds"),
                LABEL_SOURCE: profile.source or "",
            },
        }
        if run.gpus:
            kwargs["device_requests"] = [_parse_gpus(run.gpus)]
        if run.ipc:
            kwargs["ipc_mode"] = run.ipc
        if run.network:
            kwargs["network_mode"] = run.network
        if run.shm_size:
            kwargs["shm_size"] = run.shm_size
        if run.cap_add:
            kwargs["cap_add"] = list(run.cap_add)
        if run.ports:
            kwargs["ports"] = {p.container_port: (p.host_ip, p.host_port) for p in run.ports}
        try:
            return self._call(self.client.containers.create, **kwargs)
        except docker.errors.ImageNotFound:
            raise self._missing_image(profile) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                other = self._by_name(name)
                if other is not None:
                    raise self._name_conflict(profile, other) from None
            raise ConsoleError(
                f"the engine at {self.address} refused to create the container for "
                f"{profile.name}: {_short_api_error(exc)}"
            ) from None

    def _missing_image(self, profile: Profile) -> ConsoleError:
        tag = profile.image.run_image if profile.image else "?"
        return ConsoleError(
            f"image {tag} is not on the engine at {self.address}",
            hint=f"build it first: vllm-console build {profile.name}",
        )

    def _name_conflict(self, profile: Profile, other: Any) -> ConsoleError:
        return ConsoleError(
            f"a container named {other.name} already exists ({other.status}, id "
            f"{other.short_id}) and was not started by vllm-console for profile {profile.name} "
            "(409 conflict); it was left untouched",
            hint=f"remove it (docker rm -f {other.name}) or set serve.container.name "
            "in the profile",
        )

    def _start_error(self, profile: Profile, exc: docker.errors.APIError) -> ConsoleError:
        text = _short_api_error(exc)
        if "could not select device driver" in text:
            gpus = profile.serve.container.gpus
            return ConsoleError(
                f"profile {profile.name} asks for GPUs (serve.container.gpus: {gpus}) but the "
                f"engine at {self.address} has no GPU runtime: {text}. The container "
                "was removed",
                hint="install the NVIDIA Container Toolkit on the GPU box and restart docker, "
                "or drop serve.container.gpus for a CPU-only server",
            )
        return ConsoleError(
            f"the container for {profile.name} failed to start: {text}. It was removed"
        )

    # -- watching it come up ---------------------------------------------------------------

    def _wait(
        self,
        profile: Profile,
        container: Any,
        *,
        on_line: LineCallback | None,
        timeout: float,
    ) -> ServerStatus:
        """Follow this run's log until ready (log event or /health 200) or exited."""
        url = container.labels.get(LABEL_URL) or server_url(profile)
        since = parse_engine_time(container.attrs.get("State", {}).get("StartedAt", ""))
        lines: queue.Queue[str | None] = queue.Queue()
        follower = LogFollower(container, follow=True, since=since, restarts=False)

        def reader() -> None:
            try:
                for line in follower:
                    lines.put(line)
            except Exception:  # the engine went away; the state check below reports it
                pass
            finally:
                lines.put(None)

        thread = threading.Thread(target=reader, name=f"logs-{profile.name}", daemon=True)
        thread.start()
        parser = LogParser()
        ready_logged = False
        healthy_at: float | None = None
        http = httpx.Client(timeout=HEALTH_TIMEOUT_S)
        # Lines go to the log file as they arrive (the full copy replaces it at the end).
        log_label = container.labels.get(LABEL_LOG)
        log_file = None
        if log_label:
            paths.ensure(Path(log_label).parent)
            log_file = Path(log_label).open("a", encoding="utf-8")  # noqa: SIM115 (closed below)
        user_on_line = on_line

        def on_line(line: str) -> None:
            if log_file is not None:
                log_file.write(line + "\n")
                log_file.flush()
            if user_on_line is not None:
                user_on_line(line)

        deadline = time.monotonic() + timeout
        next_check = 0.0
        try:
            while True:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = None
                if line is not None:
                    on_line(line)
                    events = parser.feed(line)
                    if any(isinstance(e, Ready) for e in events):
                        ready_logged = True
                        next_check = 0.0  # confirm with /health right away
                now = time.monotonic()
                if healthy_at is not None:
                    # Ready: pass on the start-up lines still in flight, briefly.
                    if ready_logged or now - healthy_at > READY_GRACE_S:
                        self._drain(lines, on_line, None)
                        return self._status(profile, container, ServerState.READY)
                    continue
                if now < next_check:
                    continue
                next_check = now + CHECK_EVERY_S
                try:
                    container.reload()
                except docker.errors.NotFound:
                    return ServerStatus(
                        profile=profile.name,
                        runtime=self.name,
                        state=ServerState.ABSENT,
                        detail="the container was removed while starting",
                    )
                if container.status in ("exited", "dead"):
                    self._drain(lines, on_line, thread)
                    self._save_log(container)
                    return self._status(
                        profile, container, ServerState.FAILED, self._failure_detail(container)
                    )
                if _health(url, http):
                    healthy_at = now
                    continue
                if now > deadline:
                    detail = (
                        f"the log says ready but {url}/health does not answer: check "
                        "serve.host, serve.port and serve.container.network/ports"
                        if ready_logged
                        else f"not ready after {timeout:.0f} s (still starting; "
                        f"follow with: vllm-console logs {profile.name} -f)"
                    )
                    return self._status(profile, container, ServerState.STARTING, detail)
        finally:
            follower.close()
            http.close()
            if log_file is not None:
                log_file.close()

    def _drain(
        self, lines: queue.Queue[str | None], on_line: LineCallback | None, thread: Any
    ) -> None:
        """Pass on the lines already read (after an exit: all of them)."""
        if thread is not None:
            thread.join(10)  # the reader ends with the container's log stream
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            if line is not None and on_line is not None:
                on_line(line)

    def _saved_log_lines(self, profile: Profile) -> Iterator[str]:
        logs = sorted(paths.logs_dir().glob(f"docker-{profile.name}-*.log"))
        if not logs:
            raise ConsoleError(
                f"no container and no saved log for profile {profile.name}",
                hint=f"start it: vllm-console up {profile.name}",
            )
        with logs[-1].open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                yield line.rstrip("\n")
