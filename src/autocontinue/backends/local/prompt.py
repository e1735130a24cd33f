"""The prompt of a round: the chat template rendered, planned as token chunks, checked to fit.

``plan_prompt_tokens`` is what makes KV-cache reuse work: the previous round's chunks are kept
while their bytes continue the new prompt, so the reused tokens are exactly those of the last
round and only the new suffix is tokenised. All of it is pure but for the ``tokenize`` it is
given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...errors import ContextWindowError, InvalidRequestError, PrefillNotSupportedError
from ..base import RoundRequest
from ..chat_template import ChatTemplate, OpenTurnUnsupported, normalise_messages

__all__ = ["TokenChunk", "plan_prompt_tokens", "flat_tokens", "render_prompt", "check_window", "open_answer"]


@dataclass(frozen=True)
class TokenChunk:
    """A run of prompt or generated text together with the tokens that stand for it."""

    data: bytes
    tokens: tuple[int, ...]


def plan_prompt_tokens(
    history: Sequence[TokenChunk],
    prompt: bytes,
    tokenize: Callable[[bytes, bool], list[int]],
) -> list[TokenChunk]:
    """The prompt as token chunks, reusing the previous round's chunks while they match.

    Walks ``history`` as long as each chunk's bytes continue ``prompt``; only the remainder is
    tokenised (``tokenize(data, at_start)``). Token boundaries of the reused part are therefore
    exactly those of the last round, which is what lets llama.cpp reuse its KV cache.
    """
    kept: list[TokenChunk] = []
    pos = 0
    for chunk in history:
        if not chunk.data or not prompt.startswith(chunk.data, pos):
            break
        kept.append(chunk)
        pos += len(chunk.data)
    rest = prompt[pos:]
    if rest or not kept:
        kept.append(TokenChunk(rest, tuple(tokenize(rest, pos == 0))))
    return kept


def flat_tokens(chunks: Sequence[TokenChunk]) -> list[int]:
    return [token for chunk in chunks for token in chunk.tokens]


def render_prompt(template: ChatTemplate, request: RoundRequest) -> tuple[str, bool]:
    """The prompt text for ``request`` and whether it continues an open assistant turn."""
    messages = normalise_messages(request.system, request.messages)
    try:
        return template.render_prompt(messages)
    except OpenTurnUnsupported:
        raise PrefillNotSupportedError(
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message.",
            status_code=400,
            error_type="invalid_request_error",
            hint="its chat template cannot leave the assistant turn open; use the user-turn strategy",
        ) from None
    except Exception as exc:  # the template raised (raise_exception or a Jinja error)
        raise InvalidRequestError(
            f"the model's chat template refused the messages: {' '.join(str(exc).split())}",
            status_code=400,
            error_type="invalid_request_error",
            hint="check the roles and order of the messages",
        ) from None


def open_answer(request: RoundRequest) -> str:
    """The text of the open assistant turn (the answer so far) of a prefill request."""
    return normalise_messages(request.system, request.messages)[-1]["content"]


def check_window(prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
    """Refuse a round whose prompt, or prompt plus ``max_tokens``, does not fit the context."""
    if prompt_tokens >= n_ctx:
        raise ContextWindowError(
            f"prompt is too long: {prompt_tokens} tokens > {n_ctx} maximum",
            prompt_tokens=prompt_tokens,
            context_window=n_ctx,
            status_code=400,
            error_type="invalid_request_error",
            hint="shorten the prompt, or load the model with a larger n_ctx",
        )
    if prompt_tokens + max_tokens > n_ctx:
        raise ContextWindowError(
            f"input length and `max_tokens` exceed context limit: "
            f"{prompt_tokens} + {max_tokens} > {n_ctx}, "
            "decrease input length or `max_tokens` and try again",
            prompt_tokens=prompt_tokens,
            context_window=n_ctx,
            status_code=400,
            error_type="invalid_request_error",
            hint="lower max_tokens, or load the model with a larger n_ctx",
        )
