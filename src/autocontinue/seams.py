"""Pure seam repair: where to cut before a continuation, and how to join the next piece.

CONTRACT (the engine depends on these names and meanings):

- ``split_for_continuation(text, strategy, max_partial=32, *, fragment=False) -> (base,
  held)``: ``base + held == text``. ``base`` is what is safe to emit now and what the next
  round sends as the assistant turn; it never ends in whitespace. For "prefill", ``held`` is
  the trailing whitespace. For "user-turn", ``held`` is the last word with the whitespace run
  before it and any after it (the model regenerates the word and the whole run after it, since
  a cut inside a whitespace run cannot tell how much of the run is missing), unless that word
  is longer than ``max_partial`` characters (CJK, long code tokens) or is the whole text
  (allowed with ``fragment=True``), in which case only trailing whitespace is held. Never
  splits a grapheme. Cost: proportional to the held tail, not to ``text``, apart from slices.
- ``SeamRepairer(base_tail, held, strategy, *, window=ECHO_WINDOW, cut=None)``: streaming
  repair of one new piece that follows ``base`` (only its last ``ECHO_WINDOW`` characters are
  used, so cost does not grow with the text). ``feed(delta) -> str`` returns text that is safe
  to emit; ``finish() -> str`` the rest. ``report`` is a SeamReport, complete after
  ``finish(capped=False)`` (``capped``: the piece ended at ``max_tokens``, so a piece that
  is still repeating the text when it ends is all repeat). The output is the same for every
  way of splitting the piece into deltas.
  ``cut`` (optional): ``cut_state(base)``; with it a user-turn piece that reopens the open
  code fence or tag has that line removed, and the report carries it.
- ``join_piece(base_tail, held, piece, strategy, *, cut=None, capped=False) -> (text, report)``.
- ``cut_state(text) -> CutState``: open code fence and open XML-like tags at the end of text
  (``CutScanner`` does the same incrementally, for callers that see the text in pieces).

How a piece is repaired, in order:

1. Preamble (user-turn only): a short first line or sentence such as "Sure, continuing where
   I left off:" that talks only about continuing (continuation vocabulary, and at most one
   other word before a colon) is removed with the whitespace after it; then the piece is
   treated as a fresh start. A reopened fence or tag line is removed the same way (with a cut
   state). Up to three such lines in a row are removed. Headings, title-case lines and
   sentences about anything else are never taken for preambles.
2. Echo: the longest suffix of the text, starting at a word start, that the piece starts with
   is removed. A piece that opens with the tail's own words with no whitespace before them
   (user-turn, where a genuine piece opens with whitespace; or prefill, where a genuine piece
   would glue the word to itself) is evidence enough for one whole word. A piece that opens
   with whitespace may be a genuine continuation, so a repeat after leading whitespace needs
   more: two words and eight characters, or a whole sentence, and never punctuation alone. A
   match that does not start at a word start, and a word that goes on past a text that ended
   at a word end, are never trimmed. In user-turn an ellipsis before a repeat goes with it,
   and the word held back for regeneration decides between readings: the one under which the
   model regenerates it wins. Known ambiguity: a piece that opens with exactly the text's last
   token may be a genuine doubling ("=" + "= x" as "== x", "G" + "GUF" as "GGUF"); it is
   trimmed, because real tokenizers rarely cut inside such runs and echoes are common.
3. Whitespace: if what is left does not open with whitespace, the held whitespace is restored
   (unless it opens with closing punctuation, or a combining mark that belongs to the text
   before it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "ECHO_WINDOW",
    "MAX_PREAMBLE",
    "STRATEGIES",
    "CutState",
    "SeamReport",
    "split_for_continuation",
    "SeamRepairer",
    "join_piece",
    "cut_state",
    "CutScanner",
    "is_grapheme_boundary",
]

#: Trailing characters of the text searched for a repeated tail (the engine passes
#: ``base[-ECHO_WINDOW:]``).
ECHO_WINDOW = 2000
#: Longest line (in characters) that can be a continuation preamble.
MAX_PREAMBLE = 160
STRATEGIES = ("prefill", "user-turn")
_MAX_PREAMBLES = 3


# ----------------------------------------------------------------------------- reports


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


@dataclass(frozen=True)
class SeamReport:
    """What the seam at the start of one piece trimmed or restored, and why."""

    strategy: str
    #: The repeated tail removed from the start of the piece.
    trimmed_echo: str = ""
    #: The continuation preamble(s) removed, with the whitespace after them.
    trimmed_preamble: str = ""
    #: Held whitespace put back because the piece did not bring its own.
    restored_whitespace: str = ""
    #: The half word held back for the model to regenerate (user-turn).
    dropped_partial: str = ""
    #: State at the cut; the repairer leaves it None, the engine fills it from ``cut_state``.
    cut: CutState | None = None
    #: Why, in words.
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cut"] = self.cut.to_dict() if self.cut is not None else None
        data["notes"] = list(self.notes)
        return data


# ----------------------------------------------------------------------------- characters

_ZWJ = "\u200d"
_CLOSING_PUNCT = frozenset(",.;:!?)]}…")


def _is_extender(ch: str) -> bool:
    """A character that belongs to the grapheme before it."""
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
    if _is_extender(ch):
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


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or _is_extender(ch)


def _is_content(ch: str) -> bool:
    """A letter, digit or pictograph (not punctuation, not whitespace)."""
    return ch.isalnum() or unicodedata.category(ch) == "So"


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"unknown continuation strategy {strategy!r}",
            hint=f"use one of: {', '.join(STRATEGIES)}",
        )


# ----------------------------------------------------------------------------- the cut


def split_for_continuation(
    text: str, strategy: str, max_partial: int = 32, *, fragment: bool = False
) -> tuple[str, str]:
    """Split ``text`` into what is safe to emit and send back (``base``) and what is held.

    ``fragment``: ``text`` follows text already emitted (which never ends in whitespace), so
    ``base`` may be empty: a fragment " half" is all held, since the emitted text before it
    is what the next round would send.
    """
    _check_strategy(strategy)
    end = len(text)
    while end > 0 and text[end - 1].isspace():
        end -= 1
    if strategy == "prefill":
        return text[:end], text[end:]
    # user-turn: the last word is held even when whitespace follows it, because a cut inside
    # a whitespace run ("692\n" of "692\n    return") cannot tell how much of the run is
    # missing; the model regenerates the word and the whole run after it.
    start = end
    while start > 0 and end - start <= max_partial and not text[start - 1].isspace():
        start -= 1
    if start == 0 or end - start > max_partial:
        return text[:end], text[end:]
    cut = start
    while cut > 0 and text[cut - 1].isspace():
        cut -= 1
    if cut == 0 and not fragment:
        return text[:end], text[end:]
    return text[:cut], text[cut:]


# ----------------------------------------------------------------------------- preambles

_DECOR = re.compile(r"[*_#>\[\]()`~]+")
_OPENER = re.compile(
    r"^(?:(?:sure(?:\s+thing)?|certainly|of\s+course|okay|ok|alright|all\s+right|absolutely|"
    r"got\s+it|understood|no\s+problem|yes|right|great|gladly|will\s+do|you\s+got\s+it|"
    r"sounds\s+good|here\s+(?:it\s+is|you\s+go|goes|we\s+go)|apologies|sorry)\b[\s,.!:;\u2014\u2013-]*)+",
    re.I,
)
#: Words that talk about continuing (at least one must be there).
_CONTINUING = re.compile(
    r"\bcontinu\w*|\bresum(?:e|es|ed|ing)\b|\bpick(?:s|ed|ing)?\s+(?:(?:it|things|this|that)\s+)?(?:back\s+)?up\b"
    r"|\bleft\s+off\b|\bwhere\s+(?:\w+\s+){1,3}?(?:left|stopped|ended|paused|broke|was|were|cut|trailed)\b"
    r"|\bcarry(?:ing)?\s+on\b|\bkeep(?:ing)?\s+going\b|\bproceed\w*",
    re.I,
)
#: "the rest"/"the remainder": continuing only when nothing else is said.
_REST = re.compile(r"\b(?:rest|remainder|remaining)\b", re.I)
#: First-person talk about the interruption: allowed even in a heading-like line.
_PERSONAL = re.compile(r"\b(?:i|we|i'll|i'm|let\s+me)\b|\bleft\s+off\b", re.I)
_META = frozenset(
    """
    continuing continued continuation continue continues resuming resume resumed picking pick
    picked up where i i'll i'm i've i'd we we'll let let's me my now on from here here's is are
    the a an of to and with as requested asked you your you've it it's that this then so just
    right exactly directly immediately seamlessly precisely off left stopped stop stopping was
    were ended end paused pause broke cut got trailed finished rest remainder remaining part
    next previous above before last earlier prior story text answer response essay article list
    code document passage poem piece chapter section paragraph sentence word words reply message
    output content writing point spot place same mid without repeating repetition repeat again
    go goes going keep carry carrying proceed proceeding will would can do happy glad help sure
    thing certainly course okay ok alright absolutely yes no problem great apologies sorry for
    interruption understood back there at exact
    """.split()
)
_TERMINATORS = ":.!\u2026"
#: Quoted words in a preamble ('Continuing from "the lazy dog":') are the text's, not talk.
_QUOTED = re.compile(r"\"[^\"]{0,80}\"|\u201c[^\u201d]{0,80}\u201d|(?<!\w)'[^']{0,80}'(?!\w)")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'"))


def _looks_like_title(clause: str) -> bool:
    words = re.findall(r"[^\W\d_]+", clause)
    long_words = [w for w in words if len(w) > 3]
    return len(words) >= 2 and len(long_words) >= 2 and all(w[0].isupper() for w in long_words)


def _is_preamble(candidate: str, line_ends: bool, word: str = "") -> bool:
    """Is ``candidate`` (a first line or sentence of a piece) a preamble about continuing?

    ``word``: the word the model was asked to regenerate; a candidate that starts with it is
    that word's sentence, not talk about continuing (unless it ends with a colon).
    """
    raw = candidate.strip()
    if not raw or len(raw) > MAX_PREAMBLE:
        return False
    heading = raw.startswith("#")
    bracketed = raw[-1] in ")]"  # "(continued)", "[Continuing from where I left off]"
    emphasised = raw.endswith(("**", "__"))  # "**Continuing**" on a line of its own
    core = " ".join(_DECOR.sub(" ", raw).split())
    if not core or ";" in core:
        return False
    if not (core[-1] in _TERMINATORS or bracketed or (emphasised and line_ends)):
        return False
    if len(word) >= 2 and raw.startswith(word) and not core.endswith(":"):
        return False
    if core[0].islower() and not bracketed:
        return False  # models open a preamble as a sentence; this is the answer going on
    opener = _OPENER.match(core)
    clause = core[opener.end() :].strip() if opener else core
    if opener and not clause:  # "Sure!" on a line of its own, "Here you go: ..."
        return (line_ends or core.endswith(":")) and not heading
    words = _words(clause)
    if not words:
        return False
    if len(words) > 25 or clause.endswith("?"):
        return False
    personal = bool(_PERSONAL.search(clause))
    if (heading or _looks_like_title(clause)) and not personal:
        return False
    other = sum(1 for word in _words(_QUOTED.sub(" ", clause)) if word not in _META)
    if _CONTINUING.search(clause):
        return other <= (1 if core.endswith(":") else 0)
    return bool(_REST.search(clause)) and other == 0 and core.endswith(":")


def _may_go_on(prefix: str) -> bool:
    """After a rejected first sentence, can a later one still close a preamble?"""
    core = " ".join(_DECOR.sub(" ", prefix).split())
    return bool(_OPENER.match(core) or _CONTINUING.search(core) or _REST.search(core))


_UNDECIDED = object()


def _find_preamble(buf: str, final: bool, word: str = "") -> Any:
    """End of the preamble at the start of ``buf`` (with its whitespace), 0 if none, or _UNDECIDED."""
    if not buf:
        return 0 if final else _UNDECIDED
    first = buf[0]
    if first.isspace() or not (first.isalpha() or first in "*_#>[("):
        return 0
    newline = buf.find("\n")
    limit = min(len(buf) if newline < 0 else newline + 1, MAX_PREAMBLE + 1)
    ends = [e for e in range(1, limit) if _is_candidate_end(buf, e)]
    if final and newline < 0 and len(buf) <= MAX_PREAMBLE and not buf[-1].isspace():
        ends.append(len(buf))
    for e in ends:
        j = e
        while j < len(buf) and buf[j].isspace():
            j += 1
        if j == len(buf) and not final:
            return _UNDECIDED
        line_ends = "\n" in buf[e:j] or j == len(buf)
        if _is_preamble(buf[:e], line_ends, word):
            return j
        if "\n" in buf[e:j] or not _may_go_on(buf[:e]):
            return 0
    if newline >= 0 or len(buf) > MAX_PREAMBLE or final:
        return 0
    return _UNDECIDED


_FENCE_LINE = re.compile(r"[ \t]*(`{3,}|~{3,})([^\n`]*)\n")
_MAYBE_FENCE = re.compile(r"[ \t]*(?:(?:`+|~+)[^\n`]*)?")


def _find_reopening(buf: str, cut: CutState | None, partial: str, final: bool) -> Any:
    """End of a fence or tag line that reopens what was open at the cut, 0, or _UNDECIDED.

    A fence line with an info string always opens a block. A bare one might close the open
    block, unless the model was asked to regenerate a half word (``partial``) that is not a
    fence: then the text went on with that word, not with a closing fence.
    """
    if cut is None or not buf:
        return 0 if final or cut is None else _UNDECIDED
    if cut.open_fence is not None:
        match = _FENCE_LINE.match(buf)
        if match:
            reopens = bool(match.group(2).strip()) or (bool(partial) and partial[0] not in "`~")
            return match.end() if reopens else 0
        if not final and "\n" not in buf and _MAYBE_FENCE.fullmatch(buf):
            return _UNDECIDED
    if cut.open_tags:
        tag = f"<{cut.open_tags[-1]}>"
        if buf.startswith(tag):
            end = len(tag)
            while end < len(buf) and buf[end].isspace():
                end += 1
            if end == len(buf) and not final:
                return _UNDECIDED
            return end
        if not final and tag.startswith(buf):
            return _UNDECIDED
    return 0


def _regenerates(text: str, word: str, final: bool) -> Any:
    """Does ``text`` (after its whitespace) open with ``word``? _UNDECIDED until it can tell."""
    if not word:
        return False
    stripped = text.lstrip()
    if len(stripped) >= len(word) or (final and stripped):
        return stripped.startswith(word)
    if final:
        return False
    return _UNDECIDED if word.startswith(stripped) else False


def _leading_ellipsis(buf: str, final: bool) -> Any:
    """Length of an ellipsis that opens ``buf`` ("..." or "…"), 0, or _UNDECIDED."""
    if buf.startswith("\u2026"):
        return 1
    if buf.startswith("..."):
        return 3
    if not final and buf in (".", ".."):
        return _UNDECIDED
    return 0


def _is_candidate_end(buf: str, e: int) -> bool:
    if not buf[e].isspace() or buf[e - 1].isspace():
        return False
    return buf[e] == "\n" or buf[e - 1] in _TERMINATORS or buf[e - 1] in ")]*_"


# ----------------------------------------------------------------------------- echoes

_OPENING_PUNCT = frozenset("\"'“‘«([{<*_")
_SENTENCE_END = frozenset(".!?…")
_CLOSERS = "\"'”’»)]}*_"


_LAST_SPACE = re.compile(r"\s\S*\Z")


class _Tail:
    """The searched window of the text so far; word starts are found on demand, per first char."""

    def __init__(self, text: str, whole: bool) -> None:
        self.text = text
        self.whole = whole
        last = _LAST_SPACE.search(text)
        #: Starts after this index hold a single word.
        self.last_ws = last.start() if last else -1
        stripped = text.rstrip(_CLOSERS)
        self.ends_sentence = bool(stripped) and stripped[-1] in _SENTENCE_END

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
            return self.whole and not text[0].isspace() and not _is_extender(text[0])
        if not is_grapheme_boundary(text, i):
            return False
        prev = text[i - 1]
        if prev.isspace():
            return True
        return text[i].isalnum() and prev in _OPENING_PUNCT and (i < 2 or not text[i - 2].isalnum())

    def sentence_start(self, i: int) -> bool:
        text = self.text
        k = i
        while k > 0 and text[k - 1].isspace():
            k -= 1
        if k == 0:
            return self.whole
        if k == i:
            return False
        if "\n" in text[k:i]:
            return True
        before = text[:k].rstrip(_CLOSERS)
        return bool(before) and before[-1] in _SENTENCE_END


@dataclass
class _EchoSearch:
    """Which word starts of the tail the piece may still be repeating.

    A candidate is ``(lead, i)``: the tail from word start ``i`` repeated at ``lead`` in the
    piece, after leading whitespace or (user-turn) an ellipsis, or at 0. A found one is
    ``(lead, i, length)``: shorter than the tail from ``i`` when the piece ended inside it.
    """

    alive: list[tuple[int, int]]
    checked: int = 0
    done: list[tuple[int, int, int]] = field(default_factory=list)


# ----------------------------------------------------------------------------- the repairer


class SeamRepairer:
    """Streaming repair of one piece that continues a text whose tail is ``base_tail``."""

    def __init__(
        self, base_tail: str, held: str, strategy: str, *, window: int = ECHO_WINDOW, cut: CutState | None = None
    ) -> None:
        _check_strategy(strategy)
        self.strategy = strategy
        #: What was open where the text was cut (user-turn: a reopened fence or tag is removed).
        self._cut = cut
        whole = len(base_tail) < window
        self._tail = _Tail(base_tail[-window:] if window > 0 else "", whole)
        ws = len(held) - len(held.lstrip())
        self._held_ws = held[:ws]
        #: User-turn: the (half) word the model was asked to regenerate. A reading of the piece
        #: under which the model does regenerate it is the right one ("very very" is kept when
        #: the held word was "ve", a lone "|" is a repeat when "permissio" follows it).
        self._word = held.split()[0] if strategy == "user-turn" and held.strip() else ""
        #: The text before the piece surely ended at a word end (whitespace followed it).
        self._word_end = bool(self._held_ws)
        self._buf = ""
        self._phase = "preamble" if strategy == "user-turn" else "echo"
        self._preambles: list[str] = []
        self._search: _EchoSearch | None = None
        #: The piece now starts at a line start (after a removed fence line): its leading
        #: whitespace is indentation, and the line break comes from the held whitespace.
        self._line_start = False
        self._preamble_seen = 0  # length of the buffer when preambles were last looked for
        self._finished = False
        self._capped = False
        notes = (f"held back the partial word {held[ws:]!r} for the model to regenerate",) if held[ws:] else ()
        self.report = SeamReport(strategy=strategy, dropped_partial=held[ws:], cut=cut, notes=notes)

    def feed(self, delta: str) -> str:
        """Text of the piece that is safe to emit now, already repaired."""
        if self._finished:
            raise ValueError("SeamRepairer.feed() after finish()")
        if self._phase == "pass":
            return delta
        self._buf += delta
        return self._advance(final=False)

    def finish(self, *, capped: bool = False) -> str:
        """The rest of the piece; after this, ``report`` is complete.

        ``capped``: the piece ended at the output cap (``max_tokens``). A capped piece that is
        still repeating the text when it ends is all repeat, however short; otherwise only a
        repeat of two words and eight characters counts when the piece ends inside it.
        """
        if self._finished:
            return ""
        self._capped = capped
        out = "" if self._phase == "pass" else self._advance(final=True)
        self._finished = True
        return out

    # -- the phases

    def _advance(self, final: bool) -> str:
        while self._phase == "preamble":
            if not (final or self._preamble_may_change()):
                return ""
            end = _find_preamble(self._buf, final, self._word)
            if end is _UNDECIDED:
                return ""
            if end:
                self._trim_preamble(end)
            else:
                end = _find_reopening(self._buf, self._cut, self.report.dropped_partial, final)
                if end is _UNDECIDED:
                    return ""
                if end:
                    self._trim_reopening(end)
            if not end or len(self._preambles) >= _MAX_PREAMBLES:
                self._phase = "echo"
        if not self._search_echo(final):
            return ""
        choice = self._choose(final)
        if choice is _UNDECIDED:
            return ""
        return self._decide(choice)

    def _preamble_may_change(self) -> bool:
        """Only whitespace (or the char after it) can end a preamble line: skip rescans otherwise."""
        buf, seen = self._buf, self._preamble_seen
        self._preamble_seen = len(buf)
        if seen == 0 or len(buf) > MAX_PREAMBLE or self._cut is not None:
            return True
        return any(ch.isspace() for ch in buf[seen - 1 :])

    def _trim_preamble(self, end: int) -> None:
        text = self._buf[:end]
        self._preambles.append(text)
        self._buf = self._buf[end:]
        self._preamble_seen = 0
        self._add(
            trimmed_preamble=self.report.trimmed_preamble + text,
            note=f"removed a continuation preamble {text.strip()!r} ({len(text)} chars with its whitespace)",
        )

    def _trim_reopening(self, end: int) -> None:
        text = self._buf[:end]
        self._preambles.append(text)
        self._buf = self._buf[end:]
        self._line_start = text.endswith("\n")
        self._preamble_seen = 0
        self._add(
            trimmed_preamble=self.report.trimmed_preamble + text,
            note=f"removed {text.strip()!r}: the piece reopened what was still open at the cut",
        )

    def _search_echo(self, final: bool) -> bool:
        """Advance the echo search; True when no candidate is still undecided."""
        if self._search is None and not self._start_search(final):
            return False
        search = self._search
        assert search is not None
        buf, tail = self._buf, self._tail.text
        n, p = len(buf), search.checked
        if n > p and search.alive:
            alive = []
            for lead, i in search.alive:
                end = lead + len(tail) - i
                q = max(p, lead)
                if n >= end:
                    if buf.startswith(tail[i + q - lead :], q):
                        if n > end:
                            search.done.append((lead, i, end - lead))
                        else:
                            alive.append((lead, i))
                elif tail.startswith(buf[q:], i + q - lead):
                    alive.append((lead, i))
            search.alive = alive
        search.checked = n
        if search.alive and not final:
            return False
        if final:  # the piece ended at the end of these repeats, or (2+ words) inside them
            for lead, i in search.alive:
                length = n - lead
                if self._capped or length == len(tail) - i or (length >= 8 and len(buf[lead:].split()) >= 2):
                    search.done.append((lead, i, length))
            search.alive = []
        return True

    def _start_search(self, final: bool) -> bool:
        """Once the piece's first character after any lead is known: the word starts it may repeat."""
        buf = self._buf
        ws = len(buf) - len(buf.lstrip())
        if ws == len(buf):
            if final:
                self._search = _EchoSearch([])
            return final
        leads = [ws]
        if not ws and self.strategy == "user-turn":
            ellipsis = _leading_ellipsis(buf, final)
            if ellipsis is _UNDECIDED or (ellipsis == len(buf) and not final):
                return False
            if ellipsis and ellipsis < len(buf) and not buf[ellipsis].isspace():
                leads.append(ellipsis)
        candidates = []
        for lead in leads:
            starts = self._tail.starts_with(buf[lead])
            if lead == ws and ws and not self._word:  # after whitespace a repeat needs several words
                starts = [i for i in starts if i < self._tail.last_ws]
            candidates += [(lead, i) for i in starts]
        self._search = _EchoSearch(candidates)
        return True

    def _choose(self, final: bool) -> Any:
        """The candidate whose repeat is trimmed, None for none, or _UNDECIDED (need more)."""
        search = self._search
        assert search is not None
        plain = _regenerates(self._buf, self._word, final) if search.done else False
        for lead, i, length in sorted(search.done, key=lambda c: -c[0] - c[2]):  # longest first
            repeated = _regenerates(self._buf[lead + length :], self._word, final)
            if _UNDECIDED in (plain, repeated):
                return _UNDECIDED
            if repeated and not plain:
                return lead, i, length
            if self._is_echo(lead, i, length) and not (plain and not repeated):
                return lead, i, length
        return None

    def _decide(self, choice: tuple[int, int, int] | None) -> str:
        search = self._search
        assert search is not None
        buf, tail = self._buf, self._tail.text
        cut = 0
        if choice is not None:
            lead, i, length = choice
            cut = lead + length
            self._note_echo(tail[i : i + length], buf[:lead], partial=length < len(tail) - i)
        elif search.done:
            shown = tail[min(c[1] for c in search.done) :]
            self._add(note=f"kept {shown!r} at the start of the piece as new text: too little evidence of a repeat")
        rest = buf[cut:]
        self._buf = ""
        self._phase = "pass"
        line_break = self._held_ws[: self._held_ws.rfind("\n") + 1]
        if self._line_start and line_break and rest[:1].isspace() and "\n" not in rest[: len(rest) - len(rest.lstrip())]:
            self._add(restored_whitespace=line_break, note="restored the line break before the piece's indented line")
            return line_break + rest
        if self._needs_whitespace(rest):
            self._add(
                restored_whitespace=self._held_ws,
                note=f"restored {len(self._held_ws)} chars of whitespace {self._held_ws!r} the piece did not bring",
            )
            return self._held_ws + rest
        if rest and rest[0].isspace() and self._held_ws and not cut:
            self._add(note="the piece brought its own leading whitespace")
        return rest

    def _is_echo(self, lead: int, i: int, length: int) -> bool:
        """Is the tail from word start ``i``, found at ``lead`` in the piece, really a repeat?"""
        # The repeat equals the text's own tail, so cutting it off never splits a grapheme that
        # the text does not already end in: "cafe" + "\u0301" joins back exactly as sent.
        repeat = self._tail.text[i : i + length]
        after = lead + len(repeat)
        nxt = self._buf[after] if after < len(self._buf) else None
        if not any(_is_content(ch) for ch in repeat):
            if lead:
                return False  # " --" after "--" may be a genuine "-- --"
            fence = self._fence_reading(repeat, after)
            if fence is not None:
                return fence
            if nxt is not None and nxt in repeat:
                return False  # a run of punctuation going on ("|---" + "|-----|"): ambiguous
            if (nxt is None or nxt.isspace()) and self._at_line_start(repeat):
                return False  # "#" + "# Title" is as likely "## Title": markdown doubles marks
        if self._word_end and nxt is not None and _is_word(nxt):
            return False  # the text ended at a word end; this word goes on, so it is another word
        if not lead or not self._buf[0].isspace():
            return True  # the tail's own words with no whitespace before them (or an ellipsis)
        words = len(repeat.split())
        whole_sentence = self._tail.sentence_start(i) and self._tail.ends_sentence
        return words >= 2 and (len(repeat) >= 8 or whole_sentence)

    def _at_line_start(self, repeat: str) -> bool:
        tail = self._tail.text
        return tail[tail.rfind("\n") + 1 :].strip(" \t") == repeat

    def _fence_reading(self, repeat: str, after: int) -> bool | None:
        """Backticks at a line start: True/False when only trimming/keeping makes a 3-mark fence."""
        mark = repeat[0]
        if mark not in "`~" or repeat.strip(mark):
            return None
        tail = self._tail.text
        line = tail[tail.rfind("\n") + 1 :].strip(" ")
        if line != mark * len(line):
            return None
        more = len(self._buf[after:]) - len(self._buf[after:].lstrip(mark))
        trimmed, kept = len(line) + more, len(line) + len(repeat) + more
        return True if trimmed == 3 else False if kept == 3 else None

    def _note_echo(self, repeat: str, lead: str, partial: bool) -> None:
        words = len(repeat.split())
        where = f" after {'whitespace' if lead.isspace() else repr(lead)}" if lead else ""
        what = "ended while repeating" if partial else "repeated the last"
        self._add(
            trimmed_echo=repeat,
            note=f"piece {what} {words} word{'s' if words != 1 else ''} of the text ({len(repeat)} chars){where}",
        )

    def _needs_whitespace(self, rest: str) -> bool:
        if not rest or not self._held_ws or rest[0].isspace() or _is_extender(rest[0]):
            return False
        if self._word and rest.startswith(self._word):
            return True  # the regenerated word, whatever it opens with
        return not (rest[0] in _CLOSING_PUNCT and "\n" not in self._held_ws)

    def _add(self, *, note: str, **fields: str) -> None:
        self.report = replace(self.report, notes=self.report.notes + (note,), **fields)


