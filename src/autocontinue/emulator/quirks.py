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

Quirk text counts as output tokens, like everything the model sends.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "QUIRK_NAMES",
    "PREAMBLES",
    "parse_probabilities",
    "parse_quirks",
    "QuirkChoice",
    "decide_quirks",
    "echo_text",
]

QUIRK_NAMES = ("echo", "preamble", "drop-space", "early-stop")

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


def _request_rng(seed: int, content_key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1fquirks\x1f{content_key}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def decide_quirks(probabilities: Mapping[str, float], seed: int, content_key: str, mode: str) -> QuirkChoice:
    """Roll each quirk for a request in ``mode`` ("fresh", "prefill" or "user-turn")."""
    rng = _request_rng(seed, content_key)
    rolls = {name: rng.random() for name in QUIRK_NAMES}
    params = (rng.randint(1, 4), rng.choice(PREAMBLES), 0.3 + 0.4 * rng.random())

    def on(name: str) -> bool:
        return rolls[name] < probabilities.get(name, 0.0)

    return QuirkChoice(
        echo_words=params[0] if mode == "user-turn" and on("echo") else 0,
        preamble=params[1] if mode == "user-turn" and on("preamble") else "",
        drop_space=mode == "user-turn" and on("drop-space"),
        early_stop=params[2] if on("early-stop") else 0.0,
    )


_WORD_START = re.compile(r"(?<!\S)\S")


def echo_text(assistant_text: str, words: int) -> str:
    """The last ``words`` words of ``assistant_text``, from a word start to its end."""
    if words <= 0:
        return ""
    starts = [m.start() for m in _WORD_START.finditer(assistant_text)]
    if not starts:
        return ""
    return assistant_text[starts[-min(words, len(starts))] :]
