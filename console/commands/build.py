"""``vllm-console build NAME``: build a profile's image, live in the terminal.

On a terminal the output scrolls above a one-line progress bar (step i of N
and the instruction), redrawn in place with plain ANSI; piped, every line is
printed as it comes and the bar is left out. The full log goes to a file
under the state folder either way, and its path is printed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from console.commands.server import add_docker_host_arg
from console.errors import ConsoleError

if TYPE_CHECKING:
    from console.buildlog import BuildEvent, BuildStep

RED = "\x1b[31m"
YELLOW = "\x1b[33m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"
CLEAR_LINE = "\r\x1b[K"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``build``."""
    p = subparsers.add_parser(
        "build",
        help="build a profile's server image (live log, progress bar)",
        description="Build the image of a docker-runtime profile on its engine (--docker-host, "
        "the profile's docker_host, DOCKER_HOST or the default socket). The full log is saved "
        "under the state folder (builds/).",
    )
    p.add_argument("name", metavar="NAME|PATH", help="profile name or YAML file")
    p.add_argument("--no-cache", action="store_true", help="rebuild every step")
    p.add_argument(
        "--network",
        metavar="MODE",
        help="network of RUN steps (default: the profile's image.network_mode, usually host)",
    )
    p.add_argument(
        "--no-patch-check",
        action="store_true",
        help="do not check that PR patches can be fetched before building",
    )
    add_docker_host_arg(p)
    p.set_defaults(func=cmd_build)


class BuildView:
    """Renders build events to a stream; a progress bar only on a terminal."""

    def __init__(self, out: TextIO, *, tty: bool | None = None, width: int | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.width = width or shutil.get_terminal_size((100, 24)).columns
        self.step: BuildStep | None = None
        self._bar_shown = False

    def bar(self) -> str:
        step = self.step
        if step is None:
            return "preparing build context..."
        total = step.total or step.index
        done = max(0, step.index - 1) / total if total else 0.0
        cells = 24
        filled = round(done * cells)
        head = f"[{'#' * filled}{'-' * (cells - filled)}] step {step.index}/{step.total or '?'} "
        room = max(10, self.width - len(head) - 1)
        from console.sanitize import clean_line

        instr = clean_line(step.instruction.replace("\n", " "))
        if len(instr) > room:
            instr = instr[: room - 1] + "…"
        return head + instr

    def _line(self, text: str) -> None:
        if self.tty:
            self.out.write(CLEAR_LINE + text + "\n")
            self.out.write(BOLD + self.bar() + RESET)
            self._bar_shown = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def show(self, event: BuildEvent) -> None:
        from console.buildlog import (
            BuildDone,
            BuildError,
            BuildOutput,
            BuildPull,
            BuildStep,
            BuildWarning,
        )
        from console.sanitize import clean_log_line as c  # the build's output: untrusted

        match event:
            case BuildStep():
                self.step = event
                total = f"/{event.total}" if event.total else ""
                text = f"Step {event.index}{total}: {c(event.instruction)}"
                self._line(f"{BOLD}{text}{RESET}" if self.tty else text)
            case BuildOutput(text, "stderr"):
                text = c(text)
                self._line(f"{RED}{text}{RESET}" if self.tty else text)
            case BuildOutput(text, _):
                self._line(c(text))
            case BuildWarning(message):
                message = c(message)
                self._line(
                    f"{YELLOW}warning: {message}{RESET}" if self.tty else f"warning: {message}"
                )
            case BuildPull(layer, status, current, total):
                layer, status = c(layer), c(status)
                if self.tty and total:
                    pct = 100 * current // total
                    self.out.write(f"{CLEAR_LINE}pulling {layer}: {status} {pct}%")
                    self.out.flush()
                elif not self.tty and status.startswith(("Pull complete", "Status:")):
                    self._line(f"{layer}: {status}".strip(": "))
            case BuildError():
                self.close()  # the command reports it once, with the step and the log path
            case BuildDone(image_id, duration_s, tags):
                self.close()
                names = c(", ".join(tags)) or "untagged"
                self.out.write(f"built {image_id[:19]} ({names}) in {duration_s:.1f} s\n")
                self.out.flush()

    def close(self) -> None:
        if self.tty and self._bar_shown:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self._bar_shown = False


def cmd_build(args: argparse.Namespace) -> int:
    # Here, not at the top: docker, requests and pydantic would slow every CLI start.
    from console.buildlog import BuildDone, BuildError
    from console.commands.server import with_docker_host
    from console.profiles import load_profile
    from console.runtime.build import ImageBuild, failure_message

    profile = load_profile(args.name)
    if profile.runtime == "docker":
        profile = with_docker_host(profile, args.docker_host)
    if profile.runtime != "docker" or profile.image is None:
        raise ConsoleError(
            f"profile {profile.name} runs on the {profile.runtime} runtime and has no "
            "image to build",
            hint="`vllm-console build` is for docker-runtime profiles with an 'image' section",
        )
    if not profile.image.needs_build:
        print(
            f"profile {profile.name} runs the stock image {profile.image.base} as it is: "
            "nothing to build (the engine pulls it on first start, or `docker pull` it now)"
        )
        return 0
    build = ImageBuild(
        profile,
        no_cache=args.no_cache,
        network_mode=args.network,
        check_patches=not args.no_patch_check,
    )
    view = BuildView(sys.stdout)
    print(f"building {profile.image.tag} from {profile.image.base} (log: {build.log_path})")
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        build.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        for event in build:
            view.show(event)
    finally:
        view.close()
        signal.signal(signal.SIGINT, previous)
    result = build.result
    if isinstance(result, BuildDone):
        print(f"log: {build.log_path}")
        return 0
    if interrupted.is_set():
        print(f"build cancelled; log: {build.log_path}", file=sys.stderr)
        return 130
    if isinstance(result, BuildError):
        raise ConsoleError(failure_message(result, build))
    raise ConsoleError(f"build of {profile.name} ended without a result; log: {build.log_path}")
