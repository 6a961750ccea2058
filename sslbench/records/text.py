"""Strings read from a store, made safe for where they are shown (torch-free, the one place for it).

A store, a sidecar or a log may come from someone else (a shared results folder, an unpacked archive), so any
string in it (a regularizer name, a message, a host, a device name) may hold markup or control characters:

* :func:`terminal` — for a terminal: drops ANSI/VT escape sequences (CSI ``ESC [ ... final``, OSC ``ESC ] ...
  BEL|ESC \\``, DCS/PM/APC strings, two-byte ``ESC x``), the C1 controls, the other C0 controls but newline and
  tab, DEL, and the bidirectional overrides that reorder what is shown (U+202A-U+202E, U+2066-U+2069). A store can
  then neither retitle the terminal (``ESC ]0;title BEL``) nor erase it (``ESC [2J``).
* :func:`one_line` — :func:`terminal`, then newlines, tabs and carriage returns collapsed to single spaces.
* :func:`markdown_cell` — for a cell of a Markdown table: one line, HTML escaped (``<script>`` is shown, not run),
  ``|`` escaped.
* :func:`markdown_text` — for ``st.markdown`` and other Markdown prose: one line, HTML escaped and Markdown's
  punctuation backslash-escaped, so that a name is shown as typed and never becomes a link, emphasis or maths.
* :func:`plotly_text` — for plotly trace names, labels and hover templates: one line, ``<`` ``>`` ``&`` as
  entities (plotly renders a subset of HTML: ``<a href>``, ``<b>``, ``<br>``) and the ``%`` of ``%{`` as ``&#37;``
  so that ``%{x}`` in a name is shown as typed rather than filled in by the hover template.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import sys
from typing import Iterator

__all__ = ["terminal", "one_line", "markdown_cell", "markdown_text", "plotly_text", "terminal_stdout"]

# ESC [ params intermediates final | ESC ] ... (BEL | ESC \) | ESC P/X/^/_ ... ESC \ | ESC one char | the 8-bit CSI
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)
# the controls left after the sequences: C0 but \t \n, DEL, C1, bidirectional overrides and isolates
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"[\t\n\r\v\f\u2028\u2029\x85]+")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$>])")


def terminal(text) -> str:
    """``text`` without escape sequences and control characters (newlines and tabs kept)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", str(text)))


def one_line(text) -> str:
    """``text`` for one line of a terminal, a table or a chart: :func:`terminal`, whitespace runs that break lines
    collapsed to one space."""
    return _CONTROLS.sub("", _SPACES.sub(" ", _ESCAPES.sub("", str(text))))


def markdown_cell(text) -> str:
    """``text`` as one cell of a Markdown table: one line, HTML escaped, ``|`` escaped."""
    return html.escape(one_line(text), quote=False).replace("|", "\\|")


def markdown_text(text) -> str:
    """``text`` inside Markdown prose (``st.markdown``): one line, HTML escaped, Markdown punctuation escaped."""
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line(text), quote=False))


def plotly_text(text) -> str:
    """``text`` for a plotly trace name, label or hover template: one line, ``<>&`` and the ``%`` of ``%{`` as
    entities."""
    return html.escape(one_line(text), quote=False).replace("%{", "&#37;{")


class _TerminalWriter(io.TextIOBase):
    """A text stream that passes what it is given to ``stream`` through :func:`terminal`."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, s: str) -> int:
        self._stream.write(terminal(s))
        return len(s)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")


@contextlib.contextmanager
def terminal_stdout() -> Iterator[None]:
    """While active, everything printed to ``sys.stdout`` goes through :func:`terminal` (for a command whose
    output is mostly strings from a store, e.g. ``sslbench sweep --status``)."""
    previous = sys.stdout
    sys.stdout = _TerminalWriter(previous)
    try:
        yield
    finally:
        sys.stdout = previous
