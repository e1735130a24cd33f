"""What is open at the end of a text: a code fence and XML-like tags (``cut_state``).

The repairer uses it for one rule: in user-turn, a piece that opens by reopening the fence or
tag that is still open at the cut (``"```python\\n"`` when the text stopped inside a python
block) has that line removed, since the text already opened it. ``CutScanner`` does the same
scan incrementally, for callers that see the text in pieces; each ``feed`` costs its own
length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cut import is_word_char

__all__ = ["LONG_LINE", "CutScanner", "CutState", "cut_state"]

#: A line longer than this is settled as it grows, so ``state()`` never rescans all of it.
LONG_LINE = 4096

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_TAG = re.compile(r"<(/?)([A-Za-z_][\w.\-:]*)(?:\s[^<>]*?)?(/?)>")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_VOID_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)

#: An open fence: (mark character, mark count, info string).
Fence = tuple[str, int, str]


@dataclass(frozen=True)
class CutState:
    """What is open at the end of a text: a code fence and XML-like tags."""

    #: Info string of an unclosed ``` / ~~~ fence ("" for a bare fence), None when none is open.
    open_fence: str | None
    #: Unclosed tags, outermost first (``("story_3",)``).
    open_tags: tuple[str, ...]
    #: The text ends inside a word (its last character is a letter, digit or mark).
    in_word: bool

    def to_dict(self) -> dict[str, Any]:
        return {"open_fence": self.open_fence, "open_tags": list(self.open_tags), "in_word": self.in_word}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CutState:
        return cls(data.get("open_fence"), tuple(data.get("open_tags") or ()), bool(data.get("in_word")))


class CutScanner:
    """``cut_state`` fed piece by piece.

    The unfinished last line is re-read by ``state()``; a line that grows past ``LONG_LINE``
    (minified JSON, a text with no newline) is settled up to its last ``<`` as it goes, so
    that re-read stays short.
    """

    def __init__(self) -> None:
        self._fence: Fence | None = None
        self._tags: list[str] = []
        self._line: list[str] = []
        self._line_len = 0
        #: The unfinished line's start was settled: what is kept is mid-line (no fence there).
        self._mid_line = False
        self._last = ""

    def feed(self, text: str) -> None:
        if not text:
            return
        self._last = text[-1]
        if "\n" not in text:
            self._line.append(text)
            self._line_len += len(text)
            if self._line_len > LONG_LINE:
                self._settle_long_line()
            return
        lines = text.split("\n")
        self._line.append(lines[0])
        self._fence = _apply_line("".join(self._line), self._fence, self._tags, not self._mid_line)
        for line in lines[1:-1]:
            self._fence = _apply_line(line, self._fence, self._tags)
        self._line, self._line_len, self._mid_line = [lines[-1]], len(lines[-1]), False
        if self._line_len > LONG_LINE:
            self._settle_long_line()

    def _settle_long_line(self) -> None:
        line = "".join(self._line)
        if self._fence is not None:
            # Inside a fence only a closing line matters: backticks, then only whitespace.
            head, rest = line[:64], line[64:]
            kept = head + ("\x00" if rest.strip() else "")
        elif not self._mid_line and _FENCE.match(line):
            return  # an opening fence with a huge info string: leave it whole
        else:
            cut = line.rfind("<")
            cut = len(line) if cut < 0 else cut
            _apply_line(line[:cut], None, self._tags, False)
            kept = line[cut:]
            self._mid_line = True
        self._line, self._line_len = [kept], len(kept)

    def state(self) -> CutState:
        tags = list(self._tags)
        fence = _apply_line("".join(self._line), self._fence, tags, not self._mid_line)
        in_word = bool(self._last) and is_word_char(self._last)
        return CutState(open_fence=fence[2] if fence else None, open_tags=tuple(tags), in_word=in_word)


def _apply_line(line: str, fence: Fence | None, tags: list[str], line_start: bool = True) -> Fence | None:
    """Update the fence and (in place) the open tags with one line (or, mid-line, its rest)."""
    match = _FENCE.match(line) if line_start else None
    if fence is not None:
        if (
            match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= fence[1]
            and not match.group(2).strip()
        ):
            return None
        return fence
    if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
        return (match.group(1)[0], len(match.group(1)), match.group(2).strip())
    for closing, name, self_closing in _TAG.findall(_INLINE_CODE.sub("", line)):
        if self_closing or name.lower() in _VOID_TAGS:
            continue
        if not closing:
            tags.append(name)
        elif name in tags:
            del tags[len(tags) - 1 - tags[::-1].index(name) :]
    return None


def cut_state(text: str) -> CutState:
    """Open code fence and open XML-like tags at the end of ``text`` (one pass, O(len(text)))."""
    scanner = CutScanner()
    scanner.feed(text)
    return scanner.state()