def join_piece(
    base_tail: str, held: str, piece: str, strategy: str, *, cut: CutState | None = None, capped: bool = False
) -> tuple[str, SeamReport]:
    """The repaired text to append after ``base`` for a whole ``piece``, and what was done."""
    repairer = SeamRepairer(base_tail, held, strategy, cut=cut)
    out = repairer.feed(piece) + repairer.finish(capped=capped)
    return out, repairer.report


# ----------------------------------------------------------------------------- cut state

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_TAG = re.compile(r"<(/?)([A-Za-z_][\w.\-:]*)(?:\s[^<>]*?)?(/?)>")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())


#: A line longer than this is settled as it grows, so ``state()`` never rescans all of it.
LONG_LINE = 4096


class CutScanner:
    """``cut_state`` fed piece by piece: each ``feed`` costs its own length.

    The unfinished last line is re-read by ``state()``; a line that grows past ``LONG_LINE``
    (minified JSON, a text with no newline) is settled up to its last ``<`` as it goes, so
    that re-read stays short.
    """

    def __init__(self) -> None:
        self._fence: tuple[str, int, str] | None = None  # (char, count, info)
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
        in_word = bool(self._last) and _is_word(self._last)
        return CutState(open_fence=fence[2] if fence else None, open_tags=tuple(tags), in_word=in_word)


def _apply_line(
    line: str, fence: tuple[str, int, str] | None, tags: list[str], line_start: bool = True
) -> tuple[str, int, str] | None:
    """Update the fence and (in place) the open tags with one line (or, mid-line, its rest)."""
    match = _FENCE.match(line) if line_start else None
    if fence is not None:
        if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= fence[1] and not match.group(2).strip():
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
