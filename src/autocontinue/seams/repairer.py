"""The streaming repairer: one new piece joined onto the text, rule by rule.

Phases, in order (each waits, holding the piece back, until it can decide):

1. ``preamble`` (user-turn): up to three continuation preambles or reopened fence/tag lines
   are removed from the front (``preamble.py``).
2. ``echo`` (user-turn): a verbatim suffix overlap is removed (``echo.py``). Text that may
   still turn out to be one is held back, not emitted.
3. ``whitespace``: the held whitespace is put back if what is left does not open with its own
   (not before closing punctuation or a combining mark). Under prefill this is the only
   repair: a model continuing its own turn is trusted.
4. ``pass``: the rest of the piece goes through untouched.

User-turn, from the first repaired text on: what comes out is held back (at most
``_OPENING_CHARS`` of it) until the restart check (``restart.py``) is final or ruled out, so
that the engine can throw a restarted piece away before any of it is shown. Nothing is held
when no restart is possible (no head of the answer, no section heading), nor under prefill.

The output is the same for every way of splitting the piece into deltas: a phase decides
only when no later text can change its decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from .cut import check_strategy, is_extender
from .echo import ECHO_WINDOW, EchoSearch, Overlap, Tail, choose_overlap
from .markup import CutState
from .preamble import MAX_PREAMBLE, MORE, Found, Need, find_preamble, find_reopening
from .report import SeamReport, Verdict
from .restart import (
    HEAD_WORDS,
    SECTION_WORDS,
    could_restart,
    is_restart,
    restart_confirmed,
    restart_ruled_out,
)

__all__ = ["SeamRepairer", "join_piece"]

Phase = Literal["preamble", "echo", "whitespace", "pass"]
_MAX_PREAMBLES = 3
_CLOSING_PUNCT = frozenset(",.;:!?)]}…")
#: Characters of the kept text looked at for a restart.
_OPENING_CHARS = 400
#: Characters of the raw piece kept: its preambles (at most three lines) and its opening.
_PIECE_HEAD = _MAX_PREAMBLES * (MAX_PREAMBLE + 1) + _OPENING_CHARS


class SeamRepairer:
    """Streaming repair of one piece that continues a text whose tail is ``base_tail``.

    ``held``: what ``split_for_continuation`` held back. ``cut``: ``cut_state(base)``, for
    the reopened fence/tag rule. ``head``: the answer's first words, when ``base_tail`` is not
    the whole text (for the restart check).
    """

    def __init__(
        self,
        base_tail: str,
        held: str,
        strategy: str,
        *,
        window: int = ECHO_WINDOW,
        cut: CutState | None = None,
        head: str = "",
    ) -> None:
        check_strategy(strategy)
        self.strategy = strategy
        self._cut = cut
        whole = len(base_tail) < window
        self._tail = Tail(base_tail[-window:] if window > 0 else "", whole)
        self._head = head or (base_tail if whole else "")
        ws = len(held) - len(held.lstrip())
        self._held_ws = held[:ws]
        #: User-turn: the (half) word the model was asked to regenerate.
        self._word = held.split()[0] if strategy == "user-turn" and held.strip() else ""
        self._phase: Phase = "preamble" if strategy == "user-turn" else "whitespace"
        self._buf = ""
        self._preambles = 0
        self._preamble_seen = 0  # length of the buffer when preambles were last looked for
        self._search: EchoSearch | None = None
        #: The piece now starts at a line start (after a removed fence line).
        self._line_start = False
        #: The piece reopened what was open at the cut (evidence for the restart check).
        self._reopened = False
        self._opening = ""
        #: The restart check has been made on openings long enough to be final (or none can be one).
        self._restart_settled = strategy != "user-turn" or not could_restart(self._tail.text, self._head)
        #: Repaired text held back until the restart check is settled.
        self._withheld = ""
        #: The start of the piece as the model sent it (preambles included).
        self._piece_head = ""
        self._finished = False
        self._capped = False
        notes = (
            (f"held back the partial word {held[ws:]!r} for the model to regenerate",) if held[ws:] else ()
        )
        self.report = SeamReport(strategy=strategy, dropped_partial=held[ws:], cut=cut, notes=notes)

    def feed(self, delta: str) -> str:
        """Text of the piece that is safe to emit now, already repaired."""
        if self._finished:
            raise ValueError("SeamRepairer.feed() after finish()")
        if len(self._piece_head) < _PIECE_HEAD:
            self._piece_head += delta[: _PIECE_HEAD - len(self._piece_head)]
        if self._phase == "pass":
            return self._emit(delta)
        self._buf += delta
        return self._emit(self._advance(final=False))

    def finish(self, *, capped: bool = False) -> str:
        """The rest of the piece; after this, ``report`` is complete.

        ``capped``: the piece ended at the output cap, so a piece that ends inside a possible
        overlap is reported ``unresolved`` (and kept).
        """
        if self._finished:
            return ""
        self._capped = capped
        out = "" if self._phase == "pass" else self._emit(self._advance(final=True))
        self._finished = True
        self._conclude()
        out, self._withheld = self._withheld + out, ""
        return out

    @property
    def withheld(self) -> str:
        """Repaired text held back while the restart check is not settled (``finish`` gives it)."""
        return self._withheld

    # -- the phases

    def _advance(self, final: bool) -> str:
        if self._phase == "preamble":
            if not self._preambles_done(final):
                return ""
            self._phase = "echo"
        if self._phase == "echo":
            cut = self._echo_cut(final)
            if cut is MORE:
                return ""
            self._buf = self._buf[cut:]
            self._phase = "whitespace"
        out = self._restore_whitespace(final)
        if out is MORE:
            return ""
        self._phase = "pass"
        return out

    def _preambles_done(self, final: bool) -> bool:
        """Remove preambles and reopened lines from the front; False while undecided."""
        while self._preambles < _MAX_PREAMBLES:
            if not (final or self._preamble_may_change()):
                return False
            end: Found = find_preamble(self._buf, final, self._word)
            what = "preamble"
            if end == 0:
                end, what = (
                    find_reopening(self._buf, self._cut, self.report.dropped_partial, final),
                    "reopening",
                )
            if end is MORE:
                return False
            if not end:
                return True
            self._trim_front(end, what)
        return True

    def _preamble_may_change(self) -> bool:
        """Only whitespace (or the char after it) can end a preamble line: skip rescans otherwise."""
        buf, seen = self._buf, self._preamble_seen
        self._preamble_seen = len(buf)
        if seen == 0 or len(buf) > MAX_PREAMBLE or self._cut is not None:
            return True
        return any(ch.isspace() for ch in buf[seen - 1 :])

    def _trim_front(self, end: int, what: str) -> None:
        text = self._buf[:end]
        self._buf = self._buf[end:]
        self._preambles += 1
        self._preamble_seen = 0
        if what == "reopening":
            self._line_start = text.endswith("\n")
            self._reopened = True
            note = f"removed {text.strip()!r}: the piece reopened what was still open at the cut"
        else:
            note = f"removed a continuation preamble {text.strip()!r} ({len(text)} chars with its whitespace)"
        self._add(note, trimmed_preamble=self.report.trimmed_preamble + text)

    def _echo_cut(self, final: bool) -> int | Literal[Need.MORE]:
        """How much of the front is a verbatim suffix overlap (0: none), or MORE."""
        buf = self._buf
        if self._search is None:
            leads = _leads(buf, final)
            if leads is MORE:
                return MORE
            self._search = EchoSearch.start(self._tail, buf, leads)
        search = self._search
        search.advance(buf)
        choice = choose_overlap(buf, search, self._held_ws, self._word, final, self._capped)
        if choice is MORE:
            return MORE
        if choice is Need.UNRESOLVED:
            self._add(
                "the piece ended at the cap while it could still be repeating the text: kept", unresolved=True
            )
            return 0
        if choice is None:
            if search.complete:
                self._add(
                    f"kept {self._repeat(search.complete[0])!r} at the start of the piece: no evidence of an echo"
                )
            return 0
        self._note_echo(choice)
        return choice.end

    def _repeat(self, overlap: Overlap) -> str:
        return self._tail.text[overlap.start :]

    def _note_echo(self, overlap: Overlap) -> None:
        repeat = self._repeat(overlap)
        words = len(repeat.split())
        lead = self._buf[: overlap.lead]
        where = f" after {'whitespace' if lead.isspace() else repr(lead)}" if lead else ""
        self._add(
            f"piece repeated the last {words} word{'s' if words != 1 else ''} of the text ({len(repeat)} chars){where}",
            trimmed_echo=repeat,
        )

    def _restore_whitespace(self, final: bool) -> str | Literal[Need.MORE]:
        rest, held_ws = self._buf, self._held_ws
        short = not rest or (self._word and rest[0] in _CLOSING_PUNCT and len(rest) < len(self._word))
        if short and not final and self._word.startswith(rest):
            return MORE
        self._buf = ""
        line_break = held_ws[: held_ws.rfind("\n") + 1]
        if (
            self._line_start
            and line_break
            and rest[:1].isspace()
            and "\n" not in rest[: len(rest) - len(rest.lstrip())]
        ):
            self._add(
                "restored the line break before the piece's indented line", restored_whitespace=line_break
            )
            return line_break + rest
        if self._needs_whitespace(rest):
            note = f"restored {len(held_ws)} chars of whitespace {held_ws!r} the piece did not bring"
            self._add(note, restored_whitespace=held_ws)
            return held_ws + rest
        return rest

    def _needs_whitespace(self, rest: str) -> bool:
        if not rest or not self._held_ws or rest[0].isspace() or is_extender(rest[0]):
            return False
        if self._word and rest.startswith(self._word):
            return True  # the regenerated word, whatever it opens with
        return not (rest[0] in _CLOSING_PUNCT and "\n" not in self._held_ws)

    # -- the report

    def _emit(self, out: str) -> str:
        if out and len(self._opening) < _OPENING_CHARS:
            self._opening += out[: _OPENING_CHARS - len(self._opening)]
        if self._restart_settled:
            return out
        if out and self._phase == "pass":
            self._check_restart(final=False)  # as early as it is settled, so the engine can stop reading
        if not self._restart_settled:
            self._withheld += out
            return ""
        out, self._withheld = self._withheld + out, ""
        return out

    def _conclude(self) -> None:
        report = self.report
        verdict: Verdict
        if report.unresolved:
            verdict = "unresolved"
        elif not self._adds_text():
            verdict = "nothing-new"
        else:
            verdict = "echo" if report.trimmed_echo else "new"
        if self.strategy == "user-turn" and not self._restart_settled:
            self._check_restart(final=True)
        self.report = replace(self.report, verdict=verdict)

    def _check_restart(self, final: bool) -> None:
        """Set ``restart`` once more text cannot change it: each opening long enough or ruled out."""
        expected = self._held_ws + self._word
        openings = ((self._raw_opening(), True), (self._opening, False))
        if not final and not (
            any(self._confirmed(text, raw, expected) for text, raw in openings)
            or all(self._decided(text, raw, expected) for text, raw in openings)
        ):
            return
        self._restart_settled = True  # checked once: later text cannot change the verdict
        if self._restarts():
            self._add("the piece starts the answer or its section over", restart=True)

    def _decided(self, text: str, raw: bool, expected: str) -> bool:
        """Can no later text change the restart verdict on ``text``?"""
        if _settled(text, len(expected)) or _regenerates(text, expected):
            return True
        return self._ask(restart_ruled_out, text, raw)

    def _confirmed(self, text: str, raw: bool, expected: str) -> bool:
        """Is ``text`` a restart whatever follows (so the engine can stop reading now)?"""
        if len(text) < len(expected) or _regenerates(text, expected):
            return False
        return self._ask(restart_confirmed, text, raw)

    def _ask(self, check: Callable[..., bool], text: str, raw: bool) -> bool:
        """One of the restart checks on an opening, where that opening stands in the text."""
        tail, evidence = self._restart_place(raw)
        return check(text, tail, self._head, **evidence)

    def _restart_place(self, raw: bool) -> tuple[str, dict[str, bool]]:
        """Where an opening stands in the text, for the restart check: the text before it, and
        whether the cut was at a line start and the piece reopened what was open there. The
        piece as sent (``raw``) stands where its trimmed echo starts: what it repeats is the
        text's own."""
        tail, echo = self._tail.text, self.report.trimmed_echo
        if echo and raw:
            return tail[: len(tail) - len(echo)], {"line_start": False, "reopened": self._reopened}
        return tail, {"line_start": "\n" in self._held_ws, "reopened": self._reopened}

    def _raw_opening(self) -> str:
        return self._piece_head[len(self.report.trimmed_preamble) :][:_OPENING_CHARS]

    def _adds_text(self) -> bool:
        """Did the piece add anything beyond the held text it was asked to regenerate?"""
        kept = self._opening.strip()
        return bool(kept) and not self.report.dropped_partial.strip().startswith(kept)

    def _restarts(self) -> bool:
        """Does the piece (before or after its echo is trimmed) open the answer or section again?"""
        expected = self._held_ws + self._word
        return any(
            not _regenerates(text, expected) and self._ask(is_restart, text, raw)
            for text, raw in ((self._raw_opening(), True), (self._opening, False))
        )

    def _add(self, note: str, **changes: str | bool) -> None:
        self.report = replace(self.report, notes=self.report.notes + (note,), **changes)  # type: ignore[arg-type]


