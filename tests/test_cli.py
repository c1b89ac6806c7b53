"""The CLI contract: every area's subcommands are wired and usage errors exit 2."""

import subprocess
import sys

from console.cli import build_parser, main


def test_parser_builds_with_every_area() -> None:
    parser = build_parser()
    assert parser.prog == "vllm-console"


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "console", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_version() -> None:
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
