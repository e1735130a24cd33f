"""Quirks of real models at a seam, each applied with a seeded probability.

``--quirks echo:0.5,preamble:1,drop-space:0.3,early-stop:0.2`` (or a dict). Whether a quirk
applies to a request is decided once per request from the seed and the request's content
(system + messages), so the same request always gets the same quirks, and a different
continuation round rolls again.

``echo``
    A user-turn continuation first repeats the last one to four words of the assistant text
    it was given, starting at a word start, whitespace between the words included, then goes
    on: given ``"...the quick"`` it sends ``"quick brown fox"``. A prefill continuation never
    echoes: a model continuing its own open turn does not repeat it.
``preamble``
    A user-turn continuation opens with one of several sentences such as ``"Sure, continuing
    where I left off:"`` followed by a blank line (``"\\n\\n"``); the text after it starts
    without the whitespace that should open it (no model starts a line with a space).
``drop-space``
    A user-turn continuation omits the whitespace that should open it (``"brown"`` instead of
    ``" brown"``).
``early-stop``
    The answer ends with ``end_turn`` at 30-70% of what is left of it (after a whole word), as
    real models stop short of a requested length; asked to continue, it goes on with the rest.
``restart``
    A user-turn continuation starts the answer over: it writes the answer's first paragraph
    again (to its blank line; all of the text when it has none), then goes on from where it
    should, with no echo. A user turn that quotes the end of the text (its last line, as a
    firmer instruction does) is not restarted: the model was shown where it stopped.
``restart-section``
    The same, from the heading of the section the text is in (the last markdown ``#`` line
    before where it stopped): the heading and the section's first paragraph again. With no
    such heading it goes on normally.

New quirks are rolled after the earlier ones' draws, so the quirks a seed gave before stay the
same. Quirk text counts as output tokens, like everything the model sends.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "QUIRK_NAMES",
    "QUIRKS_EXAMPLE",
    "PREAMBLES",
    "parse_probabilities",
    "parse_quirks",
    "QuirkChoice",
    "decide_quirks",
    "echo_text",
]

#: New quirks go at the end (and are rolled after the parameters): each request's seeded roll
#: takes its draws in this order, so the quirks a seed gave before stay the same.
QUIRK_NAMES = ("echo", "preamble", "drop-space", "early-stop", "restart", "restart-section")
_FIRST_QUIRKS = QUIRK_NAMES[:4]
#: Characters of the end of the text's last line a user turn must quote to prevent a restart.
QUOTE_CHARS = 20
#: Written in the hints of a bad ``--quirks``.
QUIRKS_EXAMPLE = "echo:0.5,preamble:1,drop-space:0.3,early-stop:0.2,restart:0.1,restart-section:0.1"

PREAMBLES = (
    "Sure, continuing where I left off:",
    "Certainly! Continuing from where I left off:",
    "Here is the continuation:",
    "Continuing:",
    "Of course. Picking up exactly where the text stopped:",
)


def parse_probabilities(
    spec: str | Mapping[str, float] | None, names: tuple[str, ...], what: str
) -> dict[str, float]:
    """``"a:0.5,b:1"`` or a dict -> {name: probability}; raises ValueError naming the bad item."""
    if not spec:
        return {}
    items = (
        spec.items()
        if isinstance(spec, Mapping)
        else [_split_item(item) for item in spec.split(",") if item.strip()]
    )
    out: dict[str, float] = {}
    for name, value in items:
        name = str(name).strip()
        if name not in names:
            raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(names)}")
        try:
            probability = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {name}: probability {value!r} is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{what} {name}: probability {value!r} must be between 0 and 1")
        out[name] = probability
    return out


def _split_item(item: str) -> tuple[str, str]:
    name, sep, value = item.strip().partition(":")
    return name, (value if sep else "1")


def parse_quirks(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """Read ``--quirks``; a bare name means probability 1."""
    return parse_probabilities(spec, QUIRK_NAMES, "quirk")


@dataclass(frozen=True)
class QuirkChoice:
    """The quirks that apply to one request, and their random parameters."""

    echo_words: int = 0
    preamble: str = ""
    drop_space: bool = False
    #: Fraction of the remaining answer after which it ends early (0 = no early stop).
    early_stop: float = 0.0
    #: "answer" or "section": the piece starts the answer or its section over ("" = no restart).
    restart: str = ""


def _request_rng(seed: int, content_key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1fquirks\x1f{content_key}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def decide_quirks(
    probabilities: Mapping[str, float],
    seed: int,
    content_key: str,
    mode: str,
    *,
    assistant_text: str = "",
    user_text: str = "",
) -> QuirkChoice:
    """Roll each quirk for a request in ``mode`` ("fresh", "prefill" or "user-turn").

    ``assistant_text`` and ``user_text`` (the user turn after it) decide whether the user turn
    quotes where the text stopped, which prevents a restart.
    """
    rng = _request_rng(seed, content_key)
    rolls = {name: rng.random() for name in _FIRST_QUIRKS}
    params = (rng.randint(1, 4), rng.choice(PREAMBLES), 0.3 + 0.4 * rng.random())
    rolls.update((name, rng.random()) for name in QUIRK_NAMES[len(_FIRST_QUIRKS) :])

    def on(name: str) -> bool:
        return rolls[name] < probabilities.get(name, 0.0)

    return QuirkChoice(
        echo_words=params[0] if mode == "user-turn" and on("echo") else 0,
        preamble=params[1] if mode == "user-turn" and on("preamble") else "",
        drop_space=mode == "user-turn" and on("drop-space"),
        early_stop=params[2] if on("early-stop") else 0.0,
        restart=_restart(mode, on("restart"), on("restart-section"), assistant_text, user_text),
    )


def _restart(mode: str, answer: bool, section: bool, assistant_text: str, user_text: str) -> str:
    """Which restart applies ("" = none): never when the user turn quotes the end of the text."""
    if mode != "user-turn" or not (answer or section):
        return ""
    lines = [line.strip() for line in assistant_text.splitlines() if line.strip()]
    if lines and lines[-1][-QUOTE_CHARS:] in user_text:
        return ""
    return "answer" if answer else "section"


_WORD_START = re.compile(r"(?<!\S)\S")


def echo_text(assistant_text: str, words: int) -> str:
    """The last ``words`` words of ``assistant_text``, from a word start to its end."""
    if words <= 0:
        return ""
    starts = [m.start() for m in _WORD_START.finditer(assistant_text)]
    if not starts:
        return ""
    return assistant_text[starts[-min(words, len(starts))] :]
