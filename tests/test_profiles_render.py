"""Rendering: exact server argv, the seed's docker run, the Dockerfile, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.errors import ConsoleError
from console.profiles import (
    MASK,
    build_context_files,
    display_argv,
    image_labels,
    load_file,
    load_profile,
    redact_argv,
    redact_env,
    redact_text,
    render_argv,
    render_docker_run,
    render_dockerfile,
    render_env,
    secret_values,
    with_overrides,
)

DATA = Path(__file__).parent / "data" / "profiles"
SEED_IMAGE = "<your-vllm-image-with-fixes>"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLLM_CONSOLE_DATA_DIR", "/data/vc")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the seed ----------------------------------------------------------------------------------


def test_mtp_docker_run_reproduces_the_seed_exactly() -> None:
    profile = load_profile("gemma4-26b-mtp")
    assert profile.image is not None
    seed = (DATA / "seed-launch.txt").read_text(encoding="utf-8").rstrip("\n")
    assert SEED_IMAGE in seed
    assert render_docker_run(profile) == seed.replace(SEED_IMAGE, profile.image.tag)


def test_mtp_container_args() -> None:
    assert render_argv(load_profile("gemma4-26b-mtp")) == [
        "nvidia/Gemma-4-26B-A4B-NVFP4",
        "--port", "8000", "--host", "0.0.0.0",
        "--gpu-memory-utilization", "0.55",
        "--kv-cache-dtype", "fp8",
        "--max-model-len", "262144",
        "--max-num-seqs", "4",
        "--max-num-batched-tokens", "16384",
        "--tensor-parallel-size", "1",
        "--enforce-eager",
        "--trust-remote-code",
        "--enable-chunked-prefill",
        "--enable-prefix-caching",
        "--no-enable-flashinfer-autotune",
        "--tool-call-parser", "gemma4",
        "--reasoning-parser", "gemma4",
        "--enable-auto-tool-choice",
        "--speculative-config",
        '{"method":"mtp","model":"google/gemma-4-26B-A4B-it-assistant","num_speculative_tokens":4}',
    ]  # fmt: skip


def test_baseline_is_the_seed_minus_speculative_config() -> None:
    mtp, base = load_profile("gemma4-26b-mtp"), load_profile("gemma4-26b-baseline")
    assert render_argv(base) == render_argv(mtp)[:-2]
    lines = render_docker_run(base).splitlines()
    assert lines[0].startswith("docker run -d --name vllm-gemma4-26b-baseline --gpus all")
    assert lines[-1] == "--enable-auto-tool-choice"


EXPECTED_DOCKERFILE = """\
# vllm-console profile: gemma4-26b-mtp
FROM vllm/vllm-openai:v0.20.0
RUN python3 -m pip install --no-cache-dir -U https://github.com/huggingface/transformers/archive/main.tar.gz
RUN command -v patch >/dev/null || (apt-get update && apt-get install -y --no-install-recommends patch && rm -rf /var/lib/apt/lists/*)
RUN set -eu; \\
    site="$(python3 -c 'import importlib.util, os; print(os.path.dirname(os.path.dirname(importlib.util.find_spec("vllm").origin)))')"; \\
    python3 -c 'import re, sys, urllib.request; text = urllib.request.urlopen(sys.argv[1]).read().decode(); parts = re.split(r"(?m)^(?=diff --git )", text); kept = [p for p in parts if p.startswith("diff --git a/vllm/")]; sys.exit("no vllm/ changes in " + sys.argv[1]) if not kept else None; open(sys.argv[2], "w").write("".join(kept))' https://github.com/vllm-project/vllm/compare/628c43630...5119058403.diff /tmp/vllm-patch-0.diff; \\
    patch -p1 --forward --batch -d "$site" -i /tmp/vllm-patch-0.diff
RUN python3 -c 'import transformers; print("transformers", transformers.__version__)'
ENTRYPOINT ["vllm","serve"]
CMD []
WORKDIR /vllm-workspace
LABEL vllm-console.profile="gemma4-26b-mtp" \\
      vllm-console.base="vllm/vllm-openai:v0.20.0" \\
      vllm-console.vllm-ref="v0.20.0" \\
      vllm-console.patches="vllm-project/vllm#41745@5119058403" \\
      vllm-console.pip="transformers=main"
"""  # noqa: E501


def test_mtp_dockerfile_exact() -> None:
    assert render_dockerfile(load_profile("gemma4-26b-mtp")) == EXPECTED_DOCKERFILE


def test_labels_record_provenance() -> None:
    labels = image_labels(load_profile("gemma4-26b-baseline"))
    assert labels["vllm-console.profile"] == "gemma4-26b-baseline"
    assert labels["vllm-console.patches"] == "vllm-project/vllm#41745@5119058403"


# --- local runtime -------------------------------------------------------------------------------


def test_cpu_argv_uses_managed_runtime_and_model() -> None:
    assert render_argv(load_profile("gemma3-270m-cpu")) == [
        "/data/vc/runtimes/cpu/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/data/vc/models/gemma3-270m",
        "--port", "8000", "--host", "127.0.0.1",
        "--served-model-name", "gemma3-270m",
        "--max-model-len", "2048",
        "--enforce-eager",
    ]  # fmt: skip


def test_ngram_argv_and_env() -> None:
    profile = load_profile("gemma3-270m-cpu-ngram")
    argv = render_argv(profile)
    assert argv[-2:] == [
        "--speculative-config",
        '{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_max":4}',
    ]
    assert render_env(profile, {}) == {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
    }


def test_with_overrides_changes_serve_fields_only() -> None:
    profile = load_profile("gemma3-270m-cpu")
    moved = with_overrides(profile, port=8123, host="127.0.0.2")
    assert (moved.serve.port, moved.serve.host) == (8123, "127.0.0.2")
    assert moved.url == "http://127.0.0.2:8123"
    assert moved.source == profile.source and moved.name == profile.name
    assert profile.serve.port == 8000  # the original is untouched
    assert render_argv(moved)[5:9] == ["--port", "8123", "--host", "127.0.0.2"]
    with pytest.raises(ConsoleError, match="invalid override"):
        with_overrides(profile, port="not-a-port")


def test_explicit_python_and_vllm_executable(tmp_path: Path) -> None:
    base = "runtime: local\nserve:\n  model: org/m\n  local:\n"
    p = load_file(write(tmp_path, "a.yaml", base + "    python: /opt/py/bin/python\n"))
    assert render_argv(p)[:5] == [
        "/opt/py/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/m"
    ]  # fmt: skip
    p = load_file(write(tmp_path, "b.yaml", base + "    vllm: /opt/v/bin/vllm\n"))
    assert render_argv(p)[:3] == ["/opt/v/bin/vllm", "serve", "org/m"]
    p = load_file(write(tmp_path, "c.yaml", base + "    runtime: null\n"))
    with pytest.raises(ConsoleError, match="runtime, python or vllm"):
        render_argv(p)


def test_flag_value_shapes(tmp_path: Path) -> None:
    p = load_file(
        write(
            tmp_path,
            "p.yaml",
            "runtime: local\nserve:\n  model: m\n  local: {python: py}\n  engine_args:\n"
            "    middleware: [a.B, c.D]\n"
            "    allowed-headers: [x, y]\n"
            "    compilation-config: {level: 0, cudagraph_sizes: [1, 2]}\n"
            "    enforce-eager: false\n"
            "    max-model-len: 4k\n",
        )
    )
    assert render_argv(p)[9:] == [
        "--middleware", "a.B", "--middleware", "c.D",  # argparse append: repeated
        "--allowed-headers", "x", "y",
        "--compilation-config", '{"level":0,"cudagraph_sizes":[1,2]}',
        "--no-enforce-eager",
        "--max-model-len", "4k",
    ]  # fmt: skip


def test_api_server_entrypoint_uses_model_flag(tmp_path: Path) -> None:
    p = load_file(
        write(
            tmp_path,
            "p.yaml",
            "runtime: docker\nimage:\n  base: b\n  tag: t\n"
            "  entrypoint: [python3, -m, vllm.entrypoints.openai.api_server]\n"
            "serve:\n  model: org/m\n",
        )
    )
    assert render_argv(p)[:2] == ["--model", "org/m"]
    assert "\n--model org/m \\\n" in render_docker_run(p)


# --- secrets ----------------------------------------------------------------------------------

SECRET_PROFILE = """\
runtime: docker
image: {base: b, tag: 't:1'}
serve:
  model: org/m
  container: {name: c}
  env:
    HF_TOKEN: ${HF_TOKEN}
    VLLM_API_KEY: ${MY_KEY}
    OPENAI_API_KEY: sk-literal-value
    PLAIN: visible
  engine_args:
    api-key: ${MY_KEY}
"""
ENV = {"HF_TOKEN": "hf_supersecret123", "MY_KEY": "key-abc-987"}


def test_render_env_resolves_references(tmp_path: Path) -> None:
    p = load_file(write(tmp_path, "s.yaml", SECRET_PROFILE))
    assert render_env(p, ENV) == {
        "HF_TOKEN": "hf_supersecret123",
        "VLLM_API_KEY": "key-abc-987",
        "OPENAI_API_KEY": "sk-literal-value",
        "PLAIN": "visible",
    }
    assert render_argv(p, ENV)[-2:] == ["--api-key", "key-abc-987"]


def test_missing_variable_names_field_and_variable(tmp_path: Path) -> None:
    p = load_file(write(tmp_path, "s.yaml", SECRET_PROFILE))
    with pytest.raises(
        ConsoleError, match=r"serve\.env\.HF_TOKEN needs the environment variable HF_TOKEN"
    ):
        render_env(p, {"MY_KEY": "x"})
    with pytest.raises(ConsoleError, match=r"serve\.engine_args\.api-key needs .* MY_KEY"):
        render_argv(p, {})


def test_printed_forms_never_show_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    p = load_file(write(tmp_path, "s.yaml", SECRET_PROFILE))
    run = render_docker_run(p)
    for secret in [*ENV.values(), "sk-literal-value"]:
        assert secret not in run
        assert secret not in " ".join(display_argv(p))
    assert "\n-e HF_TOKEN \\\n" in run  # docker takes it from the caller's environment
    assert '\n-e "VLLM_API_KEY=${MY_KEY}" \\\n' in run
    assert f"\n-e 'OPENAI_API_KEY={MASK}' \\\n" in run
    assert "\n-e PLAIN=visible \\\n" in run
    assert run.endswith('--api-key "${MY_KEY}"')

    secrets = secret_values(p)
    assert secrets == {"hf_supersecret123", "key-abc-987", "sk-literal-value"}
    shown = redact_argv(render_argv(p), secrets)
    assert shown[-2:] == ["--api-key", MASK]
    assert redact_argv(["--api-key=abc", "--x", "hf_supersecret123"], secrets) == [
        f"--api-key={MASK}",
        "--x",
        MASK,
    ]
    env = render_env(p)
    assert redact_env(env, p.serve.env) == {
        "HF_TOKEN": MASK,
        "VLLM_API_KEY": MASK,
        "OPENAI_API_KEY": MASK,
        "PLAIN": "visible",
    }
    assert redact_text("token=hf_supersecret123 ok", secrets) == f"token={MASK} ok"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("HUGGING_FACE_HUB_TOKEN", True),
        ("VLLM_API_KEY", True),
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET", True),
        ("DB_PASSWORD_FILE", True),
        ("api-key", True),
        ("VLLM_SKIP_P2P_CHECK", False),
        ("TORCH_CUDA_ARCH_LIST", False),
        ("HF_HUB_OFFLINE", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    from console.profiles import is_secret_name

    assert is_secret_name(name) is secret


# --- Dockerfile with local files ----------------------------------------------------------------


def test_dockerfile_local_files_and_steps(tmp_path: Path) -> None:
    (tmp_path / "corp.pem").write_text("cert")
    (tmp_path / "fix.diff").write_text("diff")
    p = load_file(
        write(
            tmp_path,
            "p.yaml",
            "runtime: docker\n"
            "image:\n"
            "  base: vllm/vllm-openai:v0.33.0\n"
            "  tag: me/v:1\n"
            "  ca_certificates: [corp.pem]\n"
            "  pip:\n"
            "    - packages: ['./wheels/transformers-5.8.0-py3-none-any.whl', 'accelerate>=1']\n"
            "      no_deps: true\n"
            "      upgrade: false\n"
            "  patches:\n"
            "    - file: fix.diff\n"
            "    - pr: 1\n"
            "      url: https://example.test/x.diff\n"
            "  steps: ['RUN echo hi']\n"
            "  build_args: {FOO: bar}\n"
            "serve:\n  model: m\n",
        )
    )
    lines = render_dockerfile(p).splitlines()
    assert lines[1:4] == [
        "FROM vllm/vllm-openai:v0.33.0",
        "ARG FOO",
        "COPY ca/corp.pem /usr/local/share/ca-certificates/corp.crt",
    ]
    text = render_dockerfile(p)
    assert "RUN update-ca-certificates\n" in text
    assert (
        "COPY pip/transformers-5.8.0-py3-none-any.whl "
        "/tmp/pip/transformers-5.8.0-py3-none-any.whl\n" in text
    )
    assert (
        "RUN python3 -m pip install --no-cache-dir --no-deps "
        "/tmp/pip/transformers-5.8.0-py3-none-any.whl 'accelerate>=1'\n"
    ) in text
    assert "COPY patches/0-fix.diff /tmp/vllm-patch-0.diff\n" in text
    assert "https://example.test/x.diff /tmp/vllm-patch-1.diff" in text
    assert "\nRUN echo hi\n" in text
    assert "ENTRYPOINT" not in text  # the base image's stays
    files = {f.dest: f for f in build_context_files(p)}
    assert files["ca/corp.pem"].source == tmp_path / "corp.pem"
    assert files["pip/transformers-5.8.0-py3-none-any.whl"].source == (
        tmp_path / "wheels/transformers-5.8.0-py3-none-any.whl"
    )
    assert files["patches/0-fix.diff"].kind == "file"


def test_gpu_device_list_is_quoted_for_docker(tmp_path: Path) -> None:
    p = load_file(
        write(
            tmp_path,
            "p.yaml",
            "runtime: docker\nimage: {base: b, tag: t}\n"
            "serve:\n  model: m\n  container: {gpus: 'device=0,1', shm_size: 8g}\n",
        )
    )
    first = render_docker_run(p).splitlines()[0]
    assert first == "docker run -d --name vllm-console-p --gpus '\"device=0,1\"' --shm-size=8g \\"


def test_unknown_home_directory_is_not_a_crash(tmp_path: Path) -> None:
    p = load_file(
        write(
            tmp_path,
            "p.yaml",
            "runtime: local\nimage: {base: b, tag: t, pip: [{packages: ['~nosuchuser0/x.whl']}]}\n"
            "serve:\n  model: m\n  local: {python: '~nosuchuser0/bin/python'}\n",
        )
    )
    assert render_argv(p)[0] == "~nosuchuser0/bin/python"
    assert "COPY pip/x.whl /tmp/pip/x.whl" in render_dockerfile(p)
