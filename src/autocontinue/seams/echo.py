"""Echoes: a user-turn piece that opens by repeating the end of the text it was given.

Evidence needed (all of it; otherwise the piece is the answer going on and is kept):

1. A verbatim suffix overlap: the piece starts (at 0, after its leading whitespace, or after
   an ellipsis) with ``tail[i:]``, a stretch of the sent text that begins at a word start and
   runs to its very last character. Example: tail ``"...the quick"``, piece ``"quick brown"``:
   ``"quick"`` reaches the end of the tail. A piece that repeats an earlier stretch without
   reaching the end (``"the qui"`` after ``"the quick"``) proves nothing; if it ends there at
   the cap the report says ``unresolved`` and the text is kept.
2. The word the model was asked to regenerate (the held word, ``bro`` of ``" bro"``) decides
   between the readings. The piece read as-is ("plain") and the piece after the overlap are
   each ``exact`` (they open with the held whitespace and word: ``" brown"``), ``loose`` (the
   word after other whitespace: ``"brown"``), or ``no``. In order: plain exact keeps
   everything; an overlap followed by an exact reading is trimmed (the shortest: in text that
   repeats itself a longer one may be the answer going on); plain loose keeps; an
   overlap followed by a loose reading is trimmed; if neither reading regenerates the word, an
   overlap at 0 (or after an ellipsis) that holds a letter or digit is trimmed.
3. Word ends: the text before the held word ended at a word end, so an overlap that the piece
   goes on gluing letters to (``"quick"`` in ``"quickly"``, ``"I"`` in ``"I'm"``) is not a
   repeat of that word, unless it spans three words or more (a long verbatim overlap).
4. Punctuation alone (``"|"``) is an overlap only when the exact reading follows it
   (``"| permission"`` after ``"| 403 |"`` with held ``" permissio"``).

Under prefill nothing is an echo: a model continuing its own turn does not repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from .cut import continues_word, has_content, is_extender, is_grapheme_boundary
from .preamble import MORE, Need

UNRESOLVED: Final = Need.UNRESOLVED

__all__ = ["ECHO_WINDOW", "EchoSearch", "Overlap", "Reading", "Tail", "choose_overlap", "read_held"]

#: Trailing characters of the text searched for a repeated tail (the engine passes
#: ``base[-ECHO_WINDOW:]``).
ECHO_WINDOW = 2000
#: An overlap of this many words overrides the word-end guard.
LONG_OVERLAP_WORDS = 3

#: How a stretch of the piece regenerates the held whitespace and word.
Reading = Literal["exact", "loose", "no"]

_OPENING_PUNCT = frozenset("\"'“‘«([{<*_")


@dataclass(frozen=True)
class Overlap:
    """``tail[start:]`` found at ``lead`` in the piece (after whitespace or an ellipsis)."""

    lead: int
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.lead + self.length


class Tail:
    """The searched window of the text so far; word starts are found per first character."""

    def __init__(self, text: str, whole: bool) -> None:
        self.text = text
        #: ``text`` is the whole text, so index 0 is a word start.
        self.whole = whole

    def starts_with(self, ch: str) -> list[int]:
        """Word starts whose first character is ``ch``, in order."""
        text, out = self.text, []
        i = text.find(ch)
        while i >= 0:
            if self._is_start(i):
                out.append(i)
            i = text.find(ch, i + 1)
        return out

    def _is_start(self, i: int) -> bool:
        text = self.text
        if text[i].isspace():
            return False
        if i == 0:
            return self.whole and not is_extender(text[0])
        if not is_grapheme_boundary(text, i):
            return False
        prev = text[i - 1]
        if prev.isspace():
            return True
        return text[i].isalnum() and prev in _OPENING_PUNCT and (i < 2 or not text[i - 2].isalnum())


def read_held(text: str, held_ws: str, word: str, final: bool) -> Reading | Literal[Need.MORE]:
    """How ``text`` regenerates the held whitespace and word; MORE until it can tell."""
    expected = held_ws + word
    if not expected:
        return "loose"
    if text.startswith(expected) or (final and text and expected.startswith(text)):
        return "exact"
    if not final and expected.startswith(text):
        return MORE
    if not word:
        return "loose"
    stripped = text.lstrip()
    if stripped.startswith(word) or (final and stripped and word.startswith(stripped)):
        return "loose"
    if not final and (not stripped or word.startswith(stripped)):
        return MORE
    return "no"


@dataclass
class EchoSearch:
    """Which overlaps the piece may still be, advanced as the piece grows (cost: its length).

    ``alive``: ``(lead, i)`` pairs whose ``tail[i:]`` the piece is still a prefix of;
    ``complete``: overlaps the piece has reached the end of.
    """

    tail: Tail
    alive: list[tuple[int, int]]
    complete: list[Overlap] = field(default_factory=list)
    checked: int = 0

    @classmethod
    def start(cls, tail: Tail, buf: str, leads: list[int]) -> EchoSearch:
        pairs = [(lead, i) for lead in leads for i in tail.starts_with(buf[lead])]
        return cls(tail, pairs)

    def advance(self, buf: str) -> None:
        tail, n = self.tail.text, len(buf)
        if n <= self.checked:
            return
        alive = []
        for lead, i in self.alive:
            end = lead + len(tail) - i
            q = max(self.checked, lead)
            if n >= end:
                if buf.startswith(tail[i + q - lead :], q):
                    self.complete.append(Overlap(lead, i, len(tail) - i))
            elif tail.startswith(buf[q:], i + q - lead):
                alive.append((lead, i))
        self.alive = alive
        self.checked = n


def _words(text: str) -> int:
    return len(text.split())


def _admissible(buf: str, tail: str, overlap: Overlap, word_end: bool, reading: Reading) -> bool:
    """Rules 3 and 4: the overlap is whole words of the text, and not punctuation alone."""
    repeat = tail[overlap.start :]
    if word_end and continues_word(buf, overlap.end) and _words(repeat) < LONG_OVERLAP_WORDS:
        return False
    return reading == "exact" or has_content(repeat)


def choose_overlap(
    buf: str, search: EchoSearch, held_ws: str, word: str, final: bool, capped: bool
) -> Overlap | None | Literal[Need.MORE, Need.UNRESOLVED]:
    """Rule 2: the overlap to trim, None to keep all, MORE, or UNRESOLVED (capped, undecided).

    The shortest overlap of a class wins (punctuation alone only after those with words): in
    text that repeats itself, a longer one may be the answer going on ("la la" + " la"), and
    trimming less never deletes real text that trimming more would keep. So an exact reading
    after a complete overlap settles the seam even while a longer stretch could still match.
    """
    plain = read_held(buf, held_ws, word, final)
    if plain is MORE:
        return MORE
    if plain == "exact":
        return None
    tail, word_end = search.tail.text, bool(held_ws)
    ranked: list[tuple[Overlap, Reading]] = []
    # Words before punctuation alone, then the shortest: candidates still alive are longer.
    for overlap in sorted(search.complete, key=lambda o: (not has_content(tail[o.start :]), o.end)):
        reading = read_held(buf[overlap.end :], held_ws, word, final)
        if reading is MORE:
            return MORE
        if _admissible(buf, tail, overlap, word_end, reading):
            ranked.append((overlap, reading))
    nothing_held = not held_ws and not word
    for overlap, reading in ranked:
        if reading == "exact" or (nothing_held and overlap.lead == 0 and _is_long(tail[overlap.start :])):
            if has_content(tail[overlap.start :]) or not search.alive:
                return overlap
            break
    if search.alive:  # a longer overlap may still follow: wait, or (at the cap) say so
        return MORE if not final else UNRESOLVED if capped else _fallback(buf, ranked, plain, tail)
    return _fallback(buf, ranked, plain, tail)


def _fallback(buf: str, ranked: list[tuple[Overlap, Reading]], plain: Reading, tail: str) -> Overlap | None:
    """No exact reading after any overlap: the weaker evidence, in order."""
    if plain == "loose":
        return None
    for overlap, reading in ranked:
        if reading == "loose" or (plain == "no" and _unprompted(buf, tail[overlap.start :])):
            return overlap
    return None


def _is_long(repeat: str) -> bool:
    """A long verbatim overlap: several words, a dozen characters."""
    return _words(repeat) >= LONG_OVERLAP_WORDS and len(repeat) >= 12


def _unprompted(buf: str, repeat: str) -> bool:
    """With no reading regenerating the held word: a repeat at 0, or several words after whitespace."""
    return not buf[:1].isspace() or (_words(repeat) >= 2 and len(repeat) >= 8)
