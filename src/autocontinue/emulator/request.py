"""Reading and checking a Messages API request, with the real API's error statuses and texts.

``parse_request`` turns a JSON body into a ``ParsedRequest`` or raises ``ApiError`` carrying
the status, error type and message the real API would send. The checks, in order:

1. shape: ``model``, ``messages``, ``max_tokens`` present and typed (pydantic-style texts such
   as ``max_tokens: Field required``), roles ``user``/``assistant``, content a string or blocks;
2. sampling parameters, per ``anthropic-version``: under ``2026-10-21`` any of ``temperature``,
   ``top_p``, ``top_k`` is ``temperature: Extra inputs are not permitted`` (even at its default);
   under ``2023-06-01`` a model from Opus 4.7 on answers "`temperature` is deprecated for this
   model."  and older ones check ``temperature`` in 0..1 (``temperature: range: 0..1``);
3. empty content: ``messages.N: all messages must have non-empty content except for the
   optional final assistant message`` (an empty text block: ``messages: text content blocks
   must be non-empty``);
4. more than 4 ``cache_control`` blocks: ``A maximum of 4 blocks with cache_control may be
   provided. Found N.``; a ``ttl: "1h"`` breakpoint after a 5-minute one: ``messages.1.content.0.
   cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m'
   cache_control block. ...``;
5. unknown model, or one past its catalogue retirement date: 404 ``model: <id>``;
6. ``max_tokens`` above the model's maximum: ``max_tokens: 100000 > 64000, which is the maximum
   allowed number of output tokens for claude-sonnet-4-5``;
7. a final assistant message (prefill) to a model that refuses it: ``This model does not
   support assistant message prefill. The conversation must end with a user message.``;
8. a final assistant message ending in whitespace: ``messages: final assistant content cannot
   end with trailing whitespace``; with extended ``thinking`` enabled, a final assistant
   message that does not open with a thinking block (prefill and thinking do not mix);
9. thinking and effort (``thinking.py`` rules from the catalogue): a ``thinking.type`` the
   model refuses gets the catalogue's exact 400 (``"thinking.type.disabled" is not supported for
   this model...``, Sonnet 5.5's ``between_tools`` text, ``adaptive thinking is not supported on
   this model``); an ``output_config.effort`` the model does not take is a 400;
10. the context window (checked by the app once tokens are counted, see ``check_context``):
   a prompt over the window gives ``prompt is too long: N tokens > C maximum``; a prompt that
   fits but not with ``max_tokens`` gives ``input length and `max_tokens` exceed context limit:
   N + M > C, decrease input length or `max_tokens` and try again``.

Consecutive turns of the same role are merged, as the API does. The conversation is then read
as one of three shapes: ``fresh`` (no assistant text yet), ``prefill`` (a final assistant
message: the answer continues it) or ``user-turn`` (an assistant turn then a final user turn:
the answer continues the assistant turn).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import EFFORTS, LATEST_API_VERSION, ModelSpec
from .tokenizer import MESSAGE_OVERHEAD, SYSTEM_OVERHEAD, count_tokens

__all__ = ["ApiError", "ParsedRequest", "PromptBlock", "check_context", "parse_request"]

MAX_CACHE_BREAKPOINTS = 4


class ApiError(Exception):
    """An error response: HTTP status, ``error.type`` and message, plus extra headers."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


@dataclass(frozen=True)
class PromptBlock:
    """One content block of the prompt, in order (system blocks first)."""

    role: str
    #: Stable identity of the block's content (cache_control excluded).
    key: str
    #: Tokens of the block, plus the message/system overhead when it opens one.
    tokens: int
    #: The block's ``cache_control`` dict, or None.
    cache_control: dict[str, Any] | None = None
    #: Where the block is, as the API names it in errors (``messages.2.content.0``).
    place: str = ""


