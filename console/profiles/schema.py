"""The profile schema: what to build and how to launch one vLLM server.

A profile is YAML under ``profiles/`` (shipped) or the user's config folder.
Field names mirror what users already write by hand (docker run options,
``vllm serve`` flags), so the seed's command maps onto it one to one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PipStep(_Strict):
    """One ``pip install`` in the image, e.g. transformers from a tarball URL."""

    packages: list[str]
    """Requirement specifiers, URLs or paths (relative to the profile file)."""
    upgrade: bool = True
    no_deps: bool = False
    label: str | None = None
    """Provenance label value, e.g. ``transformers=main``."""


class Patch(_Strict):
    """A vLLM change applied to the installed package in the image."""

    pr: int | None = None
    """vLLM pull request number, fetched as a diff at ``commit``."""
    commit: str | None = None
    """PR head commit the diff is taken at (pinned for reproducibility)."""
    file: str | None = None
    """A local patch file instead of a PR (relative to the profile file)."""
    checkout: str | None = None
    """A local vLLM checkout whose diff against ``base`` is applied."""
    base: str | None = None
    """Commit the PR branch forked from; with ``commit`` it pins the whole PR diff
    (``compare/BASE...COMMIT.diff``) instead of one commit's."""
    url: str | None = None
    """An explicit diff URL (overrides ``pr``/``commit``)."""
    repo: str = "vllm-project/vllm"
    strip: int = 1


class ImageSpec(_Strict):
    """The server image (docker runtime): a stock image run as it is, or one built on it."""

    base: str
    """Base image, e.g. ``vllm/vllm-openai:v0.20.0``; run directly when nothing is built."""
    tag: str | None = None
    """Tag the built image gets (required when there is something to build)."""
    vllm_ref: str | None = None
    """vLLM release or commit the base image carries (recorded as a label)."""
    patches: list[Patch] = Field(default_factory=list)
    pip: list[PipStep] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    """Extra Dockerfile instructions, verbatim (e.g. ``RUN apt-get ...``)."""
    ca_certificates: list[str] = Field(default_factory=list)
    """Extra CA certificate files copied in (builds behind a TLS-intercepting proxy)."""
    entrypoint: list[str] | None = None
    workdir: str | None = None
    network_mode: str = "host"
    """Build network: ``host`` by default so pip in RUN steps reaches its index."""
    build_args: dict[str, str] = Field(default_factory=dict)

    @property
    def needs_build(self) -> bool:
        """True when the recipe changes the base image; a stock image runs as it is."""
        return bool(
            self.patches
            or self.pip
            or self.steps
            or self.ca_certificates
            or self.build_args
            or self.entrypoint is not None
            or self.workdir
        )

    @property
    def run_image(self) -> str:
        """The image the container starts from: the built tag, or the stock base."""
        if self.needs_build and self.tag:
            return self.tag
        return self.base

    @model_validator(mode="after")
    def _tag_when_built(self) -> ImageSpec:
        if self.needs_build and not self.tag:
            raise ValueError(
                "image.tag is required when the image is built (patches, pip, steps, "
                "ca_certificates, build_args, entrypoint or workdir); a stock image needs none"
            )
        return self


class ContainerSpec(_Strict):
    """``docker run`` options for the server container."""

    name: str | None = None
    gpus: str | None = None
    """``all``, a count, or ``device=0,1``; None for no GPU request."""
    ipc: str | None = None
    network: str | None = None
    shm_size: str | None = None
    cap_add: list[str] = Field(default_factory=list)
    ports: dict[str, Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=dict)


class LocalSpec(_Strict):
    """Where a local (non-container) server's Python comes from."""

    runtime: str | None = "cpu"
    """A console-managed runtime (``vllm-console runtime install cpu``), or None."""
    python: str | None = None
    """Any existing Python with vLLM importable (overrides ``runtime``)."""
    vllm: str | None = None
    """Any existing ``vllm`` executable (uses ``vllm serve``)."""
    managed_model: str | None = None
    """A console-managed model (``vllm-console model fetch NAME``) used as ``--model``."""


def _scalar_to_str(value: Any) -> Any:
    """YAML reads ``VAR: 1`` as an int; env values are strings to the process."""
    if isinstance(value, dict):
        return {
            k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in value.items()
        }
    return value


