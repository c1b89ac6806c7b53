"""Turn a profile into what actually runs: server argv, environment,
a pasteable ``docker run`` and the image's Dockerfile.

Everything is built as argv lists (never shell strings from profile values);
the only shell text is the *displayed* ``docker run``, quoted with shlex.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console import paths
from console.errors import ConsoleError
from console.profiles import catalogue
from console.profiles.redaction import MASK, REF, expand, has_ref, is_secret_name
from console.profiles.schema import Patch, PipStep, Profile
from console.profiles.userpath import expand_home

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"

Resolver = Callable[[str, str], str]
"""(value, field) -> the value to put in argv."""


def with_overrides(profile: Profile, **serve_fields: Any) -> Profile:
    """A copy with ``serve`` fields replaced (e.g. ``port=8123``), validated again."""
    serve = profile.serve.model_dump()
    serve.update(serve_fields)
    data = profile.model_dump()
    data["serve"] = serve
    try:
        new = Profile.model_validate(data)
    except Exception as exc:  # pydantic ValidationError: a caller bug or bad value
        raise ConsoleError(f"profile {profile.name}: invalid override: {exc}") from None
    return new.model_copy(update={"source": profile.source})


def container_name(profile: Profile) -> str:
    return profile.serve.container.name or f"vllm-console-{profile.name}"


def model_ref(profile: Profile) -> str:
    """The model argument: a console-managed model folder, else ``serve.model``."""
    managed = profile.serve.local.managed_model
    if profile.runtime == "local" and managed:
        return str(paths.models_dir() / managed)
    return profile.serve.model


# --- server argv ------------------------------------------------------------------------


def _flag_tokens(name: str, value: Any, resolve: Resolver, field: str) -> list[list[str]]:
    """The argv groups for one engine arg (one group per repeated flag)."""
    flag = f"--{name}"
    if value is True:
        return [[flag]]
    if value is False:
        return [[f"--no-{name}"]]
    if isinstance(value, dict):
        return [[flag, json.dumps(value, separators=(",", ":"))]]
    if isinstance(value, list):
        items = [_scalar(v, resolve, field) for v in value]
        if catalogue.is_append(name):
            return [[flag, item] for item in items]
        return [[flag, *items]]
    return [[flag, _scalar(value, resolve, field)]]


def _scalar(value: Any, resolve: Resolver, field: str) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return resolve(str(value), field)


def server_groups(profile: Profile, resolve: Resolver) -> list[list[str]]:
    """Flags after the model, grouped as they are written on one line."""
    serve = profile.serve
    groups: list[list[str]] = [["--port", str(serve.port), "--host", serve.host]]
    if serve.served_model_name:
        groups.append(["--served-model-name", serve.served_model_name])
    for name, value in serve.engine_args.items():
        if value is None:
            continue
        groups.extend(_flag_tokens(name, value, resolve, f"serve.engine_args.{name}"))
    if serve.speculative_config:
        groups.append(
            ["--speculative-config", json.dumps(serve.speculative_config, separators=(",", ":"))]
        )
    return groups


def entry_uses_model_flag(profile: Profile) -> bool:
    entry = (profile.image.entrypoint if profile.image else None) or []
    return any(API_SERVER_MODULE in part for part in entry)


def local_python(profile: Profile) -> str:
    """The interpreter that runs a local server."""
    local = profile.serve.local
    if local.python:
        return str(expand_home(local.python))
    if local.runtime:
        return str(paths.runtimes_dir() / local.runtime / "bin" / "python")
    raise ConsoleError(
        f"profile {profile.name}: serve.local needs one of runtime, python or vllm",
        hint="e.g. 'runtime: cpu' after 'vllm-console runtime install cpu'",
    )


def _argv(profile: Profile, resolve: Resolver) -> list[str]:
    flags = [tok for group in server_groups(profile, resolve) for tok in group]
    model = model_ref(profile)
    if profile.runtime == "docker":
        if entry_uses_model_flag(profile):
            return ["--model", model, *flags]
        return [model, *flags]
    local = profile.serve.local
    if local.vllm:
        return [str(expand_home(local.vllm)), "serve", model, *flags]
    return [local_python(profile), "-m", API_SERVER_MODULE, "--model", model, *flags]


def resolver(environ: Mapping[str, str]) -> Resolver:
    return lambda value, field: expand(value, environ, field=field)


def display_value(value: str, field: str) -> str:
    """Shown, not run: references stay references; literal credentials are masked."""
    name = field.rsplit(".", 1)[-1]
    if is_secret_name(name) and not has_ref(value):
        return MASK
    return value


def render_argv(profile: Profile, environ: Mapping[str, str] | None = None) -> list[str]:
    """The server command: full argv (local) or the container args after the image (docker).

    ``${VAR}`` in engine-arg values is resolved from ``environ`` (default
    ``os.environ``); print the result only through ``display_argv``/``redact_argv``.
    """
    return _argv(profile, resolver(os.environ if environ is None else environ))


def display_argv(profile: Profile) -> list[str]:
    """``render_argv`` for showing: ``${VAR}`` left unresolved, credentials masked."""
    return _argv(profile, display_value)


# --- environment ----------------------------------------------------------------------------


def render_env(profile: Profile, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's extra environment with ``${VAR}`` resolved (secrets: do not print)."""
    env = os.environ if environ is None else environ
    return {
        key: expand(value, env, field=f"profile {profile.name}: serve.env.{key}")
        for key, value in profile.serve.env.items()
    }


