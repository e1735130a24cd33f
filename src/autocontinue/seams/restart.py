"""Restarts: a user-turn piece that starts the answer, or its current section, over.

Evidence needed, on the piece (a restart is never trimmed as such; only the
verbatim overlap that reaches the end of the text is, by the echo rule):

- the piece (before or after its echo is trimmed) opens with the answer's first words (at
  least 4, at most ``HEAD_WORDS``; the answer's first lines may be missing when they hold one
  or two words, such as a fence or a tag line):
  answer ``"The river was quiet that morning. We walked..."``, piece ``"The river was quiet
  that morning. We walked along..."`` when the text is far past that. Where the piece opens
  a line of the text this is evidence only if the piece also reopened what was open at the
  cut (a fence or tag line, removed by the preamble rule): a line that repeats the answer's
  first one can be the text's own pattern (a refrain, a table's header row again), while no
  continuation repeats the answer's opening in the middle of a line; or
- its first line is, verbatim, the heading of the section the text is in, and the words after
  it are the section's first words again (``"## Results\\n\\nThe first"`` after ``"## Results
  \\n\\nThe first..."``; a second ``"## Example"`` section that goes on differently is not).

The engine retries such a round once with a firmer instruction before accepting it. So that
nothing of a restarted piece is shown first, the repairer holds a user-turn piece back until
the check is final: confirmed (``restart_confirmed``: the answer's first words are all there,
so the engine stops reading at once) or ruled out (``restart_ruled_out``: the opening already
differs, so no later text can make it one), and only when a restart is possible at all
(``could_restart``).
"""

from __future__ import annotations

import functools

__all__ = [
    "HEAD_WORDS",
    "SECTION_WORDS",
    "could_restart",
    "is_restart",
    "restart_confirmed",
    "restart_ruled_out",
]

#: Opening words of the answer compared with the piece's.
HEAD_WORDS = 8
_MIN_HEAD_WORDS = 4
#: Words after a section's heading a restart of the section repeats (fewer if it has fewer).
SECTION_WORDS = 4
#: Words of the answer's first lines the piece may skip ("```python" before "class Rectangle:").
_HEAD_SKIP = 2


@functools.lru_cache(maxsize=16)
def _head_windows(head: str) -> tuple[list[str], ...]:
    """The answer's first words, and the same after each of its first lines of at most
    ``_HEAD_SKIP`` words in all (a fence, a tag, a short title).

    Cached: the repairer asks on every delta of a piece's opening, about the same head."""
    words = head.split()[: HEAD_WORDS + _HEAD_SKIP]
    windows, skip = [words[:HEAD_WORDS]], 0
    lines = head.lstrip().split("\n")
    for line in lines[:-1]:
        skip += len(line.split())
        if skip > _HEAD_SKIP:
            break
        if line.split():
            windows.append(words[skip : skip + HEAD_WORDS])
    return tuple(windows)


@functools.lru_cache(maxsize=16)
def _current_heading(tail: str) -> tuple[str, str]:
    """The last markdown heading line in ``tail``, stripped, and the text after it ("" when none).

    Cached: the repairer asks on every delta of a piece's opening, about the same tail."""
    lines = tail.split("\n")
    for i in range(len(lines) - 2, -1, -1):
        line = lines[i]
        if line.lstrip().startswith("#") and line.strip("# \t"):
            return line.strip(), "\n".join(lines[i + 1 :])
    return "", ""


def _section_words(section: str) -> list[str]:
    """The section's first words a restart of it must repeat after its heading."""
    return section.split()[:SECTION_WORDS]


def _opens_like(words: list[str], head: list[str], least: int = _MIN_HEAD_WORDS) -> bool:
    """The first words equal the head's (the last one may be cut short by the cap)."""
    n = min(len(words), len(head))
    if n < least or n == 0:
        return False
    return words[: n - 1] == head[: n - 1] and head[n - 1].startswith(words[n - 1])


def _lead(kept: str) -> str:
    return kept[: len(kept) - len(kept.lstrip())]


def _at_line(kept: str, tail: str, line_start: bool, reopened: bool) -> bool:
    """Does the piece open a line of the text (and did not reopen what was open at the cut)?"""
    return not reopened and (line_start or tail.endswith("\n") or "\n" in _lead(kept))


def is_restart(kept: str, tail: str, head: str, *, line_start: bool = False, reopened: bool = False) -> bool:
    """Does ``kept`` (the start of what the piece adds) start ``head`` or the current section over?

    ``line_start``: the text was cut at a line start (whatever whitespace the piece brings);
    ``reopened``: the piece reopened what was open at the cut (a fence or tag line removed).
    """
    opening = kept.lstrip()
    if not opening:
        return False
    at_line = _at_line(kept, tail, line_start, reopened)
    words = opening.split()[:HEAD_WORDS]
    # The answer may open with a fence or tag line the piece's copy lost to the preamble rule.
    if not at_line and any(_opens_like(words, window) for window in _head_windows(head)):
        return True
    heading, section = _current_heading(tail)
    first, _, after = opening.partition("\n")
    if not heading or first.strip() != heading:
        return False
    expected = _section_words(section)
    return not expected or _opens_like(after.split()[: len(expected)], expected, len(expected))


def restart_confirmed(
    kept: str, tail: str, head: str, *, line_start: bool = False, reopened: bool = False
) -> bool:
    """Is ``is_restart`` True for every text that starts with ``kept``: the answer's first
    words all there, whole, mid-line?"""
    opening = kept.lstrip()
    if not opening or _at_line(kept, tail, line_start, reopened):
        return False
    words = opening.split()
    whole = words if opening[-1].isspace() else words[:-1]
    return any(len(whole) >= len(window) and _opens_like(whole, window) for window in _head_windows(head))


def could_restart(tail: str, head: str) -> bool:
    """Can any piece be a restart of ``head`` or of the section ``tail`` is in?"""
    return len(head.split()[:_MIN_HEAD_WORDS]) >= _MIN_HEAD_WORDS or bool(_current_heading(tail)[0])


def restart_ruled_out(
    kept: str, tail: str, head: str, *, line_start: bool = False, reopened: bool = False
) -> bool:
    """Is ``is_restart`` False for every text that starts with ``kept``, however it goes on?"""
    opening = kept.lstrip()
    if not opening:
        return not could_restart(tail, head)
    at_line = _at_line(kept, tail, line_start, reopened)
    if not at_line and not all(_differs(opening, window) for window in _head_windows(head)):
        return False
    heading, section = _current_heading(tail)
    if not heading:
        return True
    first, newline, after = opening.partition("\n")
    if not newline:
        return not heading.startswith(first.rstrip())
    if first.strip() != heading:
        return True
    expected = _section_words(section)
    return bool(expected) and bool(after.strip()) and _differs(after.lstrip(), expected, len(expected))


def _differs(opening: str, head: list[str], least: int = _MIN_HEAD_WORDS) -> bool:
    """Can no text starting with ``opening`` pass ``_opens_like(.., head, least)``?"""
    if len(head) < least:
        return True
    words = opening.split()
    complete = len(words) if opening[-1].isspace() else len(words) - 1  # the last may go on
    for i in range(min(len(words), len(head), HEAD_WORDS)):
        if not head[i].startswith(words[i]):  # word i of the final text must be a prefix of head's
            return True
        # It must equal head's unless it is the last word compared, which it is not when the
        # text already has a later word and head has one too.
        last_compared = len(words) < i + 2 or min(len(head), HEAD_WORDS) < i + 2
        if i < complete and words[i] != head[i] and not last_compared:
            return True
    return False
