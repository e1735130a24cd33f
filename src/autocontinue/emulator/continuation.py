"""What the emulated model sends for one request: where it resumes, quirks, max_tokens, stops.

A continuation goes on from the end of the longest common prefix of the assistant text it was
given and the full answer: a prefill cut mid-word continues mid-word (``"bro"`` -> ``"wn"``),
a user-turn text cut back to a whitespace continues with that whitespace (``" brown"``).
A ``restart`` quirk writes the answer's first paragraph again (or its current section's
heading and first paragraph) in place of an echo. The output is the quirk prefix (preamble,
echo or restart) then the answer from there, cut at
``max_tokens`` by the tokenizer, then at the first stop sequence (the matched string is not
sent; the tokens up to and including it are counted, as a model generated them).

Every conversation with assistant text is read as a continuation of the one fixed answer (the
emulator has no other knowledge): assistant text that does not match the answer resumes from
where the match ends, and a finished answer continued gets an empty ``end_turn``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..prefix import common_prefix_length
from .quirks import QuirkChoice, echo_text
from .sources import Answer
from .tokenizer import token_starts

__all__ = ["Plan", "resume_offset", "restart_text", "plan_output"]


@dataclass(frozen=True)
class Plan:
    """The response text and its token boundaries, with the stop that ends it."""

    text: str
    #: Start offset of every emitted token in ``text``, then ``len(text)``.
    bounds: list[int]
    output_tokens: int
    stop_reason: str
    stop_sequence: str | None = None

    def chunks(self, tokens_per_chunk: int) -> list[tuple[str, int]]:
        """(text, token count) pieces of at most ``tokens_per_chunk`` tokens each."""
        bounds = self.bounds
        last = len(bounds) - 1
        step = max(1, tokens_per_chunk)
        out = []
        for i in range(0, last, step):
            j = min(i + step, last)
            piece = self.text[bounds[i] : bounds[j]]
            if piece:
                out.append((piece, j - i))
        return out


def resume_offset(answer: str, given: str) -> int:
    """Where a continuation of ``given`` starts in ``answer``: their common prefix's length."""
    return common_prefix_length(answer, given)


def _answer_segment(answer: Answer, start: int, early_stop: float, cap: int) -> tuple[str, list[int]]:
    """The answer from char ``start`` to its (possibly early) end, at most ``cap`` tokens."""
    starts = answer.starts
    total = answer.token_count
    k = bisect.bisect_right(starts, start) - 1  # token holding ``start``
    k = min(max(k, 0), total)
    end_index = _early_end(answer, start, k, early_stop) if early_stop and k < total else total
    end_index = min(end_index, k + cap)  # never build more than the response can hold
    end = starts[end_index]
    if start >= end:
        return "", [0]
    bounds = [0] + [s - start for s in starts[k + 1 : end_index]] + [end - start]
    return answer.text[start:end], bounds


def _early_end(answer: Answer, start: int, k: int, fraction: float) -> int:
    """Token index where an early-stopped answer ends: after a whole word, never blank."""
    text, starts, total = answer.text, answer.starts, answer.token_count

    def has_text(j: int) -> bool:
        return starts[j] > start and not text[start : starts[j]].isspace()

    end = min(total, k + max(1, int((total - k) * fraction)))
    for j in range(end, k, -1):
        if j < total and text[starts[j]].isspace() and has_text(j):
            return j
    while end < total and not has_text(end):
        end += 1
    return end


def plan_output(
    answer: Answer,
    mode: str,
    assistant_text: str,
    quirks: QuirkChoice,
    max_tokens: int,
    stop_sequences: tuple[str, ...] = (),
) -> Plan:
    """The whole response for a request (see the module docstring)."""
    start = resume_offset(answer.text, assistant_text) if mode != "fresh" else 0
    echo = echo_text(assistant_text, quirks.echo_words) if mode != "fresh" else ""
    restart = restart_text(answer.text, start, quirks.restart) if mode == "user-turn" else ""
    if restart:
        echo = restart
    # After a blank line (a preamble's, a restart's) no model opens with a space.
    if restart or ((quirks.drop_space or quirks.preamble) and not echo):
        while start < len(answer.text) and answer.text[start].isspace():
            start += 1
    segment, seg_bounds = _answer_segment(answer, start, quirks.early_stop, max_tokens + 1)
    prefix = (quirks.preamble + "\n\n" if quirks.preamble else "") + echo
    prefix_bounds = token_starts(prefix)[:-1] if prefix else []
    text = prefix + segment
    bounds = prefix_bounds + [len(prefix) + b for b in seg_bounds]
    hit_max = len(bounds) - 1 > max_tokens
    if hit_max:
        bounds = bounds[: max_tokens + 1]
        text = text[: bounds[-1]]
    return _apply_stops(text, bounds, stop_sequences, "max_tokens" if hit_max else "end_turn")


def restart_text(text: str, start: int, kind: str) -> str:
    """What a restarted continuation writes again before going on ("" = it does not restart).

    From the answer's start (``"answer"``) or from the last ``#`` heading line that ended
    before ``start`` (``"section"``): the text to the end of that first paragraph (its blank
    line included), at most to ``start``.
    """
    begin: int | None = 0 if kind == "answer" else _section_start(text, start) if kind == "section" else None
    if begin is None or begin >= start:
        return ""
    blank = text.find("\n\n", text.find("\n", begin) + 1 if kind == "section" else begin)
    end = start if blank < 0 else min(start, blank + 2)
    return text[begin:end]


def _section_start(text: str, start: int) -> int | None:
    """The offset of the last markdown heading line that ended before ``start``."""
    body = text[: text.rfind("\n", 0, start) + 1]
    offset = len(body)
    for line in reversed(body.split("\n")[:-1]):
        offset -= len(line) + 1
        if line.lstrip().startswith("#") and line.strip("# \t"):
            return offset
    return None


def _apply_stops(text: str, bounds: list[int], stops: tuple[str, ...], reason: str) -> Plan:
    hits = [(text.find(s), -len(s), s) for s in stops if s and s in text]
    if not hits:
        return Plan(text, bounds, len(bounds) - 1, reason)
    at, _, matched = min(hits)
    used = bisect.bisect_left(bounds, at + len(matched))  # tokens generated through the match
    kept = [b for b in bounds if b < at] + [at]
    return Plan(text[:at], kept, used, "stop_sequence", matched)