def display_env(profile: Profile) -> dict[str, str]:
    """The env as it may be printed: references kept, literal credentials masked."""
    return {k: display_value(v, f"serve.env.{k}") for k, v in profile.serve.env.items()}


def secret_values(profile: Profile, environ: Mapping[str, str] | None = None) -> set[str]:
    """Resolved values to scrub from anything printed or logged for this profile."""
    env = os.environ if environ is None else environ
    found: set[str] = set()

    def collect(name: str, value: str) -> None:
        for match in REF.finditer(value):
            if match.group(1) in env and env[match.group(1)]:
                found.add(env[match.group(1)])
        if is_secret_name(name) and not has_ref(value) and value:
            found.add(value)

    for key, value in profile.serve.env.items():
        collect(key, value)
    for key, value in profile.serve.engine_args.items():
        if isinstance(value, str):
            collect(key, value)
    return found


# --- shell text (the displayed docker run: console.profiles.container) ------------------------


def shell_quote(token: str) -> str:
    """Shell-quote, but keep ``${VAR}`` references live (double quotes)."""
    if not has_ref(token):
        return shlex.quote(token)
    escaped = ""
    last = 0
    for match in REF.finditer(token):
        escaped += _dq_escape(token[last : match.start()]) + match.group(0)
        last = match.end()
    escaped += _dq_escape(token[last:])
    return f'"{escaped}"'


def _dq_escape(text: str) -> str:
    return "".join("\\" + ch if ch in '\\"$`' else ch for ch in text)


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextFile:
    """A file the Dockerfile COPYs: ``dest`` in the build context, from ``source``.

    ``kind`` is ``file`` (copy ``source``) or ``checkout-diff`` (write
    ``git -C source diff base`` there).
    """

    dest: str
    source: Path
    kind: str = "file"
    base: str | None = None


def _profile_dir(profile: Profile) -> Path:
    return Path(profile.source).parent if profile.source else Path.cwd()


def _local(ref: str) -> bool:
    return not ("://" in ref or ref.startswith("git+")) and (
        ref.startswith((".", "/", "~")) or ref.endswith((".whl", ".tar.gz", ".zip"))
    )


def patch_url(patch: Patch) -> str | None:
    """Where a PR patch is fetched from, pinned to ``commit`` when one is given."""
    if patch.url:
        return patch.url
    base = f"https://github.com/{patch.repo}"
    if patch.commit and patch.base:
        return f"{base}/compare/{patch.base}...{patch.commit}.diff"
    if patch.commit:
        return f"{base}/commit/{patch.commit}.diff"
    if patch.pr:
        return f"{base}/pull/{patch.pr}.diff"
    return None


def _patch_label(patch: Patch) -> str:
    if patch.pr:
        return f"{patch.repo}#{patch.pr}" + (f"@{patch.commit}" if patch.commit else "")
    if patch.commit:
        return f"{patch.repo}@{patch.commit}"
    return patch.url or patch.file or f"checkout:{patch.checkout}"


def _pip_label(step: PipStep) -> str:
    return step.label or " ".join(step.packages)


def image_labels(profile: Profile) -> dict[str, str]:
    """Provenance the image carries (read back by the Docker runtime and the TUI)."""
    image = profile.image
    if image is None:
        return {}
    labels = {"vllm-console.profile": profile.name, "vllm-console.base": image.base}
    if image.vllm_ref:
        labels["vllm-console.vllm-ref"] = image.vllm_ref
    if image.patches:
        labels["vllm-console.patches"] = ", ".join(_patch_label(p) for p in image.patches)
    if image.pip:
        labels["vllm-console.pip"] = ", ".join(_pip_label(p) for p in image.pip)
    return labels


