"""The emulated model's thinking: how many tokens it thinks, their text and signature.

Deterministic (seeded by the emulator's seed and the request's content). The amount grows with
the effort in force (sent, or the model's default):

=========  =====  ======  =====  =====  =====
effort     low    medium  high   xhigh  max
=========  =====  ======  =====  =====  =====
fresh      128    512     1536   3072   6144
=========  =====  ======  =====  =====  =====

times a seeded factor in 0.8..1.2. A continuation (a request that carries assistant text: the
same task, already planned) thinks a quarter of that. ``thinking.type: enabled`` caps it at
``budget_tokens``. Thinking counts against ``max_tokens`` and is billed as output: when it
reaches ``max_tokens`` the response is only a (cut) thinking block with ``stop_reason:
max_tokens``. With ``display: omitted`` the block carries a signature and no thinking text.
The signature is bound to the conversation (a hash of its content and of the thinking).

``BLANK_LEAD_MODELS``: a real Opus 4.6 adaptive stream opened with a text block holding only
``"\\n\\n"`` before its thinking block; the emulator does the same for those models.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass

from .request import ParsedRequest
from .tokenizer import count_tokens, token_starts

__all__ = ["BLANK_LEAD_MODELS", "CONTINUATION_SHARE", "FRESH_THINKING", "ThinkingPlan", "plan_thinking"]

FRESH_THINKING = {"low": 128, "medium": 512, "high": 1536, "xhigh": 3072, "max": 6144}
#: Share of the fresh amount a continuation request thinks.
CONTINUATION_SHARE = 0.25
BLANK_LEAD_MODELS = frozenset({"claude-opus-4-6"})

_WORDS = [
    "plan",
    "next",
    "write",
    "keep",
    "tone",
    "voice",
    "pace",
    "scene",
    "check",
    "the",
    "story",
    "part",
    "then",
    "more",
    "same",
    "style",
    "where",
    "it",
    "left",
    "off",
    "carry",
    "on",
    "no",
    "recap",
    "order",
    "line",
]


@dataclass(frozen=True)
class ThinkingPlan:
    """The thinking block of one response (``tokens == 0``: none)."""

    tokens: int = 0
    #: The thinking text shown ("" with display omitted).
    text: str = ""
    signature: str = ""
    #: Whitespace-only text block sent before the thinking block ("" for none).
    lead: str = ""
    #: Thinking used all of ``max_tokens``: no text follows.
    capped: bool = False

    @property
    def lead_tokens(self) -> int:
        return count_tokens(self.lead) if self.lead else 0


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def thinking_tokens(request: ParsedRequest, seed: int) -> int:
    """How long the model thinks on ``request`` (before ``max_tokens`` cuts it)."""
    if not request.thinking:
        return 0
    base: float = FRESH_THINKING.get(request.effort, FRESH_THINKING["high"])
    if request.mode != "fresh":
        base = base * CONTINUATION_SHARE
    amount = max(1, round(base * _rng("think", seed, request.content_key).uniform(0.8, 1.2)))
    if request.thinking_budget is not None:
        amount = min(amount, request.thinking_budget)
    return amount


def thinking_text(tokens: int, seed: int, key: str) -> str:
    """Exactly ``tokens`` tokens of plan-like prose (one-token words, sentences end with ".")."""
    rng = _rng("think-text", seed, key)
    parts = ["Plan"] if tokens else []
    while len(parts) < tokens:
        parts.append("." if rng.random() < 0.12 and parts[-1] != "." else " " + rng.choice(_WORDS))
    text = "".join(parts)
    assert len(token_starts(text)) - 1 == tokens
    return text


def signature(content_key: str, text: str) -> str:
    """A stand-in signature bound to the conversation and the thinking."""
    digest = hashlib.sha256(
        ("sig\x1f" + content_key + "\x1f" + text).encode("utf-8", "surrogatepass")
    ).digest()
    return base64.b64encode(digest + hashlib.sha256(digest).digest()).decode()


def plan_thinking(request: ParsedRequest, seed: int) -> ThinkingPlan:
    """The thinking of one response, cut at ``max_tokens`` (a blank lead block included)."""
    wanted = thinking_tokens(request, seed)
    if not wanted:
        return ThinkingPlan()
    lead = "\n\n" if request.spec.id in BLANK_LEAD_MODELS else ""
    room = request.max_tokens - (count_tokens(lead) if lead else 0)
    if room <= 0:
        lead, room = "", request.max_tokens
    tokens = min(wanted, room)
    text = thinking_text(tokens, seed, request.content_key)
    shown = "" if request.thinking_display == "omitted" else text
    return ThinkingPlan(tokens, shown, signature(request.content_key, text), lead, capped=tokens >= room)
