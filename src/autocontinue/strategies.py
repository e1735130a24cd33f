"""How the next round's messages are built: prefill, user-turn, and the choice between them.

``prefill``: the answer so far is the final assistant message (without trailing whitespace,
which the API rejects); the model continues the same turn. ``user-turn``: the answer so far,
cut back to its last whitespace, is an assistant turn, followed by a user turn asking to go
on exactly from there. The answer so far is sent as one text block per earlier round, so the
blocks of earlier rounds stay byte-identical and prompt caching can read them back.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError

__all__ = [
    "STRATEGIES",
    "CONTINUE_INSTRUCTION",
    "LENGTHEN_INSTRUCTION",
    "STALLED_INSTRUCTION",
    "STALLED_LENGTHEN_INSTRUCTION",
    "last_line",
    "normalise_prompt",
    "assistant_blocks",
    "build_messages",
    "choose_strategy",
]

STRATEGIES = ("auto", "prefill", "user-turn")

CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off by the output limit. Continue it exactly where it stopped, "
    "from the very next character. Do not repeat any of it, do not add a preamble, a comment or "
    "a summary: what you write is appended directly to the text so far."
)

LENGTHEN_INSTRUCTION = (
    "Your reply is shorter than requested: it has {words} words and needs at least {target}. "
    "Continue it from exactly where it ends, in the same style, without repeating anything and "
    "without any preamble: what you write is appended directly to the text so far."
)

#: After a round that added nothing: quote where the text ends and ask only for what follows.
STALLED_INSTRUCTION = (
    "Your previous reply was cut off by the output limit. Do not start over and do not repeat "
    "anything already written. The text so far ends with this line:\n\n{line}\n\n"
    "Write only what comes directly after it, from the very next character, with no preamble: "
    "what you write is appended directly to the text so far."
)

STALLED_LENGTHEN_INSTRUCTION = (
    "Your reply is shorter than requested: it has {words} words and needs at least {target}. "
    "Do not start over and do not repeat anything already written. It ends with this line:"
    "\n\n{line}\n\nWrite only what comes after it, in the same style, with no preamble: what "
    "you write is appended directly to the text so far."
)

#: Longest stretch of the last line quoted by the instructions above.
QUOTED_LINE_CHARS = 200


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (its last ``QUOTED_LINE_CHARS`` characters)."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    line = lines[-1].strip() if lines else ""
    return line[-QUOTED_LINE_CHARS:]


def _check_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        if not content.strip():
            raise ConfigurationError(f"{where} is empty", hint="give a non-empty prompt")
        return
    if isinstance(content, list) and content:
        return
    raise ConfigurationError(
        f"{where} has no content", hint="content is a string or a list of content blocks"
    )


def normalise_prompt(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turn the caller's prompt into Messages API messages, refusing what the API would."""
    if isinstance(prompt, str):
        _check_content(prompt, "the prompt")
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise ConfigurationError("the prompt is empty", hint="pass a string or a non-empty list of messages")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ConfigurationError(
                f"prompt message {i} is not a user or assistant message",
                hint='each message is {"role": "user"|"assistant", "content": ...}',
            )
        _check_content(message.get("content"), f"prompt message {i}")
        messages.append(dict(message))
    if messages[-1]["role"] != "user":
        raise ConfigurationError(
            "the prompt's last message is an assistant message",
            hint="pass the start of the answer as prefill= instead",
        )
    return messages


def assistant_blocks(segments: list[str], *, keep_trailing_whitespace: bool = False) -> list[dict[str, Any]]:
    """Text blocks for the answer so far: one per round, empty ones dropped.

    The last block loses its trailing whitespace (the API refuses it) unless
    ``keep_trailing_whitespace``.
    """
    blocks = [s for s in segments if s]
    if not keep_trailing_whitespace:
        while blocks and not blocks[-1].rstrip():
            blocks.pop()
        if blocks:
            blocks[-1] = blocks[-1].rstrip()
    return [{"type": "text", "text": s} for s in blocks]


def build_messages(
    prompt: list[dict[str, Any]],
    segments: list[str],
    strategy: str,
    *,
    instruction: str = CONTINUE_INSTRUCTION,
    keep_trailing_whitespace: bool = False,
) -> list[dict[str, Any]]:
    """The messages of the next call, given the answer so far as ``segments``."""
    keep = keep_trailing_whitespace and strategy == "prefill"
    blocks = assistant_blocks(segments, keep_trailing_whitespace=keep)
    if not blocks:
        return list(prompt)
    messages = [*prompt, {"role": "assistant", "content": blocks}]
    if strategy == "user-turn":
        messages.append({"role": "user", "content": instruction})
    return messages


def choose_strategy(requested: str, prefill_supported: bool) -> str:
    """``auto`` becomes prefill where the model accepts it, else user-turn."""
    if requested not in STRATEGIES:
        raise ConfigurationError(f"unknown strategy {requested!r}", hint="use auto, prefill or user-turn")
    if requested == "auto":
        return "prefill" if prefill_supported else "user-turn"
    return requested
