"""A model's own chat template, rendered with the final assistant turn left open.

GGUF files carry their chat template (``tokenizer.chat_template``) as Jinja2 source. This
module renders it the way ``transformers`` does (sandboxed, ``raise_exception``, ``bos_token``,
``eos_token``, ``add_generation_prompt``) and adds what llama.cpp's own chat completion lacks:
the ``continue_final_message`` rendering, where a final assistant message stays open so the
model continues that very turn instead of starting a new one.

The open turn is found with a sentinel: the conversation is rendered with the last assistant
content replaced by a unique marker, and the text is cut just before it; the real content is
appended after the cut. A template that drops, repeats or rewrites the marker cannot leave a
turn open, and ``supports_open_turn`` says so (the engine then uses the user-turn strategy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "ChatTemplate",
    "OpenTurnUnsupported",
    "flatten_content",
    "normalise_messages",
]

#: Stands in for the final assistant content while rendering; never produced by a model.
SENTINEL = "\u2063AUTOCONTINUE\u2063OPEN\u2063TURN\u2063"


class OpenTurnUnsupported(ValueError):
    """The template cannot render a final assistant turn left open."""


def flatten_content(content: Any) -> str:
    """Message content as one string: a string as is, text blocks joined (cache_control ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type", "text") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def normalise_messages(system: Any, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages API input as plain ``{role, content}`` dicts for a chat template.

    ``system`` becomes a leading system message; consecutive turns of one role are merged into
    one turn, as the Messages API does.
    """
    result: list[dict[str, str]] = []
    system_text = flatten_content(system)
    if system_text:
        result.append({"role": "system", "content": system_text})
    for message in messages:
        role = str(message.get("role", "user"))
        text = flatten_content(message.get("content"))
        if result and result[-1]["role"] == role and role != "system":
            result[-1] = {"role": role, "content": result[-1]["content"] + text}
        else:
            result.append({"role": role, "content": text})
    return result


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _compile(source: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


@dataclass
class ChatTemplate:
    """A Jinja2 chat template with the special tokens it refers to."""

    source: str
    bos_token: str = ""
    eos_token: str = ""

    def __post_init__(self) -> None:
        self._template = _compile(self.source)
        self._open_turn_ok: bool | None = None

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        """The template's own rendering (every turn closed)."""
        return self._template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def render_open(self, messages: list[dict[str, str]]) -> str:
        """Render a conversation whose final assistant message stays open for continuation.

        Raises OpenTurnUnsupported when the template cannot do it.
        """
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError("render_open needs a final assistant message")
        head = self.open_turn_prefix(messages[:-1])
        return head + messages[-1]["content"]

    def open_turn_prefix(self, earlier: list[dict[str, str]]) -> str:
        """Everything the template puts before the content of a new assistant turn."""
        probe = [*earlier, {"role": "assistant", "content": SENTINEL}]
        try:
            rendered = self.render(probe, add_generation_prompt=False)
        except Exception as exc:  # template errors of any kind: it cannot do this
            raise OpenTurnUnsupported(f"the chat template failed: {exc}") from exc
        if rendered.count(SENTINEL) != 1:
            raise OpenTurnUnsupported("the chat template drops or rewrites the final assistant turn")
        return rendered[: rendered.index(SENTINEL)]

    def supports_open_turn(self) -> bool:
        """Whether a final assistant turn can be left open (probed once, with a sample chat)."""
        if self._open_turn_ok is None:
            self._open_turn_ok = self._probe_open_turn()
        return self._open_turn_ok

    def _probe_open_turn(self) -> bool:
        chats = (
            [{"role": "user", "content": "Hello"}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        )
        try:
            for earlier in chats:
                self.open_turn_prefix(earlier)
        except OpenTurnUnsupported:
            return False
        return True

    def end_of_turn_marker(self) -> str:
        """What the template writes right after an assistant message (e.g. ``<|im_end|>``)."""
        probe = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": SENTINEL}]
        try:
            rendered = self.render(probe, add_generation_prompt=False)
        except Exception:
            return ""
        _, found, after = rendered.partition(SENTINEL)
        return after.strip() if found else ""

    def render_prompt(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """The prompt text for a round, and whether it continues an open assistant turn."""
        if messages and messages[-1]["role"] == "assistant":
            return self.render_open(messages), True
        return self.render(messages, add_generation_prompt=True), False
