"""Where the emulator's "model" text comes from: a fixed answer per prompt.

The full answer to a request is a fixed text of ``length`` tokens (then ``end_turn``), a pure
function of the seed and of the *text* of the system prompt and of the first user message
(a string or content blocks; ``cache_control`` and block boundaries do not matter). Every
continuation request with the same opening therefore continues the same answer, which is what
lets the emulator behave like a model that carries on where it stopped.

Sources:

``numbered`` (default)
    Prose in which every word carries its running index (``river·17``), so a lost or doubled
    word at a seam is visible at once. It is split into ``<story_1>`` ... ``</story_1>``
    sections (the tag name follows the prompt if it asks for e.g. ``<chapter_N>`` tags) and
    mixes in paragraphs, punctuation, multi-byte characters (é, —, 日本, emoji) and fenced
    code blocks whose identifiers carry the index too (``value_42``). To land on exactly
    ``length`` tokens it ends between two words of prose, padded with ``.`` and closed with the
    open section's tag. Answers shorter than 40 tokens have no tags.
``corpus:PATH``
    The text of a UTF-8 file, started at a word chosen by seed and prompt, repeated as needed.
``local``
    The embedded local model (see ``local.py``); its text is generated, not fixed.

Answers are built once per (source, seed, length, system, first user) and kept in an LRU
cache, so a 300k-token answer costs its generation only once.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from array import array
from dataclasses import dataclass
from pathlib import Path

from .tokenizer import count_tokens, token_starts

__all__ = ["Answer", "answer_for", "numbered_text", "corpus_text", "tag_name_for", "parse_source"]


@dataclass(frozen=True)
class Answer:
    """A full answer: its text and the start offset of each token (plus ``len(text)``)."""

    text: str
    #: A compact array of ints (8 bytes each), so long answers stay small in the LRU cache.
    starts: array

    @property
    def token_count(self) -> int:
        return len(self.starts) - 1


def parse_source(text: str) -> str:
    """Validate a ``--source`` value; returns it unchanged. Raises ValueError with the reason."""
    if text in ("numbered", "local"):
        return text
    if text.startswith("corpus:"):
        path = Path(text[len("corpus:") :])
        if not path.is_file():
            raise ValueError(f"corpus file {str(path)!r} does not exist")
        try:
            if not path.read_text(encoding="utf-8").strip():
                raise ValueError(f"corpus file {str(path)!r} is empty")
        except UnicodeDecodeError:
            raise ValueError(f"corpus file {str(path)!r} is not UTF-8 text") from None
        return text
    raise ValueError(f"unknown source {text!r}; use numbered, corpus:PATH or local")


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z]*)_(?:\d+|N|n|X|x|k|K)>")


def tag_name_for(first_user: str) -> str:
    """The section tag the prompt asks for (``<chapter_N>`` -> ``chapter``), else ``story``."""
    match = _TAG_RE.search(first_user)
    return match.group(1) if match else "story"


_WORDS = (
    "river stone lantern orchard harbor meadow copper willow thunder garden signal quiet "
    "market ladder window silver forest candle marble pocket basket canyon feather bridge "
    "compass kettle velvet ember glacier falcon meridian harvest lighthouse parchment cobalt "
    "sparrow tundra violet anchor beacon crystal dune echo fable grove island juniper kayak "
    "lagoon nectar oasis pebble quartz ribbon saffron timber umbra valley walnut yonder zephyr "
    "the a of and to in was it with as"
).split()
_RARE_WORDS = [
    "café",
    "naïve",
    "über",
    "日本",
    "東京",
    "façade",
    "résumé",
    "🌊",
    "🚀",
    "smörgåsbord",
    "Ωmega",
]
_END_MARKS = [".", ".", ".", ".", "!", "?", ";"]


class _Writer:
    """Builds numbered prose fragment by fragment, keeping a running token estimate."""

    def __init__(self, rng: random.Random, tag: str) -> None:
        self.rng = rng
        self.tag = tag
        self.parts: list[str] = []
        self.tokens = 0
        self.index = 0

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)
        self.tokens += count_tokens(fragment)

    def word(self) -> str:
        self.index += 1
        rng = self.rng
        base = rng.choice(_RARE_WORDS) if rng.random() < 0.06 else rng.choice(_WORDS)
        return f"{base}·{self.index}"

    def sentence(self) -> str:
        rng = self.rng
        words = [self.word() for _ in range(rng.randint(5, 13))]
        words[0] = words[0][:1].upper() + words[0][1:]
        out = words[0]
        for word in words[1:]:
            roll = rng.random()
            if roll < 0.08:
                out += ","
            elif roll < 0.11:
                out += " —"
            elif roll < 0.13:
                out += ":"
            out += " " + word
        return out + rng.choice(_END_MARKS)

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 5)))

    def code_block(self) -> str:
        names = []
        for _ in range(3):
            self.index += 1
            names.append(self.index)
        a, b, c = names
        return (
            "```python\n"
            f"def step_{a}(value_{b}):\n"
            f"    total_{c} = value_{b} * {a} + {c}\n"
            f'    return {{"step": {a}, "total": total_{c}}}  # ok — done\n'
            "```"
        )


def numbered_text(seed: int, length: int, system: str, first_user: str) -> str:
    """The ``numbered`` answer: exactly ``length`` tokens of indexed prose in tagged sections."""
    rng = _rng("numbered", seed, system, first_user)
    tag = tag_name_for(first_user)
    writer = _Writer(rng, tag)
    use_tags = length >= 40
    section = 1
    closing = f"\n</{tag}_{section}>" if use_tags else ""
    if use_tags:
        writer.add(f"<{tag}_{section}>\n")
    since_code = 0
    section_tokens = 0
    budget = length - count_tokens(closing) + 40
    first = True
    while writer.tokens < budget:
        if not first:
            if use_tags and section_tokens > 450 + rng.randint(0, 400):
                section += 1
                section_tokens = 0
                writer.add(f"\n</{tag}_{section - 1}>\n\n<{tag}_{section}>\n")
                closing = f"\n</{tag}_{section}>"
            else:
                writer.add("\n\n")
        first = False
        before = writer.tokens
        if since_code > 500 and rng.random() < 0.5:
            writer.add(writer.code_block())
            since_code = 0
        else:
            writer.add(writer.paragraph())
        since_code += writer.tokens - before
        section_tokens += writer.tokens - before
    body = "".join(writer.parts)
    return _fit(body, tag if use_tags else None, length)


def _fit(body: str, tag: str | None, length: int) -> str:
    """Cut ``body`` between two words of prose (never inside a code block or between sections),
    close the open section and pad with ``.`` so the text has exactly ``length`` tokens."""
    closing_tokens = count_tokens(f"\n</{tag}_1>") if tag else 0
    need = length - closing_tokens
    starts = token_starts(body)
    if need <= 0 or len(starts) - 1 <= 1:
        return body[: starts[min(max(length, 0), len(starts) - 1)]]
    cut = min(need, len(starts) - 1)
    while cut > 0 and not (body[starts[cut]] == " " and body.count("```", 0, starts[cut]) % 2 == 0):
        cut -= 1
    head = body[: starts[cut]].rstrip() if cut else body[: starts[min(need, len(starts) - 1)]]
    closing = ""
    if tag:
        opened = re.findall(rf"<{re.escape(tag)}_(\d+)>", head)
        closing = f"\n</{tag}_{opened[-1] if opened else 1}>"
    pad = need - count_tokens(head)
    return head + "." * max(pad, 0) + closing


def token_starts_text(text: str) -> list[str]:
    starts = token_starts(text)
    return [text[a:b] for a, b in zip(starts, starts[1:])]


@functools.lru_cache(maxsize=8)
def _corpus_file(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def corpus_text(path: str, seed: int, length: int, system: str, first_user: str) -> str:
    """``length`` tokens of the file at ``path``, from a word chosen by seed and prompt, wrapping."""
    source = _corpus_file(path)
    rng = _rng("corpus", seed, system, first_user)
    word_starts = [m.start() for m in re.finditer(r"(?<!\S)\S", source)] or [0]
    start = rng.choice(word_starts)
    rotated = source[start:] + "\n\n" + source[:start]
    tokens_each = max(count_tokens(rotated), 1)
    text = rotated * (length // tokens_each + 1) + rotated
    starts = token_starts(text)
    return text[: starts[min(length, len(starts) - 1)]]


@functools.lru_cache(maxsize=16)
def answer_for(source: str, seed: int, length: int, system: str, first_user: str) -> Answer:
    """The full answer for this opening (cached)."""
    if source.startswith("corpus:"):
        text = corpus_text(source[len("corpus:") :], seed, length, system, first_user)
    else:
        text = numbered_text(seed, length, system, first_user)
    return Answer(text=text, starts=array("q", token_starts(text)))
