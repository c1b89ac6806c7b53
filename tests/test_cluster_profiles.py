"""Multi-node profiles: the per-node plan, its rendering and the cluster lint rules.

Pure functions over profiles (no nodes start here); the real two-node runs are
tests/test_cluster_ray.py and tests/test_cluster_vllm.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console.cli import main
from console.profiles import Profile, load_profile, nodes
from console.profiles.catalogue import shipped
from console.profiles.lint import lint
from console.profiles.loader import ProfileError, deep_merge, load_file
from console.profiles.render import display_value, resolver

PRESET = "gemma4-26b-mtp-2node"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))


def filled(**changes: Any) -> Profile:
    """The preset with its placeholders filled (two Sparks on 192.168.100.0/24)."""
    data = load_profile(PRESET).model_dump()
    data["cluster"]["nodes"][0].update(address="192.168.100.10", interface="enp1s0f0np0")
    data["cluster"]["nodes"][1].update(
        address="192.168.100.11", interface="enp1s0f0np0", docker_host="ssh://me@spark-b"
    )
    return Profile.model_validate(deep_merge(data, changes))


def found(rule_id: str, profile: Profile) -> list[Any]:
    return [f for f in lint(profile, catalogue=shipped()) if f.rule_id == rule_id]


def test_render_docker_shows_head_worker_ray_tp2_and_interfaces(capsys) -> None:
    assert main(["profiles", "render", PRESET, "--as", "docker"]) == 0
    out = capsys.readouterr().out
    worker = out.index("# worker spark-b")
    head = out.index("# head spark-a")
    serve = out.index("docker exec vllm-gemma4-26b-2node-spark-a vllm")
    assert head < worker < serve  # Ray: the head (GCS), the workers, the server on the head
    assert "docker -H 'ssh://<USER>@<SPARK_B_HOST>' run -d" in out
    assert out.count("--network host") == 2 and out.count("--ipc=host") == 2
    assert out.count("--entrypoint ray") == 2 and out.count("--gpus all") == 2
    assert "--head" in out and "--port=6379" in out
    assert "'--address=<SPARK_A_CLUSTER_IP>:6379'" in out
    for var in ("VLLM_HOST_IP", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
        assert out.count(f"-e '{var}=") == 2, var
    tail = out[serve:]
    assert "--tensor-parallel-size 2" in tail and "--distributed-executor-backend ray" in tail
    assert '"num_speculative_tokens":4' in tail and "~/.cache/huggingface" in out


def test_check_flags_every_unfilled_placeholder(capsys) -> None:
    assert main(["profiles", "check", PRESET, "--no-probe", "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)[0]["findings"]
    fields = sorted(f["field"] for f in findings if f["rule_id"] == "cluster-placeholder")
    assert fields == [
        "cluster.nodes[0].address",
        "cluster.nodes[0].interface",
        "cluster.nodes[1].address",
        "cluster.nodes[1].docker_host",
        "cluster.nodes[1].interface",
    ]
    assert found("cluster-placeholder", filled()) == []


def test_vllm_executor_plan_ranks_and_headless() -> None:
    profile = filled(cluster={"backend": "vllm", "master_port": 29600})
    plan = nodes.launches(profile, display_value)
    head, worker = plan
    assert (head.rank, head.role, worker.rank, worker.role) == (0, "head", 1, "worker")
    for launch in plan:
        args = launch.args
        assert args[:2] == ["serve", "nvidia/Gemma-4-26B-A4B-NVFP4"]
        assert args[args.index("--nnodes") + 1] == "2"
        assert args[args.index("--node-rank") + 1] == str(launch.rank)
        assert args[args.index("--master-addr") + 1] == "192.168.100.10"
        assert args[args.index("--master-port") + 1] == "29600"
        assert args[args.index("--distributed-executor-backend") + 1] == "mp"
        assert launch.env["VLLM_HOST_IP"] == launch.node.address
        assert launch.env["GLOO_SOCKET_IFNAME"] == "enp1s0f0np0"
    assert "--headless" in worker.args and "--headless" not in head.args
    shown = nodes.render_docker(profile)  # vLLM: the followers first, then rank 0
    assert shown.index("# worker spark-b") < shown.index("# head spark-a")
    assert "--nnodes 2" in shown and "--headless" in shown and "ray" not in shown.split()
    assert "--port" in head.args and "--port" not in worker.args


def test_render_argv_lists_each_node(capsys) -> None:
    assert main(["profiles", "render", PRESET, "--as", "argv", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["node"], r["role"], r["program"]) for r in rows] == [
        ("spark-a", "head", "ray"),
        ("spark-b", "worker", "ray"),
        ("spark-a", "server", "vllm"),
    ]


def test_interface_and_address_missing() -> None:
    profile = filled(cluster={"nodes": [{"name": "a"}, {"name": "b", "address": "10.0.0.2"}]})
    hits = {(f.field, f.severity) for f in found("cluster-interface", profile)}
    assert hits == {
        ("cluster.nodes[0].interface", "error"),
        ("cluster.nodes[0].address", "error"),
        ("cluster.nodes[1].interface", "error"),
    }


def test_tp_times_pp_must_match_gpus() -> None:
    assert found("cluster-gpus", filled()) == []
    wrong = found("cluster-gpus", filled(serve={"engine_args": {"tensor-parallel-size": 4}}))
    assert len(wrong) == 1 and "is 4, but the nodes have 2 GPUs" in wrong[0].message
    pp = filled(serve={"engine_args": {"tensor-parallel-size": 1, "pipeline-parallel-size": 2}})
    assert found("cluster-gpus", pp) == []


def test_images_differing_between_nodes() -> None:
    profile = filled()
    data = profile.model_dump()
    data["cluster"]["nodes"][1]["image"] = "vllm/vllm-openai:v0.32.0"
    hits = found("cluster-images-differ", Profile.model_validate(data))
    assert len(hits) == 1 and hits[0].severity == "warning"
    assert found("cluster-images-differ", profile) == []


def cpu_cluster(tmp_path: Path, backend: str, address: str = "127.0.0.1") -> Profile:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""
name: c
runtime: local
serve: {{model: m, local: {{runtime: cpu}}, engine_args: {{tensor-parallel-size: 2}}}}
cluster:
  backend: {backend}
  nodes:
    - {{name: a, address: {address}, interface: lo, gpus: 0}}
    - {{name: b, address: 127.0.0.2, interface: lo, gpus: 0}}
"""
    )
    return load_file(path)


