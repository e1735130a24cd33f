"""What reaches a terminal: control characters from models and servers are made visible.

Model output, API error messages, model names and journal contents are not ours: an escape
sequence in them could set the window title, write the clipboard (OSC 52), clear the screen
or make the terminal answer a query. When the stream is a terminal, every control character
but newline and tab (C0, DEL, C1) is shown as a ``\\x1b``-style escape; ``--raw`` keeps the
answer's bytes as they are. To a pipe or file the answer is written byte-exact.
"""

from __future__ import annotations

import re
from typing import IO, Any

from ..jsontext import inert

__all__ = ["visible", "is_terminal", "for_stream", "json_for_terminal", "set_raw", "raw_answer"]

#: C0 controls except tab and newline, DEL, and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_raw = False


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab shown as ``\\xNN``."""
    return _CONTROL.sub(_escape, text)


def is_terminal(stream: IO[Any] | Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def for_stream(text: str, stream: IO[Any] | Any, *, answer: bool = False) -> str:
    """``text`` as it may be written to ``stream``: made visible on a terminal.

    ``answer``: the text is the model's answer, which ``--raw`` lets through unchanged.
    """
    if (answer and _raw) or not is_terminal(stream):
        return text
    return visible(text)


def json_for_terminal(text: str) -> str:
    """A JSON document safe on a terminal: the C1 controls and DEL that ``json.dumps`` leaves
    raw (with ``ensure_ascii=False``) become ``\\u`` escapes, so the JSON stays valid (the rule
    is ``jsontext.inert``'s, which every JSON written for the user follows)."""
    return inert(text)


def set_raw(value: bool) -> None:
    """``--raw``: write the answer's control characters to the terminal as they are."""
    global _raw
    _raw = value


def raw_answer() -> bool:
    return _raw