@dataclass
class ParsedRequest:
    """A checked request."""

    model: str
    spec: ModelSpec
    max_tokens: int
    stream: bool
    blocks: list[PromptBlock]
    system_text: str
    first_user_text: str
    #: "fresh", "prefill" or "user-turn".
    mode: str
    #: The assistant text the answer must continue ("" when fresh).
    assistant_text: str
    stop_sequences: tuple[str, ...] = ()
    #: The model thinks before answering (asked for, or its default).
    thinking: bool = False
    #: "summarized" or "omitted" (no thinking text, only the signature).
    thinking_display: str = "summarized"
    #: ``budget_tokens`` of ``thinking.type: enabled``, else None.
    thinking_budget: int | None = None
    #: The effort in force (sent, or the model's default).
    effort: str = "high"
    #: ``anthropic-version`` of the request.
    version: str = LATEST_API_VERSION
    #: Canonical JSON of system + messages, for seeding per-request decisions.
    content_key: str = ""
    #: The text of the final user turn ("" when the conversation ends with the assistant).
    last_user_text: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def input_tokens(self) -> int:
        return sum(block.tokens for block in self.blocks)


def _require(body: dict, name: str) -> Any:
    if name not in body:
        raise invalid(f"{name}: Field required")
    return body[name]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _block_text(block: dict, where: str) -> str:
    """The text a block contributes (non-text blocks count by their JSON)."""
    if not isinstance(block, dict):
        raise invalid(f"{where}: Input should be a valid dictionary or object to extract fields from")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid(f"{where}.type: Field required")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(
                f"{where}.text: Field required"
                if text is None
                else f"{where}.text: Input should be a valid string"
            )
        return text
    if kind in (
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
    ):
        rest = {k: v for k, v in block.items() if k != "cache_control"}
        return json.dumps(rest, sort_keys=True, ensure_ascii=False)
    raise invalid(
        f"{where}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
        "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking', 'search_result'"
    )


def _cache_control(block: dict, where: str) -> dict | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    if control.get("ttl", "5m") not in ("5m", "1h"):
        raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return control


def _content_blocks(content: Any, where: str) -> list[tuple[str, dict | None, str]]:
    """(text, cache_control, key) for each block of a message or system content."""
    if isinstance(content, str):
        return [(content, None, json.dumps(["s", content], ensure_ascii=False))]
    if not isinstance(content, list):
        raise invalid(f"{where}: Input should be a valid string or a list of content blocks")
    out = []
    for j, block in enumerate(content):
        place = f"{where}.{j}"
        text = _block_text(block, place)
        if block.get("type") == "text" and text == "":
            raise invalid("messages: text content blocks must be non-empty")
        control = _cache_control(block, place)
        key = json.dumps([block.get("type"), text], ensure_ascii=False)
        out.append((text, control, key))
    return out


def _check_scalars(body: dict, count_only: bool) -> tuple[int, bool, tuple[str, ...]]:
    max_tokens = 0
    if not count_only:
        max_tokens = _require(body, "max_tokens")
        if not _is_int(max_tokens):
            raise invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise invalid("max_tokens: Input should be greater than or equal to 1")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in stops):
        raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
    return max_tokens, stream, tuple(stops)


def _read_messages(messages: Any) -> list[tuple[str, list[tuple[str, dict | None, str]]]]:
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    out = []
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(
                f"messages.{i}: Input should be a valid dictionary or object to extract fields from"
            )
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"messages.{i}.content: Field required")
        blocks = _content_blocks(message["content"], f"messages.{i}.content")
        empty = not blocks or all(text == "" for text, _, _ in blocks)
        if empty and not (i == last and role == "assistant"):
            raise invalid(
                f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            )
        out.append((role, blocks))
    return out


def _merged_turns(messages: list[tuple[str, list]]) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for role, blocks in messages:
        text = "".join(text for text, _, _ in blocks)
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + text)
        else:
            turns.append((role, text))
    return turns


def _conversation_shape(turns: list[tuple[str, str]]) -> tuple[str, str]:
    """(mode, assistant text) of the merged turns."""
    if turns[-1][0] == "assistant":
        if turns[-1][1] == "":
            return "fresh", ""
        return "prefill", turns[-1][1]
    for role, text in reversed(turns):
        if role == "assistant":
            return "user-turn", text
    return "fresh", ""