def test_ray_on_the_cpu_build_is_refused(tmp_path: Path) -> None:
    hits = found("cluster-ray-refused", cpu_cluster(tmp_path, "ray"))
    assert len(hits) == 1 and "does not support ray" in hits[0].message
    assert found("cluster-ray-refused", cpu_cluster(tmp_path, "vllm")) == []
    assert found("cluster-ray-refused", filled()) == []


def test_head_address_must_be_where_the_head_runs(tmp_path: Path) -> None:
    assert found("cluster-head-unreachable", cpu_cluster(tmp_path, "vllm")) == []
    away = found("cluster-head-unreachable", cpu_cluster(tmp_path, "vllm", "192.0.2.77"))
    assert len(away) == 1 and "has no address 192.0.2.77" in away[0].message
    bad = found("cluster-head-unreachable", cpu_cluster(tmp_path, "vllm", "not-an-ip"))
    assert len(bad) == 1 and "is not an IP address" in bad[0].message
    # the preset's head runs here (no docker_host): this machine is not 192.168.100.10
    assert len(found("cluster-head-unreachable", filled())) == 1
    # a head on another machine (docker_host) cannot be checked from here
    data = filled().model_dump()
    data["cluster"]["nodes"][0]["docker_host"] = "ssh://me@spark-a"
    assert found("cluster-head-unreachable", Profile.model_validate(data)) == []


def test_flags_the_plan_sets_itself_and_netns_on_docker() -> None:
    hits = found("cluster-managed-flag", filled(serve={"engine_args": {"nnodes": 2}}))
    assert [f.field for f in hits] == ["serve.engine_args.nnodes"]
    data = filled().model_dump()
    data["cluster"]["nodes"][0]["netns"] = "ns-a"
    hits = found("cluster-netns", Profile.model_validate(data))
    assert [f.field for f in hits] == ["cluster.nodes[0].netns"]


def test_cluster_schema_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("name: one\nruntime: local\nserve: {model: m}\ncluster: {nodes: [{name: a}]}\n")
    with pytest.raises(ProfileError) as err:
        load_file(path)
    assert "cluster.nodes" in str(err.value) and "at least 2" in str(err.value)
    path.write_text(
        "name: one\nruntime: local\nserve: {model: m}\ncluster: {nodes: [{name: a}, {name: a}]}\n"
    )
    with pytest.raises(ProfileError, match="node names must differ"):
        load_file(path)


def test_missing_secret_fails_before_any_node_starts(tmp_path: Path, monkeypatch) -> None:
    import sys

    from console.errors import ConsoleError
    from console.runtime.cluster import ClusterRuntime

    monkeypatch.delenv("CLUSTER_TEST_KEY", raising=False)
    path = tmp_path / "s.yaml"
    path.write_text(
        f"""
name: s
runtime: local
serve:
  model: m
  port: 18999
  local: {{python: {sys.executable}}}
  engine_args: {{tensor-parallel-size: 2, api-key: "${{CLUSTER_TEST_KEY}}"}}
cluster:
  backend: vllm
  nodes:
    - {{name: a, address: 127.0.0.1, interface: lo, gpus: 0}}
    - {{name: b, address: 127.0.0.1, interface: lo, gpus: 0}}
"""
    )
    runtime = ClusterRuntime(state_dir=tmp_path / "state")
    with pytest.raises(ConsoleError, match="CLUSTER_TEST_KEY"):
        runtime.up(load_file(path))
    assert runtime.record("s") is None and not (tmp_path / "state" / "logs").exists()
    # set, it reaches the argv of every rank
    plan = nodes.launches(load_file(path), resolver({"CLUSTER_TEST_KEY": "k-123"}))
    assert all("k-123" in p.args for p in plan)