def _regenerates(text: str, expected: str) -> bool:
    """Does the opening start by writing the held word again (what it was asked to regenerate)?"""
    return bool(expected) and text.startswith(expected)


def _settled(text: str, expected: int) -> bool:
    """Is the restart check over ``text`` final: past the held word, the first line, the head's
    words and the section's words after the first line?"""
    if len(text) >= _OPENING_CHARS:
        return True
    opening = text.lstrip()
    _, newline, after = opening.partition("\n")
    words_done = len(opening.split()) > HEAD_WORDS and len(after.split()) > SECTION_WORDS
    return len(text) > expected and bool(newline) and words_done


def _leads(buf: str, final: bool) -> list[int] | Literal[Need.MORE]:
    """Where in the piece an overlap may start: 0, after leading whitespace, after an ellipsis."""
    ws = len(buf) - len(buf.lstrip())
    if ws == len(buf):
        return [] if final else MORE
    if ws:
        return [ws]
    if not final and buf in (".", ".."):
        return MORE
    ellipsis = 1 if buf.startswith("\u2026") else 3 if buf.startswith("...") else 0
    if ellipsis and ellipsis == len(buf):
        return [0] if final else MORE
    return [0, ellipsis] if ellipsis and not buf[ellipsis].isspace() else [0]


def join_piece(
    base_tail: str,
    held: str,
    piece: str,
    strategy: str,
    *,
    cut: CutState | None = None,
    capped: bool = False,
    head: str = "",
) -> tuple[str, SeamReport]:
    """The repaired text to append after ``base`` for a whole ``piece``, and what was done."""
    repairer = SeamRepairer(base_tail, held, strategy, cut=cut, head=head)
    out = repairer.feed(piece) + repairer.finish(capped=capped)
    return out, repairer.report
