"""PageParser: the poller's parser gives exactly what the full parse gives.

The full parse (:func:`console.metrics.parse_metrics`, prometheus-client's
parser over the wanted lines) is the reference; the parser that remembers
label sets and skips unchanged pages must agree with it on every real
capture, page after page, and fall back to it (errors included) on anything
unusual. Its memory holds one page's series, whatever the server sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console import metric_names as N
from console.metrics import MetricsError, PageParser, derive, parse_metrics

HERE = Path(__file__).parent
CAPTURES = sorted(
    [
        *(HERE / "data" / "vllm-0.32-cpu").glob("*.prom"),
        *(HERE / "data" / "metrics").glob("*.prom"),
        *Path("/work/shared/fixtures/vllm-0.32-cpu").glob("*.prom"),
    ]
)


def same(a, b) -> None:
    assert repr(dict(a.series)) == repr(dict(b.series))  # repr: NaN equals NaN
    assert a.nonfinite == b.nonfinite
    assert a.timestamp == b.timestamp and a.url == b.url


def test_captures_exist() -> None:
    assert len(CAPTURES) >= 3, CAPTURES


@pytest.mark.parametrize("names", [N.WANTED, None], ids=["wanted", "all"])
def test_every_capture_page_after_page_equals_the_full_parse(names) -> None:
    parser = PageParser(names)
    pages = [p.read_text() for p in CAPTURES]
    # Each page after each other one: cold, warm (remembered labels), repeated.
    for i, text in enumerate(pages + pages[::-1] + pages):
        got = parser.parse(text, timestamp=float(i), url="http://x/metrics")
        same(got, parse_metrics(text, timestamp=float(i), url="http://x/metrics", names=names))


def test_remembered_labels_are_used_and_figures_match() -> None:
    idle, after = (
        HERE / "data" / "vllm-0.32-cpu" / n
        for n in ("metrics_idle.prom", "metrics_after_requests.prom")
    )
    parser = PageParser()
    first = parser.parse(idle.read_text(), timestamp=1.0)
    assert parser.cache_hits == 0
    second = parser.parse(after.read_text(), timestamp=2.0)
    assert parser.cache_hits > 100  # the same series, only values moved
    full = derive(
        parse_metrics(after.read_text(), timestamp=2.0),
        parse_metrics(idle.read_text(), timestamp=1.0),
    )
    assert derive(second, first) == full


def test_an_unchanged_vllm_part_is_not_parsed_again() -> None:
    text = (HERE / "data" / "vllm-0.32-cpu" / "metrics_ngram.prom").read_text()
    parser = PageParser()
    a = parser.parse(text, timestamp=1.0)
    # Only a process counter moved: the same series object, re-stamped.
    moved = text.replace("process_cpu_seconds_total", 'process_cpu_seconds_total{x="1"}', 1)
    b = parser.parse(moved, timestamp=2.0)
    assert parser.unchanged == 1 and b.series is a.series and b.timestamp == 2.0
    # One vllm: value moved: parsed again.
    line = next(ln for ln in text.splitlines() if ln.startswith("vllm:generation_tokens_total"))
    c = parser.parse(text.replace(line, line.rsplit(" ", 1)[0] + " 123456.0"), timestamp=3.0)
    assert parser.unchanged == 0 and c.series is not a.series
    assert c.total(N.GENERATION_TOKENS) == 123456.0


def test_memory_holds_one_page_whatever_the_server_sends() -> None:
    parser = PageParser()
    for i in range(50):
        # A hostile server: new label values on every page.
        page = "vllm:num_requests_running 1\n" + "".join(
            f'vllm:generation_tokens_total{{engine="{i}-{j}"}} {j}\n' for j in range(20)
        )
        s = parser.parse(page, timestamp=float(i))
        assert len(s.series["vllm:generation_tokens_total"]) == 20
    assert len(parser._keys) == 21


@pytest.mark.parametrize(
    "page",
    [
        "vllm:num_requests_running 1 1700000000000\n",  # a timestamp
        "vllm:num_requests_running 1\nvllm:num_requests_running 2\n",  # a duplicate
        'vllm:num_requests_running{a="x y}"} 3\n',  # brace and space inside a label value
        'vllm:num_requests_running{a="q\\"uote"} +Inf\n',
        "vllm:num_requests_running NaN\n",
        "vllm:num_requests_running 1_000\n",
        "vllm:num_requests_running\n",
        'vllm:num_requests_running{a="1"\n',
        "vllm:num_requests_running{} 2\n",
        "vllm:num_requests_running abc\n",
        "vllm:num_requests_running -2\nvllm:num_requests_waiting 1e3\n",
        "garbage\nvllm:num_requests_running 1\n",
        'vllm:num_requests_running 1 # {a="b"} 1\n',
    ],
)
def test_odd_lines_give_what_the_full_parser_gives(page: str) -> None:
    def outcome(parse):
        try:
            s = parse()
        except MetricsError as exc:
            return ("error", exc.message)
        return ("ok", repr(dict(s.series)), s.nonfinite)

    want = outcome(lambda: parse_metrics(page, timestamp=1.0, url="u"))
    warm = PageParser()
    warm.parse("vllm:num_requests_running 0\n", timestamp=0.0, url="u")
    for parser in (PageParser(), warm):
        assert outcome(lambda p=parser: p.parse(page, timestamp=1.0, url="u")) == want


label_value = st.text(st.characters(codec="ascii", exclude_characters="\n\r"), max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["vllm:num_requests_running", "vllm:generation_tokens_total", "vllm:x_total"]
            ),
            st.dictionaries(st.sampled_from(["engine", "le", "a"]), label_value, max_size=2),
            st.sampled_from(["0", "1", "1.5", "-2", "NaN", "+Inf", "1e3", "7"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_small_page_twice_equals_the_full_parse(rows) -> None:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    lines = []
    for name, labels, value in rows:
        lab = ",".join(f'{k}="{esc(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")
    page = "\n".join(lines) + "\n"
    parser = PageParser()
    for t in (1.0, 2.0):
        try:
            want = parse_metrics(page, timestamp=t)
        except MetricsError as exc:
            with pytest.raises(MetricsError) as got:
                parser.parse(page, timestamp=t)
            assert got.value.message == exc.message
            continue
        same(parser.parse(page, timestamp=t), want)