def build_context_files(profile: Profile) -> list[ContextFile]:
    """Local files the Dockerfile COPYs, with the context path each must have."""
    files: list[ContextFile] = []
    image = profile.image
    if image is None:
        return files
    root = _profile_dir(profile)

    def src(ref: str) -> Path:
        path = expand_home(ref)
        return path if path.is_absolute() else root / path

    for ca in image.ca_certificates:
        files.append(ContextFile(f"ca/{Path(ca).name}", src(ca)))
    for step in image.pip:
        for pkg in step.packages:
            if _local(pkg):
                files.append(ContextFile(f"pip/{Path(pkg).name}", src(pkg)))
    for index, patch in enumerate(image.patches):
        if patch.file:
            files.append(ContextFile(f"patches/{index}-{Path(patch.file).name}", src(patch.file)))
        elif patch.checkout:
            files.append(
                ContextFile(
                    f"patches/{index}-checkout.diff",
                    src(patch.checkout),
                    kind="checkout-diff",
                    base=patch.base,
                )
            )
    return files


_SITE = (
    "site=\"$(python3 -c 'import importlib.util, os; "
    'print(os.path.dirname(os.path.dirname(importlib.util.find_spec("vllm").origin)))\')"'
)
_FETCH_VLLM_ONLY = (
    "python3 -c 'import re, sys, urllib.request; "
    "text = urllib.request.urlopen(sys.argv[1]).read().decode(); "
    'parts = re.split(r"(?m)^(?=diff --git )", text); '
    'kept = [p for p in parts if p.startswith("diff --git a/vllm/")]; '
    'sys.exit("no vllm/ changes in " + sys.argv[1]) if not kept else None; '
    'open(sys.argv[2], "w").write("".join(kept))\''
)


def dockerfile_lines(profile: Profile) -> list[str]:
    """The Dockerfile, one instruction per item (continuations inside an item)."""
    image = profile.image
    if image is None:
        raise ConsoleError(f"profile {profile.name}: rendering a Dockerfile needs 'image'")
    out = [f"# vllm-console profile: {profile.name}", f"FROM {image.base}"]
    out += [f"ARG {name}" for name in image.build_args]
    context = {(f.kind, str(f.source)): f.dest for f in build_context_files(profile)}
    root = _profile_dir(profile)

    def dest(kind: str, ref: str) -> str:
        path = expand_home(ref)
        return context[(kind, str(path if path.is_absolute() else root / path))]

    if image.ca_certificates:
        for ca in image.ca_certificates:
            name = Path(ca).stem + ".crt"
            out.append(f"COPY {dest('file', ca)} /usr/local/share/ca-certificates/{name}")
        out.append("RUN update-ca-certificates")
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        out.append(
            f"ENV SSL_CERT_FILE={bundle} REQUESTS_CA_BUNDLE={bundle} "
            f"PIP_CERT={bundle} CURL_CA_BUNDLE={bundle}"
        )
    for step in image.pip:
        args: list[str] = []
        for pkg in step.packages:
            if _local(pkg):
                target = f"/tmp/pip/{Path(pkg).name}"
                out.append(f"COPY {dest('file', pkg)} {target}")
                args.append(target)
            else:
                args.append(shlex.quote(pkg))
        opts = ["--no-cache-dir"] + (["-U"] if step.upgrade else [])
        opts += ["--no-deps"] if step.no_deps else []
        out.append(f"RUN python3 -m pip install {' '.join(opts)} {' '.join(args)}")
    if image.patches:
        out.append(
            "RUN command -v patch >/dev/null || (apt-get update && apt-get install -y "
            "--no-install-recommends patch && rm -rf /var/lib/apt/lists/*)"
        )
    for index, patch in enumerate(image.patches):
        diff = f"/tmp/vllm-patch-{index}.diff"
        if patch.file or patch.checkout:
            kind = "file" if patch.file else "checkout-diff"
            ref = patch.file or patch.checkout or ""
            out.append(f"COPY {dest(kind, ref)} {diff}")
            fetch = ""
        else:
            url = patch_url(patch)
            if url is None:
                raise ConsoleError(
                    f"profile {profile.name}: image.patches[{index}] needs pr, commit, url, "
                    "file or checkout"
                )
            fetch = f"{_FETCH_VLLM_ONLY} {shlex.quote(url)} {diff}; \\\n    "
        out.append(
            f"RUN set -eu; \\\n    {_SITE}; \\\n    {fetch}"
            f'patch -p{patch.strip} --forward --batch -d "$site" -i {diff}'
        )
    out += list(image.steps)
    if image.pip or image.patches:
        out.append(
            "RUN python3 -c 'import transformers; "
            'print("transformers", transformers.__version__)\''
        )
    if image.entrypoint is not None:
        out.append(f"ENTRYPOINT {json.dumps(image.entrypoint, separators=(',', ':'))}")
        out.append("CMD []")
    if image.workdir:
        out.append(f"WORKDIR {image.workdir}")
    labels = image_labels(profile)
    out.append(
        "LABEL " + " \\\n      ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    )
    return out


def render_dockerfile(profile: Profile) -> str:
    """The image recipe as Dockerfile text."""
    return "\n".join(dockerfile_lines(profile)) + "\n"
