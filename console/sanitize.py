"""The one sanitiser: what a server, model or container says, made safe for a terminal.

Every byte from a server, a model or a container is untrusted. A model answer that
contains ``ESC ] 52 ; c ; ... BEL`` writes the operator's clipboard, ``ESC ] 0 ;``
sets the window title, ``ESC [ 2 J`` clears the screen, a carriage return
overwrites a line already shown. So everything such a peer says passes through
:func:`clean` (or a variant here) before it reaches a terminal or a Textual widget.
Transcripts and recordings on disk keep the exact text (JSON-escaped) and are not
cleaned: the sanitiser is for display only.

What happens to each kind of byte:

- Escape sequences, 7-bit (``ESC ...``) and 8-bit (C1 introducers): CSI
  (``ESC [`` / U+009B), OSC (``ESC ]`` / U+009D), DCS (``ESC P`` / U+0090), SOS
  (``ESC X`` / U+0098), PM (``ESC ^`` / U+009E), APC (``ESC _`` / U+009F),
  nF (``ESC`` + intermediates + final, e.g. charset designation) and two-byte
  escapes (``ESC c``, ``ESC 7``...) are dropped whole, payload included. A
  string sequence ends at ST (``ESC \\`` / U+009C), BEL, CAN or SUB; one that
  never ends drops the rest of the text (as a terminal would swallow it).
- Other C0 controls (U+0000-U+001F except tab and newline) and DEL are made
  visible as Unicode control pictures (BEL shows as ``␇``, backspace as ``␈``).
- Other C1 controls (U+0080-U+009F) show as U+FFFD ``�``.
- Carriage returns cannot overwrite: CR LF becomes LF, a lone CR becomes LF.
- Tab and newline pass (except in :func:`clean_line`, for one-line fields).

Text without any control character is returned as is (one regex search), so
cleaning every log line costs next to nothing.

For a stream cut into chunks (SSE deltas, ``logs -f``, a build log), use
:class:`StreamCleaner`: a sequence cut in two by the chunking is held back until
it completes, so its tail never shows as text.
"""

from __future__ import annotations

import re

__all__ = ["MAX_PENDING", "StreamCleaner", "clean", "clean_line", "clean_log_line"]

# Anything that needs attention: C0 except tab/newline, DEL, C1. ``\r`` is here too.
_SUSPECT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STRING_INTRODUCERS_7BIT = "]PX^_"  # OSC, DCS, SOS, PM, APC after ESC
_STRING_INTRODUCERS_C1 = "\x9d\x90\x98\x9e\x9f"  # OSC, DCS, SOS, PM, APC as C1
_STRING_END = re.compile(r"[\x07\x9c\x18\x1a\x1b]")  # BEL, ST, CAN, SUB, ESC
_DEL_PICTURE = "\u2421"  # ␡
_C1_PICTURE = "\ufffd"  # �
# A sequence held back by StreamCleaner longer than this is dropped: a peer that
# opens an OSC and never closes it must not make us buffer without bound.
MAX_PENDING = 4096


def clean(text: str) -> str:
    """``text`` safe to show on a terminal: sequences dropped, controls made visible.

    Tab and newline pass; CR cannot overwrite (becomes a newline). An escape
    sequence left open at the end is dropped with the rest of the text.
    """
    if not _SUSPECT.search(text):
        return text
    out, _pending = _scan(text, final=True)
    return out


def clean_line(text: str) -> str:
    """Like :func:`clean`, for one-line fields (model names, log lines, error titles).

    Newlines and tabs are made visible too (``␊``, ``␉``), so a hostile value
    cannot break a table row or a status line into several.
    """
    cleaned = clean(text)
    if "\n" in cleaned or "\t" in cleaned:
        cleaned = cleaned.replace("\n", "\u240a").replace("\t", "\u2409")
    return cleaned


