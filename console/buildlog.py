"""Image build output -> typed events (step i of N, output, warnings, error, done).

Users build with three tools whose output differs, and the console shows all
of them the same way:

- the classic builder, as the Docker SDK streams it: dicts with ``stream``
  text (stderr of RUN steps wrapped in ``ESC[91m ... ESC[0m``), ``aux`` (image
  id), ``status``/``progressDetail`` (base image pull) and a final
  ``error``/``errorDetail`` while the HTTP status is still 200;
- BuildKit ``--progress=plain`` text (``#6 [2/4] RUN ...``, ``#6 0.138 line``,
  ``#6 DONE 0.2s``, ``#6 ERROR: ...``), what newer ``docker build`` prints;
- Podman/Buildah text (``STEP 2/4: RUN ...``, ``--> id``, ``COMMIT tag``).

One :class:`BuildLogParser` recognises all three line by line, so a saved log
file of any of them can be replayed into the same events.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STDERR_ON = "\x1b[91m"
_STDERR_OFF = "\x1b[0m"

# Classic: "Step 2/4 : RUN ..."; Podman: "STEP 2/4: RUN ..." (old Buildah: "STEP 2: RUN").
RE_CLASSIC_STEP = re.compile(r"^Step (?P<i>\d+)/(?P<n>\d+) : (?P<instr>.*)$")
RE_PODMAN_STEP = re.compile(r"^STEP (?P<i>\d+)(?:/(?P<n>\d+))?: (?P<instr>.*)$")
RE_CLASSIC_ARROW = re.compile(r"^ ---> (?P<rest>.*)$")
RE_CLASSIC_BUILT = re.compile(r"^Successfully built (?P<id>[0-9a-f]+)$")
RE_TAGGED = re.compile(r"^Successfully tagged (?P<tag>\S+)$")
RE_CLASSIC_FAILED = re.compile(r"^The command '.*' returned a non-zero code: \d+$")
RE_PODMAN_ARROW = re.compile(r"^--> (?P<rest>.*)$")
RE_PODMAN_COMMIT = re.compile(r"^COMMIT(?: (?P<tag>\S+))?$")
RE_PODMAN_ERROR = re.compile(r"^Error: (?P<msg>(?:error )?building at STEP .*)$")
RE_ERROR_LIKE = re.compile(r"^(?:Error|ERROR|error): (?P<msg>.+)$")
RE_PODMAN_WARN = re.compile(r"^(?:WARN|WARNING)\[\d+\] (?P<msg>.*)$")
RE_BARE_ID = re.compile(r"^(?:sha256:)?(?P<id>[0-9a-f]{64})$")
RE_BK = re.compile(r"^#(?P<v>\d+) (?P<rest>.*)$")
RE_BK_STEP = re.compile(r"^\[(?:(?P<stage>[^\]\s]+) )?(?P<i>\d+)/(?P<n>\d+)\] (?P<instr>.*)$")
RE_BK_OUTPUT = re.compile(r"^(?P<t>\d+\.\d+) (?P<text>.*)$")
RE_BK_WRITING = re.compile(r"^writing image (?P<id>sha256:[0-9a-f]+)")
RE_BK_NAMING = re.compile(r"^naming to (?P<tag>\S+)")
RE_BK_FINAL_ERROR = re.compile(r"^(?:ERROR|error): (?P<msg>failed to (?:solve|build).*)$")
RE_BK_WARNINGS = re.compile(r"^\s*\d+ warnings? found")
RE_WARNING = re.compile(r"^(?:\[WARNING\]|WARNING):?\s*(?P<msg>.*)$")


@dataclass(frozen=True)
class BuildStep:
    """Step ``index`` of ``total`` started (1-based; ``total`` is 0 when unknown)."""

    index: int
    total: int
    instruction: str


@dataclass(frozen=True)
class BuildOutput:
    text: str
    stream: Literal["stdout", "stderr"] = "stdout"


@dataclass(frozen=True)
class BuildWarning:
    message: str


@dataclass(frozen=True)
class BuildPull:
    """Base-image pull progress (classic builder only); ``total`` 0 when unknown."""

    layer: str
    status: str
    current: int = 0
    total: int = 0


@dataclass(frozen=True)
class BuildError:
    message: str
    step: BuildStep | None
    """The step that failed, when known."""


@dataclass(frozen=True)
class BuildDone:
    image_id: str
    duration_s: float
    tags: tuple[str, ...] = ()


BuildEvent = BuildStep | BuildOutput | BuildWarning | BuildPull | BuildError | BuildDone


def event_text(event: BuildEvent) -> str | None:
    """The log-file line for an event (None for pull progress, which would flood it)."""
    match event:
        case BuildStep(index, total, instruction):
            return f"Step {index}/{total} : {instruction}"
        case BuildOutput(text, _):
            return text
        case BuildWarning(message):
            return f"WARNING: {message}"
        case BuildError(message, _):
            return f"ERROR: {message}"
        case BuildDone(image_id, duration_s, tags):
            tagged = f" as {', '.join(tags)}" if tags else ""
            return f"Successfully built {image_id}{tagged} in {duration_s:.1f} s"
    return None


class BuildLogParser:
    """Stateful parser: feed SDK dicts or text lines, collect events.

    ``finish()`` closes the build: it emits :class:`BuildDone` when an image id
    was seen and no error, or a :class:`BuildError` saying the stream ended
    without one.
    """

    def __init__(self, *, started: float | None = None) -> None:
        self._started = time.monotonic() if started is None else started
        self._step: BuildStep | None = None
        self._image_id: str | None = None
        self._tags: list[str] = []
        self._error: BuildError | None = None
        self._done = False
        self._partial = ""
        self._partial_stream: Literal["stdout", "stderr"] = "stdout"
        self._stderr = False
        self._bk_vertices: dict[int, BuildStep] = {}
        self._bk_seen_steps: set[int] = set()
        self._bk_warnings = False
        self._last_error_like: str | None = None
        self._carry = ""
        self._buildkit_seen = False

    @property
    def step(self) -> BuildStep | None:
        return self._step

    @property
    def error(self) -> BuildError | None:
        return self._error

    @property
    def image_id(self) -> str | None:
        return self._image_id

    # -- SDK dicts -------------------------------------------------------------

    def feed_chunk(self, chunk: Mapping[str, Any]) -> list[BuildEvent]:
        """One decoded JSON object of the Docker build API stream."""
        events: list[BuildEvent] = []
        if "stream" in chunk:
            events += self._feed_stream_text(str(chunk["stream"]))
        if "aux" in chunk:
            aux = chunk["aux"]
            if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
                self._image_id = aux["ID"]
        if "error" in chunk or "errorDetail" in chunk:
            events += self._flush_partial()
            detail = chunk.get("errorDetail") or {}
            message = (detail.get("message") if isinstance(detail, Mapping) else None) or str(
                chunk.get("error", "build failed")
            )
            events += self._fail(message.strip())
        if "status" in chunk and "stream" not in chunk:
            progress = chunk.get("progressDetail") or {}
            events.append(
                BuildPull(
                    layer=str(chunk.get("id", "")),
                    status=str(chunk["status"]),
                    current=int(progress.get("current") or 0),
                    total=int(progress.get("total") or 0),
                )
            )
        return events

    def _feed_stream_text(self, text: str) -> list[BuildEvent]:
        events: list[BuildEvent] = []
        text, self._carry = self._carry + text, ""
        cut = text.rfind("\x1b")
        if cut >= 0 and any(
            code.startswith(text[cut:]) and code != text[cut:] for code in (_STDERR_ON, _STDERR_OFF)
        ):
            # An escape code cut in two by the engine: keep its head for the next chunk.
            text, self._carry = text[:cut], text[cut:]
        for token in re.split(r"(\x1b\[91m|\x1b\[0m)", text):
            if token == _STDERR_ON:
                self._stderr = True
                continue
            if token == _STDERR_OFF:
                self._stderr = False
                continue
            while token:
                if not self._partial:
                    self._partial_stream = "stderr" if self._stderr else "stdout"
                head, newline, token = token.partition("\n")
                self._partial += head
                if not newline:
                    break
                line, self._partial = self._partial, ""
                events += self.feed_line(line, stream=self._partial_stream)
        return events

    def _flush_partial(self) -> list[BuildEvent]:
        if not self._partial:
            return []
        line, self._partial = self._partial, ""
        return self.feed_line(line, stream=self._partial_stream)

    # -- text lines ------------------------------------------------------------

    def feed_line(
        self, line: str, *, stream: Literal["stdout", "stderr"] = "stdout"
    ) -> list[BuildEvent]:
        """One text line of any of the three formats (trailing newline optional)."""
        line = ANSI.sub("", line.rstrip("\r\n"))
        if stream == "stderr":
            return [BuildOutput(line, "stderr")]
        if m := RE_BK.match(line):
            self._buildkit_seen = True
            return self._buildkit(int(m["v"]), m["rest"])
        if self._buildkit_seen and not line.strip():
            return []  # BuildKit separates vertices with blank lines
        if m := RE_CLASSIC_STEP.match(line) or RE_PODMAN_STEP.match(line):
            self._step = BuildStep(int(m["i"]), int(m["n"] or 0), m["instr"].strip())
            return [self._step]
        if m := RE_CLASSIC_ARROW.match(line):
            rest = m["rest"]
            if rest.startswith("[Warning] "):
                return [BuildWarning(rest.removeprefix("[Warning] ").strip())]
            return []  # "Running in <id>", "Using cache", "<layer id>": builder chatter
        if line.startswith("Removing intermediate container "):
            return []
        if m := RE_CLASSIC_BUILT.match(line):
            self._image_id = self._image_id or m["id"]
            return []
        if m := RE_TAGGED.match(line):
            self._tags.append(m["tag"])
            return []
        if RE_CLASSIC_FAILED.match(line):
            return self._fail(line)
        if m := RE_PODMAN_ARROW.match(line):
            return []
        if m := RE_PODMAN_COMMIT.match(line):
            if m["tag"]:
                self._tags.append(m["tag"])
            return []
        if m := RE_PODMAN_ERROR.match(line):
            return self._fail(m["msg"])
        if m := RE_PODMAN_WARN.match(line):
            return [BuildWarning(m["msg"])]
        if m := RE_BK_FINAL_ERROR.match(line):
            if self._error is not None:
                return [BuildOutput(line, "stderr")]
            return self._fail(m["msg"])
        if RE_BK_WARNINGS.match(line):
            self._bk_warnings = True
            return [BuildWarning(line.strip())]
        if self._bk_warnings and line.startswith(" - "):
            return [BuildWarning(line.removeprefix(" - ").strip())]
        if m := RE_BARE_ID.match(line.strip()):
            # Podman prints the image id alone on the last line.
            self._image_id = m["id"]
            return []
        if m := RE_WARNING.match(line):
            return [BuildWarning(m["msg"])]
        if m := RE_ERROR_LIKE.match(line):
            self._last_error_like = m["msg"]
        if self._error is not None:
            return [BuildOutput(line, "stderr")]
        return [BuildOutput(line, "stdout")]

    def _buildkit(self, vertex: int, rest: str) -> list[BuildEvent]:
        if m := RE_BK_STEP.match(rest):
            step = BuildStep(int(m["i"]), int(m["n"]), m["instr"].strip())
            self._bk_vertices[vertex] = step
            if vertex in self._bk_seen_steps:
                return []
            self._bk_seen_steps.add(vertex)
            self._step = step
            return [step]
        if rest.startswith("ERROR: ") or rest.startswith("ERROR "):
            message = rest.partition(" ")[2].strip()
            step = self._bk_vertices.get(vertex, self._step)
            if self._error is None:
                self._error = BuildError(message, step)
                return [self._error]
            return [BuildOutput(rest, "stderr")]
        if m := RE_BK_OUTPUT.match(rest):
            return [BuildOutput(m["text"])]
        if m := RE_BK_WRITING.match(rest):
            self._image_id = m["id"]
            return []
        if m := RE_BK_NAMING.match(rest):
            self._tags.append(m["tag"])
            return []
        # "DONE 0.2s", "CACHED", "sha256:...", "[internal] load ...", "transferring ...":
        # BuildKit's own bookkeeping.
        return []

    def _fail(self, message: str) -> list[BuildEvent]:
        if self._error is not None:
            return [BuildOutput(message, "stderr")]
        self._error = BuildError(message, self._step)
        return [self._error]

    def finish(self) -> list[BuildEvent]:
        """End of the stream: the closing Done, or an error if there was no image."""
        if self._done:
            return []
        self._done = True
        events = self._flush_partial()
        if self._error is not None:
            return events
        if self._image_id is None:
            message = self._last_error_like or "the build ended without producing an image"
            return [*events, *self._fail(message)]
        duration = time.monotonic() - self._started
        return [*events, BuildDone(self._image_id, duration, tuple(self._tags))]


def parse_chunks(chunks: Iterable[Mapping[str, Any]]) -> Iterator[BuildEvent]:
    """Events of an SDK build stream (``APIClient.build(decode=True)``)."""
    parser = BuildLogParser()
    for chunk in chunks:
        yield from parser.feed_chunk(chunk)
    yield from parser.finish()


def parse_lines(lines: Iterable[str]) -> Iterator[BuildEvent]:
    """Events of a text build log (classic, BuildKit plain or Podman)."""
    parser = BuildLogParser()
    for line in lines:
        yield from parser.feed_line(line)
    yield from parser.finish()
