"""The emulator's deterministic tokenizer: decides token counts, ``max_tokens`` cuts and usage.

It is not Claude's tokenizer (that one is not public); it is a small, documented stand-in that
behaves roughly like a BPE vocabulary, so counts have realistic sizes and cuts land where a
real model's would (inside words, inside multi-byte text, between a space and its word).

The rules, applied left to right (``TOKEN_RE``), every character belongs to exactly one token
and the tokens concatenate back to the text:

* a run of newlines is one token;
* a run of spaces or tabs is attached to the word piece, digit group or mark that follows it;
* ASCII letters come in chunks of at most 5 (``" river"`` is one token, ``"continuing"`` is
  ``"conti"`` + ``"nuing"``);
* ASCII digits come in groups of at most 3 (``"12345"`` is ``"123"`` + ``"45"``);
* every other character (punctuation, ``·``, ``é``, ``日``, an emoji) is a token of its own;
* whitespace that is followed by nothing it can attach to (end of text, spaces before a
  newline) is a token of its own.

Input tokens of a request (see ``prompt_blocks`` in ``request.py``): the tokens of every text
block of the system prompt and of every message, plus ``MESSAGE_OVERHEAD`` tokens per message
(the role marker) and ``SYSTEM_OVERHEAD`` when a system prompt is present.
"""

from __future__ import annotations

import re

__all__ = ["TOKEN_RE", "MESSAGE_OVERHEAD", "SYSTEM_OVERHEAD", "tokenize", "count_tokens", "token_starts"]

TOKEN_RE = re.compile(r"\n+|[ \t]*(?:[A-Za-z]{1,5}|[0-9]{1,3}|[^\sA-Za-z0-9])|\s+")

#: Tokens added for each message of a request (the role marker).
MESSAGE_OVERHEAD = 3
#: Tokens added when the request has a system prompt.
SYSTEM_OVERHEAD = 2


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``; ``"".join(tokenize(t)) == t``."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` has."""
    return sum(1 for _ in TOKEN_RE.finditer(text))


def token_starts(text: str) -> list[int]:
    """Start offset of every token of ``text``, followed by ``len(text)``."""
    starts = [m.start() for m in TOKEN_RE.finditer(text)]
    starts.append(len(text))
    return starts
