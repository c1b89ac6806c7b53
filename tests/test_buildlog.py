"""Build stream -> events, on captures of the three formats (tests/data/buildlog)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from console.buildlog import (
    BuildDone,
    BuildError,
    BuildLogParser,
    BuildOutput,
    BuildPull,
    BuildStep,
    BuildWarning,
    event_text,
    parse_chunks,
    parse_lines,
)

DATA = Path(__file__).parent / "data" / "buildlog"


def chunks(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_classic_success_steps_output_and_done() -> None:
    events = list(parse_chunks(chunks("classic_ok.jsonl")))
    steps = of(events, BuildStep)
    assert [(s.index, s.total) for s in steps] == [(i, 5) for i in range(1, 6)]
    assert steps[3].instruction == "RUN echo out1; echo err1 >&2; sleep 0.3; echo out2"
    assert steps[4].instruction == 'ENTRYPOINT ["sh"]'
    assert of(events, BuildOutput) == []  # every RUN came from the cache
    done = events[-1]
    assert isinstance(done, BuildDone)
    assert done.image_id.startswith("sha256:945e0ec91056")
    assert done.tags == ("t/ok:1",)
    assert not of(events, BuildError)


def test_classic_failure_names_the_step_and_marks_stderr() -> None:
    events = list(parse_chunks(chunks("classic_fail.jsonl")))
    outputs = [(o.text, o.stream) for o in of(events, BuildOutput)]
    assert ("err1", "stderr") in outputs
    assert ("out1", "stdout") in outputs and ("step5", "stdout") in outputs
    # builder chatter is not output
    assert not any("Running in" in t or "Removing intermediate" in t for t, _ in outputs)
    warnings = of(events, BuildWarning)
    assert warnings and "IPv4 forwarding is disabled" in warnings[0].message
    error = events[-1]
    assert isinstance(error, BuildError)
    assert "returned a non-zero code: 3" in error.message
    assert error.step == BuildStep(5, 5, "RUN echo step5; exit 3")
    assert not of(events, BuildDone)


def test_pull_progress_and_error_detail_without_stream() -> None:
    parser = BuildLogParser()
    events = parser.feed_chunk(
        {
            "status": "Downloading",
            "id": "a1b2",
            "progressDetail": {"current": 10, "total": 40},
            "progress": "[==>   ]",
        }
    )
    assert events == [BuildPull("a1b2", "Downloading", 10, 40)]
    events = parser.feed_chunk({"error": "pull access denied for x", "errorDetail": {}})
    assert events == [BuildError("pull access denied for x", None)]
    assert parser.finish() == []


def test_stream_without_image_is_an_error() -> None:
    events = list(parse_chunks([{"stream": "Step 1/1 : FROM x\n"}]))
    assert isinstance(events[-1], BuildError)
    assert events[-1].step == BuildStep(1, 1, "FROM x")


@given(st.data())
def test_classic_stream_split_anywhere_gives_same_events(data: st.DataObject) -> None:
    """The engine may cut stream text at any byte; events must not depend on it."""
    source = chunks("classic_fail.jsonl")
    expected = list(parse_chunks(source))
    rechunked: list[dict] = []
    for chunk in source:
        text = chunk.get("stream")
        if text is None or len(text) < 2:
            rechunked.append(chunk)
            continue
        cuts = sorted(data.draw(st.sets(st.integers(1, len(text) - 1), max_size=3)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        rechunked += [{"stream": p} for p in pieces]
    assert list(parse_chunks(rechunked)) == expected


def test_buildkit_plain_success() -> None:
    events = list(parse_lines(lines("buildkit_20.10_ok.txt")))
    steps = of(events, BuildStep)
    assert [(s.index, s.total, s.instruction) for s in steps] == [
        (1, 3, "FROM docker.io/local/busybox:latest"),
        (2, 3, "COPY x.txt /x.txt"),
        (3, 3, "RUN echo out1; echo err1 >&2; sleep 0.3; echo out2"),
    ]
    assert [o.text for o in of(events, BuildOutput)] == ["out1", "err1", "out2"]
    done = events[-1]
    assert isinstance(done, BuildDone)
    assert done.image_id == (
        "sha256:366a4cceeafa8cd0ffac41fd372efa3a69d52c7299514e5eb4cd1fff0bee3d1b"
    )
    assert done.tags == ("docker.io/t/bk:2",)


def test_buildkit_plain_failure_names_the_step() -> None:
    for name in ("buildkit_20.10_fail.txt", "buildkit_buildx_fail.txt"):
        events = list(parse_lines(lines(name)))
        errors = of(events, BuildError)
        assert len(errors) == 1, name
        assert errors[0].step == BuildStep(4, 4, "RUN echo step5; exit 3"), name
        assert "exit code: 3" in errors[0].message
        assert not of(events, BuildDone)
        assert "step5" in [o.text for o in of(events, BuildOutput)]


def test_buildkit_interleaved_vertices_keep_their_step() -> None:
    text = [
        "#5 [a 2/3] RUN sleep 1",
        "#6 [b 2/3] RUN exit 1",
        "#5 0.1 still running",
        "#6 ERROR: process did not complete successfully: exit code: 1",
        "#5 DONE 1.0s",
    ]
    events = list(parse_lines(text))
    error = of(events, BuildError)[0]
    assert error.step == BuildStep(2, 3, "RUN exit 1")


def test_podman_success_and_failure() -> None:
    ok = list(parse_lines(lines("podman_ok.txt")))
    assert [(s.index, s.total) for s in of(ok, BuildStep)] == [(i, 5) for i in range(1, 6)]
    assert [o.text for o in of(ok, BuildOutput)] == ["out1", "err1", "out2"]
    done = ok[-1]
    assert isinstance(done, BuildDone)
    assert done.image_id.startswith("945e0ec91056")
    assert "localhost/t/ok:1" in done.tags

    bad = list(parse_lines(lines("podman_fail.txt")))
    error = bad[-1]
    assert isinstance(error, BuildError)
    assert error.step == BuildStep(5, 5, "RUN echo step5; exit 3")
    assert "exit status 3" in error.message


def test_run_output_that_looks_like_an_error_is_not_a_failure() -> None:
    events = list(
        parse_lines(
            [
                "STEP 1/2: FROM x",
                "STEP 2/2: RUN pip install y",
                "Error: this is a program's own stdout",
                "--> 0123456789ab",
                "0123456789ab" * 5 + "0123",
            ]
        )
    )
    assert isinstance(events[-1], BuildDone)
    assert not of(events, BuildError)


def test_event_text_replays_to_the_same_steps() -> None:
    """The log file (event_text lines) parses back to the same steps and error."""
    events = list(parse_chunks(chunks("classic_fail.jsonl")))
    text = [t for e in events if (t := event_text(e)) is not None]
    replay = list(parse_lines(text))
    assert of(replay, BuildStep) == of(events, BuildStep)
    assert of(replay, BuildError)[0].step == of(events, BuildError)[0].step


def test_terminal_view_draws_a_progress_bar_and_plain_output_when_piped() -> None:
    import io

    from console.commands.build import BuildView

    events = list(parse_chunks(chunks("classic_fail.jsonl")))
    tty = io.StringIO()
    view = BuildView(tty, tty=True, width=80)
    for event in events:
        view.show(event)
    view.close()
    text = tty.getvalue()
    assert "\r\x1b[K" in text
    assert "[##############----------] step 4/5 RUN echo out1" in text
    assert "\x1b[31merr1\x1b[0m" in text  # stderr in red
    assert text.endswith("\r\x1b[K")  # the bar is cleared at the end

    piped = io.StringIO()
    view = BuildView(piped, tty=False)
    for event in events:
        view.show(event)
    lines = piped.getvalue().splitlines()
    assert "\x1b" not in piped.getvalue()
    assert lines[0] == "Step 1/5: FROM local/busybox:latest"
    assert "err1" in lines and "step5" in lines
