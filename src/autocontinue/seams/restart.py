"""Restarts: a user-turn piece that starts the answer, or its current section, over.

Evidence needed, on the piece (a restart is never trimmed as such; only the
verbatim overlap that reaches the end of the text is, by the echo rule):

- the piece (before or after its echo is trimmed) opens with the answer's first words (at
  least 4, at most ``HEAD_WORDS``; one or two opening words such as a fence may be missing):
  answer ``"The river was quiet that morning. We walked..."``, piece ``"The river was quiet
  that morning. We walked along..."`` when the text is far past that; or
- its first line is, verbatim, the heading of the section the text is in (``"## Results"``
  after ``"## Results\\n\\nThe first..."``).

The engine retries such a round once with a firmer instruction before accepting it.
"""

from __future__ import annotations

__all__ = ["HEAD_WORDS", "is_restart"]

#: Opening words of the answer compared with the piece's.
HEAD_WORDS = 8
_MIN_HEAD_WORDS = 4
#: Leading words of the answer the piece may skip ("```python" before "class Rectangle:").
_HEAD_SKIP = 2


def _current_heading(tail: str) -> str:
    """The last markdown heading line in ``tail``, stripped ("" when there is none)."""
    for line in reversed(tail.split("\n")[:-1]):
        if line.lstrip().startswith("#") and line.strip("# \t"):
            return line.strip()
    return ""


def _opens_like(words: list[str], head: list[str]) -> bool:
    """The first words equal the head's (the last one may be cut short by the cap)."""
    n = min(len(words), len(head))
    if n < _MIN_HEAD_WORDS:
        return False
    return words[: n - 1] == head[: n - 1] and head[n - 1].startswith(words[n - 1])


def is_restart(kept: str, tail: str, head: str) -> bool:
    """Does ``kept`` (the start of what the piece adds) start ``head`` or the current section over?"""
    opening = kept.lstrip()
    if not opening:
        return False
    words, head_words = opening.split()[:HEAD_WORDS], head.split()[: HEAD_WORDS + _HEAD_SKIP]
    # The answer may open with a fence or heading line the piece's copy lost to the preamble rule.
    if any(_opens_like(words, head_words[skip : skip + HEAD_WORDS]) for skip in range(_HEAD_SKIP + 1)):
        return True
    heading = _current_heading(tail)
    return bool(heading) and opening.split("\n", 1)[0].strip() == heading
