"""Build a profile's server image: build context, engine build, event stream.

The recipe (Dockerfile text, which local files it COPYs, provenance labels)
comes from ``console.profiles``; this module turns it into a build context on
disk, runs the build on the engine through the SDK, and hands out typed events
(``console.buildlog``) while writing every line to a log file as it arrives.

A build is an iterator of events that another thread may ``cancel()``: the
stream's socket is shut down and the engine stops the build, removing its
intermediate container (``forcerm``), so a cancelled build leaves nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import docker.errors
import httpx

from console import paths
from console.buildlog import (
    BuildDone,
    BuildError,
    BuildEvent,
    BuildLogParser,
    BuildOutput,
    BuildStep,
    event_text,
)
from console.errors import ConsoleError
from console.profiles import build_context_files, render_dockerfile
from console.profiles.render import patch_url
from console.profiles.schema import Profile
from console.runtime.dockerclient import CancellableAPIClient, connect_api, engine_address

LABEL_BUILT_AT = "vllm-console.built-at"
LABEL_BUILD_LOG = "vllm-console.build-log"
LABEL_CONTENT = "vllm-console.content-id"
"""The id of the recipe's image before the build-time labels were added."""
PATCH_FETCH_TIMEOUT_S = 15.0
# What the recipe's check step prints, e.g. "transformers 5.8.0.dev0" or "vllm 0.32.0".
RE_VERSION_LINE = re.compile(r"^(?P<pkg>transformers|vllm) (?P<version>\d[\w.+-]*)$")


def _image(profile: Profile):
    if profile.image is None:
        raise ConsoleError(
            f"profile {profile.name}: no 'image' section, so there is nothing to build",
            hint="add image: {base: ..., tag: ...} or use a local-runtime profile",
        )
    return profile.image


def write_context(profile: Profile, dest: Path) -> Path:
    """Write the Dockerfile and every file it COPYs into ``dest``; return ``dest``.

    Large local files (wheels) are hard-linked when the file system allows it.
    """
    _image(profile)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Dockerfile").write_text(render_dockerfile(profile))
    for item in build_context_files(profile):
        target = dest / item.dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.kind == "checkout-diff":
            target.write_bytes(_checkout_diff(profile, item.source, item.base))
            continue
        if not item.source.is_file():
            raise ConsoleError(
                f"profile {profile.name} ({profile.source or 'in memory'}): "
                f"{item.source} does not exist or is not a file",
                hint="paths in image.pip, image.patches and image.ca_certificates are "
                "relative to the profile file",
            )
        try:
            os.link(item.source, target)
        except OSError:
            shutil.copy2(item.source, target)
    return dest


