"""What each OpenAI-compatible server does with a final assistant message, and the chat request.

Pure functions only: ``SERVERS`` says how every known server kind continues the answer so far
(``shared/reference/openai-compatible.md``), ``chat_params`` turns the engine's Messages-API
shaped round into ``chat.completions.create`` keyword arguments for one kind, and
``EchoStripper`` removes the prefill that llama-server sends back ahead of the new text, only
when the response starts with the whole prefill verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import RoundRequest

__all__ = ["ServerMode", "SERVERS", "SERVER_KINDS", "server_mode", "chat_params", "EchoStripper", "text_of"]


@dataclass(frozen=True)
class ServerMode:
    """How one kind of server continues a final assistant message."""

    kind: str
    #: "continue_final_message" (extra_body flags), "trailing" (a final assistant message is
    #: continued as is), "prefix" (the message carries ``prefix: true``), "none" (no prefill).
    continuation: str
    #: The response content may repeat the whole prefill before the new text.
    echoes_prefill: bool = False
    #: The prefill may end in whitespace (the template keeps it).
    takes_trailing_whitespace: bool = False
    #: Sends ``max_completion_tokens`` instead of ``max_tokens`` (OpenAI's own API).
    max_completion_tokens: bool = False

    @property
    def prefill(self) -> bool:
        return self.continuation != "none"


SERVERS: dict[str, ServerMode] = {
    mode.kind: mode
    for mode in (
        ServerMode("vllm", "continue_final_message"),
        ServerMode("sglang", "continue_final_message"),
        ServerMode("tgi", "continue_final_message"),
        ServerMode("llama-server", "trailing", echoes_prefill=True, takes_trailing_whitespace=True),
        ServerMode("ollama", "trailing"),
        ServerMode("lmstudio", "trailing", echoes_prefill=True),
        ServerMode("deepseek", "prefix"),
        ServerMode("mistral", "prefix"),
        ServerMode("openai", "none", max_completion_tokens=True),
        ServerMode("generic", "none"),
    )
}

#: The values ``server=`` / ``--server`` accept.
SERVER_KINDS: tuple[str, ...] = tuple(SERVERS)


def server_mode(kind: str) -> ServerMode:
    """The mode of ``kind``; raises KeyError for an unknown kind (the caller words the error)."""
    return SERVERS[kind]


def text_of(content: Any) -> str:
    """A message's text: a string as is, text blocks joined (other blocks are not text)."""
    if isinstance(content, str):
        return content
    return "".join(
        str(block.get("text", ""))
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    )


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    return text_of(system)


def prefill_of(request: RoundRequest) -> str | None:
    """The final assistant message's text (the prefill), or None when the last turn is a user's."""
    if request.messages and request.messages[-1]["role"] == "assistant":
        return text_of(request.messages[-1]["content"])
    return None


def chat_messages(request: RoundRequest, mode: ServerMode) -> list[dict[str, Any]]:
    """Chat messages: the system prompt first, turns as strings, the prefill marked per mode."""
    messages: list[dict[str, Any]] = []
    system = _system_text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    messages += [{"role": m["role"], "content": text_of(m["content"])} for m in request.messages]
    if prefill_of(request) is not None and mode.continuation == "prefix":
        messages[-1]["prefix"] = True
    return messages


def chat_params(request: RoundRequest, mode: ServerMode, *, stream: bool = True) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for one round on ``mode``'s server."""
    params: dict[str, Any] = {"model": request.model, "messages": chat_messages(request, mode)}
    params["max_completion_tokens" if mode.max_completion_tokens else "max_tokens"] = request.max_tokens
    if stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    if request.stop_sequences:
        params["stop"] = list(request.stop_sequences)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.seed is not None:
        params["seed"] = request.seed
    extra: dict[str, Any] = {}
    if prefill_of(request) is not None and mode.continuation == "continue_final_message":
        extra.update(continue_final_message=True, add_generation_prompt=False)
    if mode.kind == "llama-server" and not request.cache:
        extra["cache_prompt"] = False
    if extra:
        params["extra_body"] = extra
    return params


class EchoStripper:
    """Drops a response's leading copy of the prefill, exactly, as the text streams.

    Text is held only while it is still a prefix of the prefill; the moment it differs, all of
    it is passed on unchanged (no guessing). A response that starts with the whole prefill has
    that copy removed and the rest passed on.
    """

    def __init__(self, prefill: str | None) -> None:
        self.prefill = prefill or ""
        self.pending = ""
        self.done = not self.prefill
        #: True once a whole copy of the prefill was removed.
        self.stripped = False

    def feed(self, text: str) -> str:
        if self.done:
            return text
        self.pending += text
        if len(self.pending) < len(self.prefill):
            if self.prefill.startswith(self.pending):
                return ""
            return self._release(self.pending)
        if self.pending.startswith(self.prefill):
            self.stripped = True
            return self._release(self.pending[len(self.prefill) :])
        return self._release(self.pending)

    def finish(self) -> str:
        """The end of the response: text still held was a partial copy only, so it is kept."""
        return self._release(self.pending) if not self.done else ""

    def _release(self, text: str) -> str:
        self.done = True
        self.pending = ""
        return text
