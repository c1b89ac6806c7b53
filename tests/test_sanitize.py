"""The one sanitiser: a table of every sequence kind, chunked streams, and invariants."""

from __future__ import annotations

import re

import pytest

from console.sanitize import MAX_PENDING, StreamCleaner, clean, clean_line

ESC = "\x1b"
BEL = "\x07"
ST = ESC + "\\"

# (name, hostile input, what the terminal may be shown)
CASES = [
    ("plain", "hello world", "hello world"),
    ("tab and newline pass", "a\tb\nc", "a\tb\nc"),
    ("unicode passes", "héllo — ünïcode ✓ 日本", "héllo — ünïcode ✓ 日本"),
    ("CSI SGR colour", f"{ESC}[31mred{ESC}[0m", "red"),
    ("CSI clear screen", f"before{ESC}[2J{ESC}[Hafter", "beforeafter"),
    ("CSI private mode", f"{ESC}[?1049hx{ESC}[?25l", "x"),
    ("CSI with intermediate", f"a{ESC}[2 qb", "ab"),
    ("CSI malformed keeps next byte", f"a{ESC}[12\x07b", "a\u2407b"),
    ("C1 CSI U+009B", "a\x9b2Jb", "ab"),
    ("OSC 0 title, BEL", f"x{ESC}]0;pwned title{BEL}y", "xy"),
    ("OSC 2 title, ST", f"x{ESC}]2;pwned{ST}y", "xy"),
    ("OSC 52 clipboard", f"x{ESC}]52;c;cm0gLXJmIH4={BEL}y", "xy"),
    (
        "OSC 8 hyperlink",
        f"{ESC}]8;;https://evil.example{ST}click{ESC}]8;;{ST}",
        "click",
    ),
    ("C1 OSC U+009D with C1 ST", "x\x9d0;title\x9cy", "xy"),
    ("DCS", f"x{ESC}Pq#0;2;0;0;0{ST}y", "xy"),
    ("C1 DCS U+0090", "x\x90payload\x9cy", "xy"),
    ("SOS", f"x{ESC}Xsecret{ST}y", "xy"),
    ("PM", f"x{ESC}^privacy{ST}y", "xy"),
    ("APC", f"x{ESC}_Gf=100;AAAA{ST}y", "xy"),
    ("C1 APC U+009F", "x\x9fapc\x9cy", "xy"),
    ("string ended by CAN", f"x{ESC}]0;t\x18y", "xy"),
    ("string ended by next ESC", f"x{ESC}]0;t{ESC}[1my", "xy"),
    ("unterminated OSC drops the rest", f"x{ESC}]52;c;AAAA", "x"),
    ("nF charset designation", f"a{ESC}(Bb", "ab"),
    ("two-byte ESC c (reset)", f"a{ESC}cb", "ab"),
    ("two-byte ESC 7 / ESC 8", f"a{ESC}7b{ESC}8c", "abc"),
    ("lone ESC at end", f"abc{ESC}", "abc"),
    ("ESC before a control", f"a{ESC}\x07b", "a\u2407b"),
    ("BEL visible", f"ding{BEL}", "ding\u2407"),
    ("backspace visible", "abc\x08\x08X", "abc\u2408\u2408X"),
    ("NUL visible", "a\x00b", "a\u2400b"),
    ("vertical tab / form feed visible", "a\x0bb\x0cc", "a\u240bb\u240cc"),
    ("DEL visible", "a\x7fb", "a\u2421b"),
    ("other C1 visible (NEL)", "a\x85b", "a\ufffdb"),
    ("CR overwrite becomes newline", "safe text\rEVIL", "safe text\nEVIL"),
    ("CR LF becomes LF", "a\r\nb\r\n", "a\nb\n"),
    ("trailing CR", "abc\r", "abc\n"),
]


@pytest.mark.parametrize(("name", "raw", "shown"), CASES, ids=[c[0] for c in CASES])
def test_clean_table(name: str, raw: str, shown: str) -> None:
    assert clean(raw) == shown


_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(("name", "raw", "shown"), CASES, ids=[c[0] for c in CASES])
def test_no_control_survives_any_chunking(name: str, raw: str, shown: str) -> None:
    """Fed in every two-chunk split, the stream cleaner shows exactly what clean shows."""
    for cut in range(len(raw) + 1):
        cleaner = StreamCleaner()
        out = cleaner.feed(raw[:cut]) + cleaner.feed(raw[cut:]) + cleaner.flush()
        assert out == shown, f"cut at {cut}"
        assert not _UNSAFE.search(out)


def test_stream_char_by_char() -> None:
    raw = "".join(case[1] for case in CASES[:-5])  # all but the "drops the rest" tails
    raw = raw.replace(f"{ESC}]52;c;AAAA", "")
    cleaner = StreamCleaner()
    out = "".join(cleaner.feed(ch) for ch in raw) + cleaner.flush()
    assert out == clean(raw)
    assert not _UNSAFE.search(out)


def test_stream_bounded_pending() -> None:
    """An OSC that never ends is dropped after MAX_PENDING characters, not buffered forever."""
    cleaner = StreamCleaner()
    assert cleaner.feed(f"ok{ESC}]0;") == "ok"
    cleaner.feed("x" * (MAX_PENDING + 10))
    assert cleaner.feed("tail") == "tail"


def test_clean_line_makes_newline_visible() -> None:
    assert clean_line("model\nname\tx\r") == "model\u240aname\u2409x\u240a"
    assert clean_line(f"{ESC}]0;t{BEL}gemma") == "gemma"


def test_plain_text_is_same_object() -> None:
    """The fast path: no control character, no copy."""
    text = "a plain log line " * 10
    assert clean(text) is text