def _checkout_diff(profile: Profile, checkout: Path, base: str | None) -> bytes:
    argv = ["git", "-C", str(checkout), "diff", base or "HEAD", "--", "vllm"]
    try:
        done = subprocess.run(argv, capture_output=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConsoleError(f"profile {profile.name}: `{' '.join(argv)}` failed: {exc}") from None
    if done.returncode != 0:
        raise ConsoleError(
            f"profile {profile.name}: image.patches checkout {checkout}: `git diff` failed: "
            f"{done.stderr.decode(errors='replace').strip()[:300]}",
            hint="checkout must be a git clone of vLLM; base a commit it has",
        )
    if not done.stdout.strip():
        raise ConsoleError(
            f"profile {profile.name}: checkout {checkout} has no changes under vllm/ "
            f"against {base or 'HEAD'}: nothing to patch"
        )
    return done.stdout


def check_patch_sources(profile: Profile) -> None:
    """Fail before building when a PR/commit patch cannot be fetched from here.

    The image fetches the diff itself during the build; checking first turns
    an opaque RUN failure minutes in into an error naming the PR and URL.
    """
    image = _image(profile)
    for index, patch in enumerate(image.patches):
        if patch.file or patch.checkout:
            continue
        url = patch_url(patch)
        if url is None:
            continue
        what = f"PR #{patch.pr}" if patch.pr else f"commit {patch.commit}"
        if patch.pr and patch.commit:
            what += f" at {patch.commit}"
        try:
            response = httpx.head(url, follow_redirects=True, timeout=PATCH_FETCH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ConsoleError(
                f"profile {profile.name}: cannot fetch image.patches[{index}] ({what}) "
                f"from {url}: {exc or type(exc).__name__}",
                hint="check the network (GitHub must be reachable), or download the diff "
                "and use `file: my.patch` instead",
            ) from None
        if response.status_code >= 400:
            raise ConsoleError(
                f"profile {profile.name}: image.patches[{index}] ({what}): {url} answered "
                f"HTTP {response.status_code}",
                hint="check the PR number and commit (the commit must be on the PR branch)",
            )


def _explain(error: BuildError, profile: Profile) -> BuildError:
    """Add what to do for failures users hit most."""
    message = error.message
    step = error.step
    instr = step.instruction if step else ""
    lower = message.lower()
    hint = ""
    if (
        instr.upper().startswith("FROM")
        or "pull access denied" in lower
        or ("no such host" in lower and "registry" in lower)
    ):
        base = profile.image.base if profile.image else "?"
        hint = (
            f"the base image {base} is not on the engine and could not be pulled: "
            "pull or load it first (docker pull / docker load), or fix image.base"
        )
    elif "certificate_verify_failed" in lower or "certificate verify failed" in lower:
        hint = (
            "a TLS-intercepting proxy? list its CA files in image.ca_certificates "
            "(e.g. /usr/local/share/ca-certificates/*.crt)"
        )
    elif "urlopen" in lower or ("urllib" in lower and "patch" in instr):
        hint = "fetching a PR patch failed inside the build: use a local `file:` patch"
    if not hint:
        return error
    return BuildError(f"{message} (hint: {hint})", step)


class ImageBuild:
    """One build of a profile's image: iterate for events, ``cancel()`` from anywhere.

    ``log_path`` holds every line as it arrives (flushed per line);
    ``result`` is the final :class:`BuildDone` or :class:`BuildError`.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        no_cache: bool = False,
        network_mode: str | None = None,
        check_patches: bool = True,
    ) -> None:
        self.profile = profile
        self.image = _image(profile)
        if not self.image.needs_build:
            raise ConsoleError(
                f"profile {profile.name} runs the stock image {self.image.base} as it is: "
                "nothing to build",
                hint="add image.pip, image.patches or image.steps to build on it",
            )
        self.no_cache = no_cache
        self.network_mode = network_mode or self.image.network_mode
        self.check_patches = check_patches
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.log_path = paths.ensure(paths.builds_dir()) / f"{profile.name}-{stamp}.log"
        self.dockerfile_path = self.log_path.with_suffix(".Dockerfile")
        self.result: BuildDone | BuildError | None = None
        self._cancelled = threading.Event()
        self._api: CancellableAPIClient | None = None
        self._started = False
        self._found_labels: dict[str, str] = {}

    @property
    def tag(self) -> str:
        return self.image.tag or self.image.base

    def cancel(self) -> None:
        """Stop the build (safe from any thread, before or during iteration)."""
        self._cancelled.set()
        api = self._api
        if api is not None:
            api.cut_stream()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[BuildEvent]:
        return self.events()

    def events(self) -> Iterator[BuildEvent]:
        if self._started:
            raise RuntimeError("an ImageBuild runs once")
        self._started = True
        with self.log_path.open("w", encoding="utf-8") as log:
            try:
                yield from self._run(log)
            except ConsoleError as exc:
                error = BuildError(str(exc), None)
                self._log(log, error)
                self.result = error
                yield error

    def _log(self, log: IO[str], event: BuildEvent) -> None:
        text = event_text(event)
        if text is not None:
            log.write(text + "\n")
            log.flush()

    def _run(self, log: IO[str]) -> Iterator[BuildEvent]:
        log.write(
            f"# vllm-console build of profile {self.profile.name} -> {self.tag}\n"
            f"# engine {engine_address(self.profile.docker_host)}, network {self.network_mode}, "
            f"no-cache {self.no_cache}, started {datetime.now(UTC).isoformat()}\n"
        )
        log.flush()
        if self.check_patches:
            check_patch_sources(self.profile)
        api = connect_api(host=self.profile.docker_host)
        self._api = api
        parser = BuildLogParser(started=time.monotonic())
        workdir = Path(tempfile.mkdtemp(prefix=f"ctx-{self.profile.name}-", dir=log_dir()))
        try:
            context = write_context(self.profile, workdir)
            shutil.copyfile(context / "Dockerfile", self.dockerfile_path)
            if self._cancelled.is_set():
                yield from self._finish_cancelled(log, parser)
                return
            try:
                stream = api.build(
                    path=str(context),
                    nocache=self.no_cache,
                    forcerm=True,
                    decode=True,
                    network_mode=self.network_mode,
                    buildargs=dict(self.image.build_args) or None,
                )
            except docker.errors.APIError as exc:
                reason = exc.explanation or str(exc)
                yield from self._emit(
                    log, BuildError(f"the engine refused the build: {reason}", None)
                )
                return
            try:
                for chunk in stream:
                    for event in parser.feed_chunk(chunk):
                        yield from self._emit(log, event)
                    if self._cancelled.is_set():
                        break
            except Exception as exc:
                if not self._cancelled.is_set():
                    for event in parser.finish():
                        if isinstance(event, BuildError):
                            event = BuildError(f"the engine stream broke: {exc}", parser.step)
                        yield from self._emit(log, event)
                    return
            if self._cancelled.is_set():
                yield from self._finish_cancelled(log, parser)
                return
            for event in parser.finish():
                if isinstance(event, BuildDone):
                    event = self._finalize(api, event, log)
                yield from self._emit(log, event)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            api.close()
            self._api = None

    def _finish_cancelled(self, log: IO[str], parser: BuildLogParser) -> Iterator[BuildEvent]:
        yield from self._emit(log, BuildError("build cancelled", parser.step))

    def _watch(self, event: BuildEvent) -> None:
        """Versions the build itself printed (the recipe's import check) become labels."""
        if isinstance(event, BuildOutput) and event.stream == "stdout":
            m = RE_VERSION_LINE.match(event.text.strip())
            if m:
                self._found_labels[f"vllm-console.{m['pkg']}"] = m["version"]

    def _finalize(self, api: CancellableAPIClient, done: BuildDone, log: IO[str]) -> BuildDone:
        """Tag the built content, with build-time labels only when it changed.

        The recipe's content is built untagged; the build time, log and the
        versions it printed are put on top with a one-line ``FROM id`` + ``LABEL``
        build (no new layer). If the tag already holds that same content, the
        tag is left as it is: a fresh build-time label on every rebuild would
        give the image a new id each time and defeat the layer cache of images
        built ``FROM`` it.
        """
        content = done.image_id
        try:
            current = api.inspect_image(self.tag)
        except docker.errors.APIError:
            current = None
        labels = ((current or {}).get("Config") or {}).get("Labels") or {}
        if current is not None and labels.get(LABEL_CONTENT) == content:
            log.write(
                f"# unchanged: {self.tag} already holds this build "
                f"(built {labels.get(LABEL_BUILT_AT, '?')})\n"
            )
            return BuildDone(current["Id"], done.duration_s, (self.tag,))
        new_labels = {
            LABEL_BUILT_AT: datetime.now(UTC).isoformat(timespec="seconds"),
            LABEL_BUILD_LOG: str(self.log_path),
            LABEL_CONTENT: content,
            **self._found_labels,
        }
        lines = [f"FROM {content}"] + [
            f"LABEL {key}={json.dumps(value)}" for key, value in new_labels.items()
        ]
        parser = BuildLogParser(started=time.monotonic() - done.duration_s)
        try:
            chunks = api.build(
                fileobj=io.BytesIO("\n".join(lines).encode()),
                tag=self.tag,
                forcerm=True,
                decode=True,
            )
            for chunk in chunks:
                parser.feed_chunk(chunk)
            final = [e for e in parser.finish() if isinstance(e, BuildDone)]
        except docker.errors.APIError as exc:
            log.write(f"WARNING: labelling failed: {exc}\n")
            final = []
        if not final:
            # The content is built; tag it plainly rather than lose it.
            repo, _, tag = self.tag.rpartition(":")
            if not repo or "/" in tag:
                repo, tag = self.tag, "latest"
            api.tag(content, repo, tag)
            return BuildDone(content, done.duration_s, (self.tag,))
        log.write(f"# labels: {json.dumps(new_labels)}\n")
        return BuildDone(final[0].image_id, final[0].duration_s, (self.tag,))

    def _emit(self, log: IO[str], event: BuildEvent) -> Iterator[BuildEvent]:
        self._watch(event)
        if isinstance(event, BuildError):
            event = _explain(event, self.profile)
        if isinstance(event, BuildDone | BuildError):
            if self.result is not None:
                return
            self.result = event
        self._log(log, event)
        yield event


def log_dir() -> Path:
    """Build contexts live next to the build logs (same file system as the state folder)."""
    return paths.ensure(paths.builds_dir())


def build_image(
    profile: Profile, *, no_cache: bool = False, network_mode: str | None = None
) -> BuildDone:
    """Build to the end (library use); ConsoleError naming the failed step otherwise."""
    build = ImageBuild(profile, no_cache=no_cache, network_mode=network_mode)
    for _ in build:
        pass
    return result_or_raise(build)


def result_or_raise(build: ImageBuild) -> BuildDone:
    result = build.result
    if isinstance(result, BuildDone):
        return result
    if result is None:
        raise ConsoleError(
            f"build of {build.profile.name} produced no result; log {build.log_path}"
        )
    raise ConsoleError(failure_message(result, build))


def failure_message(error: BuildError, build: ImageBuild) -> str:
    where = ""
    if error.step is not None:
        total = f"/{error.step.total}" if error.step.total else ""
        where = f" at step {error.step.index}{total} ({error.step.instruction})"
    return (
        f"build of {build.profile.name} failed{where}: {error.message}; full log: {build.log_path}"
    )


__all__ = [
    "LABEL_BUILT_AT",
    "BuildOutput",
    "BuildStep",
    "ImageBuild",
    "build_image",
    "check_patch_sources",
    "failure_message",
    "result_or_raise",
    "write_context",
]
