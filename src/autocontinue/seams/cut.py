"""Where to cut a text before a continuation, and the character classes every rule uses.

``split_for_continuation(text, strategy)`` returns ``(base, held)`` with ``base + held ==
text``. ``base`` is what is safe to emit now and what the next round sends; it never ends in
whitespace and never splits a grapheme.

- prefill: ``held`` is the trailing whitespace (``"One para.\\n\\n"`` -> ``("One para.",
  "\\n\\n")``): the model continues its own turn and regenerates it.
- user-turn: ``held`` is also the last word with the whitespace before it (``"the quick bro"``
  -> ``("the quick", " bro")``); the model is asked to regenerate that word. Even a complete
  last word is held (``"x = 1\\n"`` -> ``("x =", " 1\\n")``), since a cut inside a whitespace
  run cannot tell how much of the run is missing. A word longer than ``max_partial`` (CJK,
  long tokens) or one that is the whole text (unless ``fragment=True``) stays in ``base``.
"""

from __future__ import annotations

import unicodedata

from ..errors import ConfigurationError

__all__ = ["STRATEGIES", "check_strategy", "is_grapheme_boundary", "split_for_continuation"]

STRATEGIES = ("prefill", "user-turn")

_ZWJ = "\u200d"


def is_extender(ch: str) -> bool:
    """A character that belongs to the grapheme before it (marks, joiners, selectors)."""
    o = ord(ch)
    if (
        ch == _ZWJ
        or 0xFE00 <= o <= 0xFE0F
        or 0x1F3FB <= o <= 0x1F3FF
        or 0xE0020 <= o <= 0xE007F
        or 0xE0100 <= o <= 0xE01EF
        or 0xDC00 <= o <= 0xDFFF
    ):
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc")


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _joins(prev: str, ch: str) -> bool:
    """Would a cut between ``prev`` and ``ch`` split a grapheme?"""
    if is_extender(ch):
        return True
    if prev == _ZWJ and not ch.isspace():
        return True
    if prev == "\r" and ch == "\n":
        return True
    return _is_regional(prev) and _is_regional(ch)


def is_grapheme_boundary(text: str, i: int) -> bool:
    """May ``text`` be cut before index ``i`` without splitting a grapheme?"""
    if i <= 0 or i >= len(text):
        return True
    if _is_regional(text[i - 1]) and _is_regional(text[i]):
        run = 0
        while i - 1 - run >= 0 and _is_regional(text[i - 1 - run]):
            run += 1
        return run % 2 == 0
    return not _joins(text[i - 1], text[i])


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or is_extender(ch)


def has_content(text: str) -> bool:
    """Does ``text`` hold a letter, digit or pictograph (not only punctuation and space)?"""
    return any(ch.isalnum() or unicodedata.category(ch) == "So" for ch in text)


def continues_word(text: str, i: int) -> bool:
    """Does ``text[i:]`` go on with the word before ``i``? Contractions count: ``I|'m``."""
    if i >= len(text):
        return False
    if is_word_char(text[i]):
        return True
    return text[i] in "'\u2019" and i + 1 < len(text) and text[i + 1].isalpha()


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"unknown continuation strategy {strategy!r}",
            hint=f"use one of: {', '.join(STRATEGIES)}",
        )


def _last_space(window: str) -> int:
    """The index of the last whitespace character in ``window`` (which ends in a non-space), or -1."""
    words = window.rsplit(None, 1)
    return len(window) - len(words[-1]) - 1 if words else -1


def split_for_continuation(
    text: str, strategy: str, max_partial: int = 32, *, fragment: bool = False
) -> tuple[str, str]:
    """Split ``text`` into what is safe to emit and send back (``base``) and what is held.

    ``fragment``: ``text`` follows text already emitted (which never ends in whitespace), so
    ``base`` may be empty: a fragment " half" is all held.
    """
    check_strategy(strategy)
    # Called on every streamed delta: the scans are str methods (C), over at most max_partial + 1
    # characters; ``str.rstrip()`` and ``str.isspace()`` agree on what whitespace is.
    end = len(text.rstrip())
    if strategy == "prefill":
        return text[:end], text[end:]
    lo = max(0, end - max_partial - 1)
    window = text[lo:end]
    last = _last_space(window)
    if last < 0:  # no whitespace within reach: the text is one word, or its last word is too long
        return text[:end], text[end:]
    cut = lo + last
    while cut > 0 and text[cut - 1].isspace():
        cut -= 1
    if cut == 0 and not fragment:
        return text[:end], text[end:]
    return text[:cut], text[cut:]
