"""Continuation preambles: a first line that talks only about continuing (user-turn only).

Evidence needed: a first line or sentence of the piece, at most ``MAX_PREAMBLE`` characters,
ending with ``:`` ``.`` ``!`` ``…`` (or bracketed, or emphasised on a line of its own), that
opens like a sentence and

- names continuing ("continu*", "resume", "pick up", "left off", "carry on", "the previous
  reply"/"response", "a revised version"), with no word outside the vocabulary of talk about
  continuing (``_META``; one other word is allowed before a colon), or
- is only "the rest"/"the remainder" talk before a colon, or only an opener ("Sure!",
  "Here you go:").

Examples (removed with the whitespace after them): ``"Sure, continuing where I left off:"``,
``"The previous reply was cut off by the output limit, continuing ..."``, ``"Here is the
output of your previous reply:"``, ``"Here's a revised version:"``, ``"I'm happy to
continue."``. Kept: ``"Continuing the tradition, the family gathered."`` (other words),
``"## Continuing Education"`` (a heading about something else), ``"Shall I continue?"``.

``find_reopening``: with a cut state, a fence or tag line that reopens what is still open
at the cut (``"```python\\n"`` inside an open python block) is removed the same way.

Both return the end of what to remove (0: nothing) or ``MORE`` while the piece so far cannot
tell.
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

from .markup import CutState

__all__ = ["MAX_PREAMBLE", "MORE", "Found", "Need", "find_preamble", "find_reopening", "is_preamble"]

#: Longest line (in characters) that can be a continuation preamble.
MAX_PREAMBLE = 160


class Need(enum.Enum):
    """A rule cannot decide yet: it needs more of the piece (or, at its end, a larger cap)."""

    MORE = "more"
    UNRESOLVED = "unresolved"


MORE: Final = Need.MORE
#: The end of the text a rule removes from the front of the piece, 0 for none, or MORE.
Found = int | Literal[Need.MORE]

_DECOR = re.compile(r"[*_#>\[\]()`~]+")
_OPENER = re.compile(
    r"^(?:(?:sure(?:\s+thing)?|certainly|of\s+course|okay|ok|alright|all\s+right|absolutely|"
    r"got\s+it|understood|no\s+problem|yes|right|great|gladly|will\s+do|you\s+got\s+it|"
    r"sounds\s+good|here\s+(?:it\s+is|you\s+go|goes|we\s+go)|apologies|sorry)\b[\s,.!:;\u2014\u2013-]*)+",
    re.IGNORECASE,
)
#: Words that talk about continuing (at least one must be there).
_CONTINUING = re.compile(
    r"\bcontinu\w*|\bresum(?:e|es|ed|ing)\b|\bpick(?:s|ed|ing)?\s+(?:(?:it|things|this|that)\s+)?(?:back\s+)?up\b"
    r"|\bleft\s+off\b|\bwhere\s+(?:\w+\s+){1,3}?(?:left|stopped|ended|paused|broke|was|were|cut|trailed)\b"
    r"|\bcarry(?:ing)?\s+on\b|\bkeep(?:ing)?\s+going\b|\bproceed\w*"
    r"|\b(?:previous|last|earlier|prior)\s+(?:reply|response|answer|message|turn|output)\b"
    r"|\b(?:revised|updated|corrected|rewritten)\s+version\b",
    re.IGNORECASE,
)
#: "the rest"/"the remainder": continuing only when nothing else is said.
_REST = re.compile(r"\b(?:rest|remainder|remaining)\b", re.IGNORECASE)
#: First-person talk about the interruption: allowed even in a heading-like line.
_PERSONAL = re.compile(r"\b(?:i|we|i'll|i'm|let\s+me)\b|\bleft\s+off\b", re.IGNORECASE)
_META = frozenset(
    [
        "continuing",
        "continued",
        "continuation",
        "continue",
        "continues",
        "resuming",
        "resume",
        "resumed",
        "picking",
        "pick",
        "picked",
        "up",
        "where",
        "i",
        "i'll",
        "i'm",
        "i've",
        "i'd",
        "we",
        "we'll",
        "let",
        "let's",
        "me",
        "my",
        "now",
        "on",
        "from",
        "here",
        "here's",
        "is",
        "are",
        "the",
        "a",
        "an",
        "of",
        "to",
        "and",
        "with",
        "as",
        "requested",
        "asked",
        "you",
        "your",
        "you've",
        "it",
        "it's",
        "that",
        "this",
        "then",
        "so",
        "just",
        "right",
        "exactly",
        "directly",
        "immediately",
        "seamlessly",
        "precisely",
        "off",
        "left",
        "stopped",
        "stop",
        "stopping",
        "was",
        "were",
        "ended",
        "end",
        "paused",
        "pause",
        "broke",
        "cut",
        "got",
        "trailed",
        "finished",
        "rest",
        "remainder",
        "remaining",
        "part",
        "next",
        "previous",
        "above",
        "before",
        "last",
        "earlier",
        "prior",
        "story",
        "text",
        "answer",
        "response",
        "essay",
        "article",
        "list",
        "code",
        "document",
        "passage",
        "poem",
        "piece",
        "chapter",
        "section",
        "paragraph",
        "sentence",
        "word",
        "words",
        "reply",
        "message",
        "output",
        "content",
        "writing",
        "point",
        "spot",
        "place",
        "same",
        "mid",
        "without",
        "repeating",
        "repetition",
        "repeat",
        "again",
        "go",
        "goes",
        "going",
        "keep",
        "carry",
        "carrying",
        "proceed",
        "proceeding",
        "will",
        "would",
        "can",
        "do",
        "happy",
        "glad",
        "help",
        "sure",
        "thing",
        "certainly",
        "course",
        "okay",
        "ok",
        "alright",
        "absolutely",
        "yes",
        "no",
        "problem",
        "great",
        "apologies",
        "sorry",
        "for",
        "interruption",
        "understood",
        "back",
        "there",
        "at",
        "exact",
        "by",
        "limit",
        "length",
        "token",
        "tokens",
        "maximum",
        "max",
        "reached",
        "interrupted",
        "truncated",
        "because",
        "due",
        "revised",
        "version",
        "updated",
        "corrected",
        "rewritten",
    ]
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


def _shape_allows(raw: str, core: str, line_ends: bool, word: str) -> bool:
    """Is ``raw`` shaped like a preamble sentence (ending, capital, not the held word's line)?"""
    bracketed = raw[-1] in ")]"  # "(continued)", "[Continuing from where I left off]"
    emphasised = raw.endswith(("**", "__"))  # "**Continuing**" on a line of its own
    if not core or ";" in core:
        return False
    if not (core[-1] in _TERMINATORS or bracketed or (emphasised and line_ends)):
        return False
    if len(word) >= 2 and raw.startswith(word) and not core.endswith(":"):
        return False  # the held word's own sentence
    return bracketed or not core[0].islower()


def is_preamble(candidate: str, line_ends: bool, word: str = "") -> bool:
    """Is ``candidate`` (a first line or sentence of a piece) a preamble about continuing?"""
    raw = candidate.strip()
    if not raw or len(raw) > MAX_PREAMBLE:
        return False
    core = " ".join(_DECOR.sub(" ", raw).split())
    if not _shape_allows(raw, core, line_ends, word):
        return False
    opener = _OPENER.match(core)
    clause = core[opener.end() :].strip() if opener else core
    if opener and not clause:  # "Sure!" on a line of its own, "Here you go: ..."
        return (line_ends or core.endswith(":")) and not raw.startswith("#")
    words = _words(clause)
    if not words or len(words) > 25 or clause.endswith("?"):
        return False
    if (raw.startswith("#") or _looks_like_title(clause)) and not _PERSONAL.search(clause):
        return False
    other = sum(1 for w in _words(_QUOTED.sub(" ", clause)) if w not in _META)
    if _CONTINUING.search(clause):
        return other <= (1 if core.endswith(":") else 0)
    return bool(_REST.search(clause)) and other == 0 and core.endswith(":")


def _may_go_on(prefix: str) -> bool:
    """After a rejected first sentence, can a later one on the same line still close a preamble?"""
    core = " ".join(_DECOR.sub(" ", prefix).split())
    return bool(_OPENER.match(core) or _CONTINUING.search(core) or _REST.search(core))


def _is_candidate_end(buf: str, e: int) -> bool:
    if not buf[e].isspace() or buf[e - 1].isspace():
        return False
    return buf[e] == "\n" or buf[e - 1] in _TERMINATORS or buf[e - 1] in ")]*_"


def find_preamble(buf: str, final: bool, word: str = "") -> Found:
    """End of the preamble at the start of ``buf`` (with its whitespace), 0 if none, or MORE.

    ``word``: the word the model was asked to regenerate; a line that starts with it is that
    word's sentence, not talk about continuing (unless it ends with a colon).
    """
    if not buf:
        return 0 if final else MORE
    if buf[0].isspace() or not (buf[0].isalpha() or buf[0] in "*_#>[("):
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
            return MORE
        line_ends = "\n" in buf[e:j] or j == len(buf)
        if is_preamble(buf[:e], line_ends, word):
            return j
        if "\n" in buf[e:j] or not _may_go_on(buf[:e]):
            return 0
    if newline >= 0 or len(buf) > MAX_PREAMBLE or final:
        return 0
    return MORE


_FENCE_LINE = re.compile(r"[ \t]*(`{3,}|~{3,})([^\n`]*)\n")
_MAYBE_FENCE = re.compile(r"[ \t]*(?:(?:`+|~+)[^\n`]*)?")


def find_reopening(buf: str, cut: CutState | None, partial: str, final: bool) -> Found:
    """End of a fence or tag line that reopens what was open at the cut, 0, or MORE.

    A fence line with an info string always opens a block. A bare one might close the open
    block, unless the model was asked to regenerate a half word (``partial``) that is not a
    fence: then the text went on with that word, not with a closing fence.
    """
    if cut is None:
        return 0
    if not buf:
        return 0 if final else MORE
    if cut.open_fence is not None:
        match = _FENCE_LINE.match(buf)
        if match:
            reopens = bool(match.group(2).strip()) or (bool(partial) and partial[0] not in "`~")
            return match.end() if reopens else 0
        if not final and "\n" not in buf and _MAYBE_FENCE.fullmatch(buf):
            return MORE
    if cut.open_tags:
        tag = f"<{cut.open_tags[-1]}>"
        if buf.startswith(tag):
            end = len(tag)
            while end < len(buf) and buf[end].isspace():
                end += 1
            return MORE if end == len(buf) and not final else end
        if not final and tag.startswith(buf):
            return MORE
    return 0