def clean_log_line(line: str) -> str:
    """One log line (server, container, build) as a log view shows it.

    The line ending (LF, CR LF) is dropped and tabs pass; a CR inside the line
    (a progress bar's rewrite, or an attempt to hide what came before it) shows
    as ``␊`` instead of overwriting, and so does any other line break.
    """
    cleaned = clean(line.rstrip("\r\n"))
    return cleaned.replace("\n", "\u240a") if "\n" in cleaned else cleaned


class StreamCleaner:
    """:func:`clean` for text that arrives in chunks.

    ``feed`` returns what can be shown now; an escape sequence (or a CR that may
    be the first half of CR LF) at the end of a chunk is held back until the next
    chunk completes it, at most :data:`MAX_PENDING` characters. ``flush`` at the
    end of the stream returns the rest (an unfinished sequence is dropped).
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk if self._pending else chunk
        self._pending = ""
        if not _SUSPECT.search(text):
            return text
        out, pending = _scan(text, final=False)
        if len(pending) > MAX_PENDING:
            pending = ""  # never completed: dropped; what follows shows as plain text
        self._pending = pending
        return out

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return clean(text) if text else ""


def _visible(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return _DEL_PICTURE
    return _C1_PICTURE


def _scan(text: str, *, final: bool) -> tuple[str, str]:
    """Clean ``text``; return (shown, held back). ``final``: nothing more will come."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        match = _SUSPECT.search(text, i)
        if match is None:
            out.append(text[i:])
            break
        j = match.start()
        out.append(text[i:j])
        char = text[j]
        if char == "\r":
            if j + 1 < n:
                if text[j + 1] != "\n":
                    out.append("\n")
                i = j + 1  # CR LF: the LF is copied with the next stretch
                continue
            if final:
                out.append("\n")
                break
            return "".join(out), text[j:]
        if char == "\x1b" or char == "\x9b" or char in _STRING_INTRODUCERS_C1:
            end = _sequence_end(text, j)
            if end is None:  # open at the end of the text
                if final:
                    break
                return "".join(out), text[j:]
            i = end
            continue
        out.append(_visible(char))
        i = j + 1
    return "".join(out), ""


def _sequence_end(text: str, j: int) -> int | None:
    """Index just past the escape sequence starting at ``j``; None if it is still open."""
    n = len(text)
    char = text[j]
    if char == "\x9b":
        return _csi_end(text, j + 1)
    if char in _STRING_INTRODUCERS_C1:
        return _string_end(text, j + 1)
    # ESC
    if j + 1 >= n:
        return None
    nxt = text[j + 1]
    if nxt == "[":
        return _csi_end(text, j + 2)
    if nxt in _STRING_INTRODUCERS_7BIT:
        return _string_end(text, j + 2)
    if "\x20" <= nxt <= "\x2f":  # nF: intermediates, then a final byte
        k = j + 1
        while k < n and "\x20" <= text[k] <= "\x2f":
            k += 1
        if k >= n:
            return None
        return k + 1 if "\x30" <= text[k] <= "\x7e" else k
    if "\x30" <= nxt <= "\x7e":  # Fp/Fe/Fs two-byte escapes: ESC 7, ESC c, ESC M...
        return j + 2
    return j + 1  # ESC before a control or non-ASCII: drop the ESC alone


def _csi_end(text: str, k: int) -> int | None:
    """Past a CSI's parameters, intermediates and final byte (from ``k``)."""
    n = len(text)
    while k < n and "\x30" <= text[k] <= "\x3f":
        k += 1
    while k < n and "\x20" <= text[k] <= "\x2f":
        k += 1
    if k >= n:
        return None
    # Malformed (no final byte): what was read is dropped, the odd byte is scanned again.
    return k + 1 if "\x40" <= text[k] <= "\x7e" else k


def _string_end(text: str, k: int) -> int | None:
    """Past a string sequence's terminator (BEL, ST, CAN, SUB), from ``k``."""
    match = _STRING_END.search(text, k)
    if match is None:
        return None
    end = match.start()
    if text[end] != "\x1b":
        return end + 1
    if end + 1 >= len(text):
        return None  # maybe ESC \ cut in two
    if text[end + 1] == "\\":
        return end + 2
    return end  # another sequence starts: this one ended, that one is scanned next
