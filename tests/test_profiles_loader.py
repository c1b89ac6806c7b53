"""Loading profiles: presets, extends, the user folder, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.errors import ConsoleError
from console.profiles import (
    ProfileError,
    discover,
    list_profiles,
    load_profile,
    shipped_profiles_dir,
)
from console.profiles.loader import deep_merge, load_file

DATA = Path(__file__).parent / "data" / "profiles"
PRESETS = sorted(
    [
        "gemma3-270m-cpu",
        "gemma3-270m-cpu-ngram",
        "gemma4-26b-baseline",
        "gemma4-26b-mtp",
        "gemma4-26b-mtp-2node",
        "smollm2-135m-cpu",
        *(f"gemma4-{size}-{arm}" for size in ("26b-a4b", "31b", "e4b", "e2b", "26b-nvfp4-gb10")
          for arm in ("mtp", "baseline")),
    ]
)  # fmt: skip


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    monkeypatch.setenv("VLLM_CONSOLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("VLLM_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    return config / "profiles"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --- presets --------------------------------------------------------------------------------


def test_presets_are_listed_sorted_with_sources() -> None:
    profiles = list_profiles()
    assert [p.name for p in profiles] == PRESETS
    for profile in profiles:
        assert profile.source == str(shipped_profiles_dir() / f"{profile.name}.yaml")


def test_package_data_copy_points_at_the_presets() -> None:
    packaged = Path(__import__("console").__file__).parent / "data" / "profiles"
    assert sorted(p.stem for p in packaged.glob("*.yaml")) == PRESETS


def test_mtp_preset_fields() -> None:
    p = load_profile("gemma4-26b-mtp")
    assert p.runtime == "docker"
    assert p.image is not None
    assert p.image.entrypoint == ["vllm", "serve"]
    assert p.image.workdir == "/vllm-workspace"
    assert p.image.patches[0].pr == 41745 and p.image.patches[0].commit == "5119058403"
    assert p.image.pip[0].packages == [
        "https://github.com/huggingface/transformers/archive/main.tar.gz"
    ]
    c = p.serve.container
    assert (c.name, c.gpus, c.ipc, c.network) == ("vllm-gemma4-26b-server", "all", "host", "host")
    assert p.serve.speculative_config == {
        "method": "mtp",
        "model": "google/gemma-4-26B-A4B-it-assistant",
        "num_speculative_tokens": 4,
    }
    assert list(p.serve.speculative_config) == ["method", "model", "num_speculative_tokens"]


def test_baseline_extends_and_removes_speculative_config() -> None:
    mtp, base = load_profile("gemma4-26b-mtp"), load_profile("gemma4-26b-baseline")
    assert base.extends == "gemma4-26b-mtp"
    assert base.serve.speculative_config is None
    assert base.serve.container.name == "vllm-gemma4-26b-baseline"
    assert base.image == mtp.image  # the A/B changes one thing only
    assert base.serve.engine_args == mtp.serve.engine_args
    assert list(base.serve.engine_args) == list(mtp.serve.engine_args)


def test_cpu_presets() -> None:
    cpu, ngram = load_profile("gemma3-270m-cpu"), load_profile("gemma3-270m-cpu-ngram")
    assert cpu.runtime == "local"
    assert (cpu.serve.host, cpu.serve.port) == ("127.0.0.1", 8000)
    assert cpu.serve.local.runtime == "cpu" and cpu.serve.local.managed_model == "gemma3-270m"
    assert cpu.serve.served_model_name == "gemma3-270m"
    assert cpu.serve.env == {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
    }
    assert ngram.serve.speculative_config == {
        "method": "ngram",
        "num_speculative_tokens": 4,
        "prompt_lookup_max": 4,
    }
    # the same flags, plus each answer's own acceptance (docs/acceptance.md)
    assert ngram.serve.engine_args == {
        **cpu.serve.engine_args,
        "per-request-spec-decode-metrics": "summary",
    }
    assert ngram.name == "gemma3-270m-cpu-ngram" and ngram.extends == "gemma3-270m-cpu"


# --- extends and overrides -------------------------------------------------------------------


def test_extends_merges_dicts_replaces_lists_and_null_removes() -> None:
    child = load_file(DATA / "child-of-mtp.yaml")
    parent = load_profile("gemma4-26b-mtp")
    assert child.name == "child-of-mtp"
    assert child.serve.port == 8001
    assert "enable-prefix-caching" not in child.serve.engine_args
    assert child.serve.engine_args["max-num-seqs"] == 8
    assert child.serve.engine_args["kv-cache-dtype"] == "fp8"  # inherited
    assert child.serve.speculative_config == {
        **parent.serve.speculative_config,
        "num_speculative_tokens": 7,
    }
    assert child.serve.volumes == ["/data/hf:/root/.cache/huggingface"]
    assert child.serve.env == parent.serve.env


def test_deep_merge_rules() -> None:
    parent = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"k": 1}}
    child = {"a": {"y": [3], "z": None}, "c": None, "d": {"e": None, "f": 1}}
    assert deep_merge(parent, child) == {"a": {"x": 1, "y": [3]}, "b": 2, "d": {"f": 1}}
    # a mapping replacing a plain value drops its nulls too
    assert deep_merge({"s": None}, {"s": {"q": None, "k": 4}}) == {"s": {"k": 4}}


def test_user_profile_overrides_shipped_by_name(private_dirs: Path) -> None:
    write(
        private_dirs,
        "gemma3-270m-cpu.yaml",
        "runtime: local\nserve:\n  model: other\n  port: 9000\n",
    )
    p = load_profile("gemma3-270m-cpu")
    assert p.serve.port == 9000
    assert p.source == str(private_dirs / "gemma3-270m-cpu.yaml")
    listed = {q.name: q for q in list_profiles()}
    assert listed["gemma3-270m-cpu"].serve.port == 9000
    assert len(listed) == len(PRESETS)
    # the shipped child now inherits from the user's version
    assert load_profile("gemma3-270m-cpu-ngram").serve.port == 9000


def test_user_profile_may_extend_the_shipped_one_of_the_same_name(private_dirs: Path) -> None:
    write(private_dirs, "gemma4-26b-mtp.yaml", "extends: gemma4-26b-mtp\nserve:\n  port: 8123\n")
    p = load_profile("gemma4-26b-mtp")
    assert p.serve.port == 8123
    assert p.serve.container.name == "vllm-gemma4-26b-server"


def test_new_user_profile_is_listed(private_dirs: Path) -> None:
    write(private_dirs, "mine.yml", "extends: gemma3-270m-cpu\nserve:\n  port: 8200\n")
    assert "mine" in [p.name for p in list_profiles()]
    assert load_profile("mine").serve.port == 8200


def test_engine_arg_spellings_are_one_flag(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "runtime: local\nserve:\n  model: m\n  engine_args:\n    --max_model_len: 10\n",
    )
    assert load_file(path).serve.engine_args == {"max-model-len": 10}
    path.write_text(
        "runtime: local\nserve:\n  model: m\n  engine_args:\n"
        "    max_model_len: 10\n    max-model-len: 20\n"
    )
    with pytest.raises(ConsoleError, match="given twice"):
        load_file(path)


def test_env_numbers_become_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "runtime: local\nserve:\n  model: m\n  env:\n    A: 1\n")
    assert load_file(path).serve.env == {"A": "1"}


# --- errors: file, line, field, what is expected ---------------------------------------------


def error_for(path: Path) -> ConsoleError:
    with pytest.raises(ConsoleError) as info:
        load_profile(str(path))
    return info.value


@pytest.mark.parametrize(
    ("name", "line", "field", "expected"),
    [
        ("bad-type.yaml", 5, "serve.port", "valid integer"),
        ("bad-unknown.yaml", 7, "serve.container.gpu_count", "expected one of: name, gpus"),
        ("bad-missing.yaml", 3, "image.base", "required field 'base' is missing"),
        ("bad-runtime.yaml", 2, "runtime", "'docker' or 'local'"),
    ],
)
def test_schema_errors_name_file_line_and_field(
    name: str, line: int, field: str, expected: str
) -> None:
    exc = error_for(DATA / name)
    assert isinstance(exc, ProfileError)
    text = str(exc)
    assert f"{DATA / name}:{line}: {field}:" in text
    assert expected in text
    assert exc.problems[0].line == line and exc.problems[0].field == field


def test_bad_yaml_names_the_line() -> None:
    text = str(error_for(DATA / "bad-yaml.yaml"))
    assert f"{DATA / 'bad-yaml.yaml'}:7: not valid YAML" in text


def test_duplicate_key_is_an_error() -> None:
    text = str(error_for(DATA / "bad-duplicate.yaml"))
    assert ":6: key 'port' appears twice (first on line 5)" in text


def test_top_level_must_be_a_mapping() -> None:
    assert "expected a mapping of fields, got a list" in str(error_for(DATA / "bad-list.yaml"))


def test_extends_cycle_is_reported() -> None:
    text = str(error_for(DATA / "bad-cycle-a.yaml"))
    assert "'extends' forms a cycle" in text and "bad-cycle-b.yaml" in text


def test_missing_parent_is_reported_with_line() -> None:
    text = str(error_for(DATA / "bad-orphan.yaml"))
    assert f"{DATA / 'bad-orphan.yaml'}:2: extends: no profile named 'no-such-profile'" in text
    assert "gemma4-26b-mtp" in text  # says what exists


def test_error_inside_parent_points_at_the_parent(tmp_path: Path) -> None:
    write(tmp_path, "parent.yaml", "runtime: local\nserve:\n  model: m\n  port: nope\n")
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\ndescription: x\n")
    text = str(error_for(child))
    assert f"{tmp_path / 'parent.yaml'}:4: serve.port:" in text


def test_error_in_child_override_points_at_the_child(tmp_path: Path) -> None:
    write(tmp_path, "parent.yaml", "runtime: local\nserve:\n  model: m\n  port: 1\n")
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nserve:\n  port: nope\n")
    assert f"{tmp_path / 'child.yaml'}:3: serve.port:" in str(error_for(child))


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ConsoleError, match=r"no profile named 'nope'.*gemma3-270m-cpu"):
        load_profile("nope")


def test_broken_user_file_is_reported_but_others_still_load(private_dirs: Path) -> None:
    write(private_dirs, "broken.yaml", "runtime: [\n")
    profiles, errors = discover()
    assert [p.name for p in profiles] == PRESETS
    assert len(errors) == 1 and "broken.yaml:" in str(errors[0])
    with pytest.raises(ConsoleError, match=r"broken\.yaml"):
        list_profiles()


def test_missing_file() -> None:
    with pytest.raises(ConsoleError, match="no such profile file"):
        load_profile("/nonexistent/x.yaml")


# --- malformed input only ever gives ConsoleError ---------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "runtime",
                    "serve",
                    "image",
                    "model",
                    "port",
                    "engine_args",
                    "env",
                    "extends",
                    "x",
                    "local",
                    "tag",
                    "base",
                    "container",
                    "speculative_config",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_text_gives_a_profile_or_console_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_file(path)
    except ConsoleError as exc:
        assert str(exc)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_values)
def test_any_yaml_structure_gives_a_profile_or_console_error(tmp_path: Path, data: object) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        load_file(path)
    except ConsoleError as exc:
        assert str(exc)


_MUTATIONS = [":", "- ", "  ", "\t", "[", "{", "&a ", "*a", "!!python/object ", "'", '"', "\n"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2300), st.sampled_from(_MUTATIONS)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_preset_gives_a_profile_or_console_error(tmp_path: Path, cuts: list) -> None:
    text = (shipped_profiles_dir() / "gemma4-26b-mtp.yaml").read_text()
    for pos, token in cuts:
        text = text[:pos] + token + text[pos:]
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_file(path)
    except ConsoleError as exc:
        assert str(exc)


def test_alias_bomb_and_recursion_are_clean_errors(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
    )
    path = write(tmp_path, "bomb.yaml", bomb)
    with pytest.raises(ConsoleError, match=r"bomb\.yaml:\d+: aliases expand to more than"):
        load_file(path)
    path = write(tmp_path, "rec.yaml", "name: &n [*n]\nruntime: local\n")
    with pytest.raises(ConsoleError, match="cannot be recursive"):
        load_file(path)
    text = "runtime: local\nserve:\n  model: m\n  engine_args:\n    x: &a [*a]\n"
    with pytest.raises(ConsoleError, match=r"rec2\.yaml:5: an alias refers"):
        load_file(write(tmp_path, "rec2.yaml", text))
    # shared (non-recursive) aliases are fine
    text = "runtime: local\nserve:\n  model: m\n  env: &e {A: '1'}\n  engine_args: {x: *e}\n"
    assert load_file(write(tmp_path, "ok.yaml", text)).serve.engine_args == {"x": {"A": "1"}}


def test_name_must_match_file_name_in_profile_folder(private_dirs: Path, tmp_path: Path) -> None:
    write(private_dirs, "foo.yaml", "name: gemma4-26b-mtp\nruntime: local\nserve:\n  model: m\n")
    with pytest.raises(ConsoleError, match=r"foo\.yaml:1: name: 'gemma4-26b-mtp' differs"):
        load_profile("foo")
    # outside the profile folders a file may carry any name
    other = write(tmp_path, "bar.yaml", "name: baz\nruntime: local\nserve:\n  model: m\n")
    assert load_file(other).name == "baz"


_text = st.text(max_size=12)
_near_valid = st.fixed_dictionaries(
    {
        "runtime": st.sampled_from(["local", "docker"]),
        "serve": st.fixed_dictionaries(
            {"model": st.text(min_size=1, max_size=12)},
            optional={
                "host": _text,
                "port": st.integers(),
                "served_model_name": _text,
                "engine_args": st.dictionaries(
                    st.text(min_size=1, max_size=16), _values, max_size=4
                ),
                "env": st.dictionaries(st.text(min_size=1, max_size=8), _text, max_size=3),
                "speculative_config": st.dictionaries(
                    st.sampled_from(
                        [
                            "method",
                            "model",
                            "num_speculative_tokens",
                            "quantization",
                            "tensor_parallel_size",
                            "prompt_lookup_max",
                        ]
                    ),
                    _values,
                    max_size=3,
                ),
                "volumes": st.lists(_text, max_size=2),
                "container": st.fixed_dictionaries(
                    {}, optional={"name": _text, "gpus": _text, "network": _text}
                ),
                "local": st.fixed_dictionaries(
                    {}, optional={"runtime": _text, "python": _text, "managed_model": _text}
                ),
            },
        ),
    },
    optional={
        "image": st.fixed_dictionaries(
            {"base": _text, "tag": _text},
            optional={
                "vllm_ref": _text,
                "pip": st.lists(st.fixed_dictionaries({"packages": st.lists(_text, max_size=2)})),
                "patches": st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"pr": st.integers(), "commit": _text, "url": _text}
                    ),
                    max_size=2,
                ),
                "entrypoint": st.lists(_text, max_size=3),
                "steps": st.lists(_text, max_size=2),
            },
        )
    },
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_near_valid)
def test_loaded_profiles_render_and_lint_or_give_console_error(tmp_path: Path, data: dict) -> None:
    from console.profiles import (
        display_argv,
        render_argv,
        render_docker_run,
        render_dockerfile,
        render_env,
    )
    from console.profiles.catalogue import shipped
    from console.profiles.lint import lint

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        profile = load_file(path)
    except ConsoleError:
        return
    for step in (
        lambda: render_argv(profile, {}),
        lambda: display_argv(profile),
        lambda: render_env(profile, {}),
        lambda: lint(profile, catalogue=shipped()),
        lambda: render_docker_run(profile),
        lambda: render_dockerfile(profile),
    ):
        try:
            step()
        except ConsoleError as exc:
            assert str(exc)