def _prompt_blocks(system: Any, messages: list[tuple[str, list]]) -> tuple[list[PromptBlock], str]:
    blocks: list[PromptBlock] = []
    system_text = ""
    if system is not None and system != "" and system != []:
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    raise invalid(f"system.{j}.type: Input should be 'text'")
        system_blocks = _content_blocks(system, "system")
        for n, (text, control, key) in enumerate(system_blocks):
            extra = SYSTEM_OVERHEAD if n == 0 else 0
            blocks.append(PromptBlock("system", key, count_tokens(text) + extra, control, f"system.{n}"))
        system_text = "".join(text for text, _, _ in system_blocks)
    for i, (role, content) in enumerate(messages):
        for n, (text, control, key) in enumerate(content or [("", None, '["s", ""]')]):
            extra = MESSAGE_OVERHEAD if n == 0 else 0
            blocks.append(
                PromptBlock(role, key, count_tokens(text) + extra, control, f"messages.{i}.content.{n}")
            )
    return blocks, system_text


def _check_sampling(body: dict, spec: ModelSpec | None, version: str) -> None:
    """``temperature``/``top_p``/``top_k``: removed under 2026-10-21, deprecated on newer models."""
    present = [name for name in _SAMPLING if name in body]
    if not present:
        return
    if version >= LATEST_API_VERSION:
        raise invalid(f"{present[0]}: Extra inputs are not permitted")
    if spec is not None and not spec.sampling_2023:
        raise invalid(f"`{present[0]}` is deprecated for this model.")
    for name in present:
        value = body[name]
        if name == "top_k":
            if not _is_int(value) or value < 0:
                raise invalid("top_k: Input should be greater than or equal to 0")
        elif not _is_number(value):
            raise invalid(f"{name}: Input should be a valid number")
        elif not 0 <= value <= 1:
            raise invalid(f"{name}: range: 0..1")


_SAMPLING = ("temperature", "top_p", "top_k")


def parse_request(
    body: Any,
    resolve: Callable[[str], ModelSpec | None],
    *,
    count_only: bool = False,
    version: str = LATEST_API_VERSION,
    today: Any = None,
) -> ParsedRequest:
    """Check ``body`` as the API would under ``anthropic-version: version``; raises ApiError."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary or object to extract fields from")
    model = _require(body, "model")
    if not isinstance(model, str):
        raise invalid("model: Input should be a valid string")
    messages = _read_messages(_require(body, "messages"))
    max_tokens, stream, stops = _check_scalars(body, count_only)
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise invalid("system: Input should be a valid string or a list of text blocks")
    blocks, system_text = _prompt_blocks(system, messages)
    breakpoints = sum(1 for block in blocks if block.cache_control is not None)
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}."
        )
    _check_ttl_order(blocks)
    spec = resolve(model)
    if spec is None or spec.retired_on(today):
        raise ApiError(404, "not_found_error", f"model: {model}")
    if not count_only:
        _check_sampling(body, spec, version)
    if not count_only and max_tokens > spec.max_output:
        raise invalid(
            f"max_tokens: {max_tokens} > {spec.max_output}, which is the maximum allowed number of output tokens for {spec.id}"
        )
    turns = _merged_turns(messages)
    mode, assistant_text = _conversation_shape(turns)
    if not count_only and turns[-1][0] == "assistant":
        if not spec.prefill:
            raise invalid(
                "This model does not support assistant message prefill. The conversation must end with a user message."
            )
        if assistant_text and assistant_text[-1].isspace():
            raise invalid("messages: final assistant content cannot end with trailing whitespace")
    thinking = ThinkingChoice()
    if not count_only:
        thinking = _check_thinking(body, spec, messages, max_tokens)
    first_user = next((text for role, text in turns if role == "user"), "")
    content_key = json.dumps([system_text, turns], ensure_ascii=False)
    return ParsedRequest(
        model=model,
        spec=spec,
        max_tokens=max_tokens,
        stream=stream,
        blocks=blocks,
        system_text=system_text,
        first_user_text=first_user,
        mode=mode,
        assistant_text=assistant_text,
        stop_sequences=stops,
        content_key=content_key,
        last_user_text=turns[-1][1] if turns[-1][0] == "user" else "",
        raw=body,
        thinking=thinking.on,
        thinking_display=thinking.display,
        thinking_budget=thinking.budget,
        effort=thinking.effort,
        version=version,
    )


def _check_ttl_order(blocks: list[PromptBlock]) -> None:
    """1-hour breakpoints must all come before 5-minute ones (system, then messages)."""
    seen_5m = False
    for block in blocks:
        if block.cache_control is None:
            continue
        if block.cache_control.get("ttl", "5m") == "5m":
            seen_5m = True
        elif seen_5m:
            raise invalid(
                f"{block.place}.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' "
                "cache_control block. Note that blocks are processed in the following order: tools, system, messages."
            )


@dataclass(frozen=True)
class ThinkingChoice:
    """What the request's ``thinking`` and ``output_config`` amount to."""

    on: bool = False
    display: str = "summarized"
    budget: int | None = None
    effort: str = "high"


_THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")


def _effort(body: dict, spec: ModelSpec) -> str:
    config = body.get("output_config")
    if config is None:
        return spec.default_effort or "high"
    if not isinstance(config, dict):
        raise invalid("output_config: Input should be a valid dictionary or object to extract fields from")
    effort = config.get("effort")
    if effort is None:
        return spec.default_effort or "high"
    if effort not in EFFORTS:
        raise invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    if not spec.efforts:  # wording unconfirmed
        raise invalid("output_config.effort: effort is not supported on this model")
    if effort not in spec.efforts:  # wording unconfirmed
        accepted = ", ".join(spec.efforts)
        raise invalid(
            f'output_config.effort: "{effort}" is not supported on this model (use one of: {accepted})'
        )
    return str(effort)


def _check_thinking(
    body: dict, spec: ModelSpec, messages: list[tuple[str, list]], max_tokens: int
) -> ThinkingChoice:
    """The model's thinking rules (catalogue), the budget, and no text prefill while thinking."""
    effort = _effort(body, spec)
    thinking = body.get("thinking")
    if thinking is None:
        return ThinkingChoice(on=spec.thinks_by_default(), effort=effort)
    if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING_TYPES:
        raise invalid(
            "thinking: Input tag does not match any of the expected tags: 'adaptive', 'enabled', 'disabled', 'between_tools'"
        )
    kind = thinking["type"]
    refusal = spec.thinking_refusal(kind, effort)
    if refusal is not None:
        raise invalid(refusal)
    display = thinking.get("display") or "summarized"
    if display not in ("summarized", "omitted"):
        raise invalid("thinking.adaptive.display: Input should be 'summarized' or 'omitted'")
    budget: int | None = None
    if kind == "enabled":
        value = thinking.get("budget_tokens")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1024:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        budget = value
        if max_tokens <= budget:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    on = kind in ("adaptive", "enabled")
    if on:
        _no_text_prefill(messages)
    return ThinkingChoice(on=on, display=display, budget=budget, effort=effort)


def _no_text_prefill(messages: list[tuple[str, list]]) -> None:
    role, blocks = messages[-1]
    if role == "assistant" and blocks:
        first_key = blocks[0][2]
        if not first_key.startswith('["thinking"') and not first_key.startswith('["redacted_thinking"'):
            raise invalid(
                f"messages.{len(messages) - 1}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`. "
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
                "our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            )


def check_context(request: ParsedRequest) -> None:
    """Raise the API's 400 when the prompt (plus max_tokens) does not fit the context window."""
    prompt = request.input_tokens
    window = request.spec.context_window
    if prompt > window:
        raise invalid(f"prompt is too long: {prompt} tokens > {window} maximum")
    if prompt + request.max_tokens > window:
        raise invalid(
            f"input length and `max_tokens` exceed context limit: {prompt} + {request.max_tokens} > {window}, "
            "decrease input length or `max_tokens` and try again"
        )