class ServeSpec(_Strict):
    """How ``vllm serve`` is launched."""

    model: str
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    speculative_config: dict[str, Any] | None = None
    engine_args: dict[str, Any] = Field(default_factory=dict)
    """Flag (without ``--``) to value; ``true`` is a bare flag, ``false`` is ``--no-<flag>``."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment; a value ``${VAR}`` is taken from the console's environment (secrets)."""
    volumes: list[str] = Field(default_factory=list)
    """``host:container[:mode]``; ``~`` expands on the host."""
    container: ContainerSpec = Field(default_factory=ContainerSpec)
    local: LocalSpec = Field(default_factory=LocalSpec)

    _env_to_str = field_validator("env", mode="before")(_scalar_to_str)

    @field_validator("engine_args", mode="before")
    @classmethod
    def _canonical_flags(cls, value: Any) -> Any:
        """``--max_model_len``, ``max_model_len`` and ``max-model-len`` are one flag."""
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, val in value.items():
            name = str(key).lstrip("-").replace("_", "-")
            if name in out:
                raise ValueError(f"flag {name!r} is given twice (as {key!r})")
            out[name] = val
        return out


class NodeSpec(_Strict):
    """One machine of a multi-node server (a DGX Spark, a GPU box, or a network
    namespace in tests). The first node in ``cluster.nodes`` is the head."""

    name: str
    """Short label, used in container names, log files and the cluster view."""
    address: str | None = None
    """The node's address on the cluster link (``VLLM_HOST_IP``, Ray's
    ``--node-ip-address``; the head's is the followers' ``--master-addr``)."""
    interface: str | None = None
    """The cluster NIC's name: ``NCCL_SOCKET_IFNAME`` and ``GLOO_SOCKET_IFNAME``."""
    docker_host: str | None = None
    """Where the node's container runs (``ssh://user@host``); None: this machine."""
    netns: str | None = None
    """Local nodes only: run inside this network namespace (``ip netns exec``)."""
    gpus: int = Field(default=1, ge=0)
    """GPUs this node contributes (TP x PP must equal the sum over the nodes)."""
    image: str | None = None
    """Override of ``image.tag`` for this node (lint warns when nodes differ)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for this node only (e.g. ``NCCL_IB_HCA``)."""

    _env_to_str = field_validator("env", mode="before")(_scalar_to_str)


class ClusterSpec(_Strict):
    """One model served across several nodes: Ray (what the Spark recipes use) or
    vLLM's own multi-node executor (``--nnodes``/``--node-rank``/``--headless``)."""

    backend: Literal["ray", "vllm"] = "ray"
    nodes: list[NodeSpec] = Field(min_length=2)
    """Head first, then the workers (started before the head's server)."""
    ray_port: int = 6379
    """The head's GCS port (``ray start --head --port``)."""
    master_port: int = 29501
    """vLLM executor: the head's rendezvous port (``--master-port``)."""
    ray_args: list[str] = Field(default_factory=list)
    """Extra ``ray start`` arguments on every node (e.g. ``--num-cpus=1``)."""
    ray_head_args: list[str] = Field(default_factory=list)
    """Extra ``ray start`` arguments on the head only (e.g. ``--include-dashboard=false``)."""

    @field_validator("nodes")
    @classmethod
    def _unique_names(cls, nodes: list[NodeSpec]) -> list[NodeSpec]:
        names = [n.name for n in nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"node names must differ (repeated: {', '.join(dup)})")
        return nodes

    @property
    def head(self) -> NodeSpec:
        return self.nodes[0]


class Profile(_Strict):
    name: str
    description: str = ""
    extends: str | None = None
    """The parent profile this one was merged over (set by the loader)."""
    lint_ignore: list[str] = Field(default_factory=list)
    """Lint rule ids not to report for this profile (e.g. a flag only an old vLLM has)."""
    runtime: Literal["docker", "local"]
    docker_host: str | None = None
    """The Docker engine (docker runtime): ``ssh://user@host[:port]``, ``tcp://…`` or a
    unix socket; None means ``DOCKER_HOST`` or the default socket."""
    image: ImageSpec | None = None
    serve: ServeSpec
    cluster: ClusterSpec | None = None
    """Several nodes serve this one model (see docs/multi-node.md)."""
    source: str | None = Field(default=None, exclude=True)
    """File the profile came from (set by the loader)."""

    @field_validator("docker_host")
    @classmethod
    def _engine_address(cls, value: str | None) -> str | None:
        from console.runtime.enginehost import check_host

        if value is None:
            return None
        try:
            return check_host(value)
        except Exception as exc:  # ConsoleError -> pydantic's ValueError with the text
            raise ValueError(getattr(exc, "message", str(exc))) from None

    @property
    def url(self) -> str:
        """Where the console reaches the server. A server bound to every address on a
        remote engine is reached by that machine's name; one bound to loopback there
        through an ``ssh -L`` tunnel, i.e. on our loopback."""
        from console.runtime.enginehost import engine_hostname

        host = self.serve.host
        if host in ("0.0.0.0", "::", ""):
            remote = engine_hostname(self.docker_host) if self.runtime == "docker" else None
            host = remote or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.serve.port}"
