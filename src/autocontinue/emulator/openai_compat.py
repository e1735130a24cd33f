"""The emulator's OpenAI-compatible endpoint: ``/v1/chat/completions`` with server personalities.

Routes (``PERSONA`` one of ``PERSONAS``; without a prefix the persona is the emulator's
``openai_persona``, ``openai`` unless told, and its own root routes answer at the root too)::

    POST [/PERSONA]/v1/chat/completions     streaming (``data: {chunk}`` ... ``data: [DONE]``) and not
    GET  [/PERSONA]/v1/models               vllm/sglang entries carry ``owned_by`` and ``max_model_len``
    GET  /llama-server/props                ``default_generation_settings.n_ctx``
    GET  /ollama/api/version                ``{"version": ...}``
    GET  /lmstudio/api/v0/models            LM Studio's REST API listing (``max_context_length``)
    GET  /emulator/openai/requests          every request above so far, as "METHOD /path max_tokens"

Each persona does only what its server documents with a final assistant message
(``shared/reference/openai-compatible.md``): ``vllm``/``sglang``/``tgi`` continue it with
``continue_final_message: true`` and ``add_generation_prompt: false`` (both true: 400);
``llama-server``, ``ollama`` and ``lmstudio`` continue a trailing assistant message,
llama-server repeating the whole prefill ahead of the new text; ``deepseek``/``mistral`` continue a message marked
``prefix: true``; ``openai`` never does, and refuses the other servers' request arguments
(``continue_final_message``, ``add_generation_prompt``, ``cache_prompt``) with a 400. Every persona but ``llama-server`` and ``tgi`` (which
answer with their one model whatever the request names) refuses a model it does not serve with
vLLM's 404 (``The model `X` does not exist.``); the served models are the emulator's
``openai_models`` (``emulated`` unless told). An assistant message that is not continued is a past
turn: the answer starts anew. The text comes from the Messages API emulator's model (the same
sources and continuation planning), so a continued answer is the same fixed answer.

Prompt tokens follow a chat template: every closed message costs its tokens plus
``TURN_OPEN + TURN_CLOSE``; a continued final message its tokens plus ``TURN_OPEN``; a new
answer ``TURN_OPEN`` (the generation prompt). ``prompt_tokens_details.cached_tokens`` is the
prompt prefix shared with the previous request to the same persona (one KV slot, llama.cpp
style) for llama-server, 0 elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..prefix import common_prefix_length
from .continuation import Plan, plan_output
from .quirks import QuirkChoice
from .request import ApiError
from .sources import answer_for
from .tokenizer import count_tokens

__all__ = ["PERSONAS", "routes", "ChatRequest", "parse_chat"]

#: persona -> how it continues a final assistant message.
PERSONAS = {
    "openai": "none",
    "vllm": "continue_final_message",
    "sglang": "continue_final_message",
    "tgi": "continue_final_message",
    "llama-server": "trailing",
    "ollama": "trailing",
    "lmstudio": "trailing",
    "deepseek": "prefix",
    "mistral": "prefix",
}
#: Request arguments of other servers that OpenAI's own API refuses ("Unrecognized request argument").
_NOT_OPENAI = ("continue_final_message", "add_generation_prompt", "cache_prompt")
#: Personas that answer whatever model a request names (their one loaded model).
ANY_MODEL = ("llama-server", "tgi")
TURN_OPEN = 3
TURN_CLOSE = 2
#: Context window of the emulated models (``/props``, ``max_model_len``, the 400 error).
CONTEXT = 32_768
_FINISH = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop"}


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat request, read as the persona's server reads it."""

    model: str
    max_tokens: int
    stream: bool
    include_usage: bool
    system_text: str
    first_user_text: str
    #: "fresh", "prefill" or "user-turn" (as the Messages API emulator names them).
    mode: str
    assistant_text: str
    stop: tuple[str, ...]
    prompt_tokens: int
    #: The prompt as one string, for the KV-slot emulation.
    prompt_key: str


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def _content(message: Any, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    raise _invalid(f"messages[{i}].content: must be a string or a list of content parts")


def _continues(persona: str, body: dict[str, Any], last: dict[str, Any]) -> bool:
    """Whether this persona continues the final assistant message ``last``."""
    how = PERSONAS[persona]
    if how == "continue_final_message":
        cfm = bool(body.get("continue_final_message"))
        if cfm and body.get("add_generation_prompt", True):
            raise _invalid("continue_final_message and add_generation_prompt cannot both be true.")
        return cfm
    if how == "prefix":
        return last.get("prefix") is True
    return how == "trailing"


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 4:
        raise _invalid("stop: must be a string or a list of at most 4 strings")
    return tuple(s for s in stops if s)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid("max_tokens: must be a positive integer")
    return value


def _turns(messages: list[Any]) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
    system, turns = [], []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise _invalid(f"messages[{i}].role: must be system, user or assistant")
        text = _content(message, i)
        if message["role"] == "system":
            system.append(text)
        else:
            turns.append((message["role"], text, message))
    if not turns:
        raise _invalid("messages: at least one user message is required")
    return "\n".join(system), turns


def _shape(turns: list[tuple[str, str, dict[str, Any]]], continued: bool) -> tuple[str, str]:
    """(mode, assistant text to continue): the Messages API emulator's conversation shapes."""
    if turns[-1][0] == "assistant" and continued:
        return "prefill", turns[-1][1]
    if turns[-1][0] == "user" and len(turns) >= 3 and turns[-2][0] == "assistant":
        return "user-turn", turns[-2][1]
    return "fresh", ""


def parse_chat(body: Any, persona: str) -> ChatRequest:
    """Check a chat request and read it as ``persona`` would; raises ApiError."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise _invalid("model: field required")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: field required")
    for name in _NOT_OPENAI if persona == "openai" else ():
        if name in body:
            raise _invalid(f"Unrecognized request argument supplied: {name}")
    system, turns = _turns(messages)
    continued = turns[-1][0] == "assistant" and _continues(persona, body, turns[-1][2])
    mode, assistant_text = _shape(turns, continued)
    closed = turns[:-1] if continued else turns
    tokens = sum(count_tokens(text) + TURN_OPEN + TURN_CLOSE for _, text, _ in closed)
    tokens += count_tokens(system) + TURN_OPEN + TURN_CLOSE if system else 0
    tokens += TURN_OPEN + (count_tokens(turns[-1][1]) if continued else 0)
    options = body.get("stream_options")
    first_user = next((text for role, text, _ in turns if role == "user"), "")
    return ChatRequest(
        model=model,
        max_tokens=_max_tokens(body),
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        system_text=system,
        first_user_text=first_user,
        mode=mode,
        assistant_text=assistant_text,
        stop=_stops(body),
        prompt_tokens=tokens,
        prompt_key=json.dumps([system, [(r, t) for r, t, _ in turns]], ensure_ascii=False)
        + ("" if continued else "<gen>"),
    )


def _error(error: ApiError) -> Response:
    code = "context_length_exceeded" if "context length" in error.message else None
    body = {"error": {"message": error.message, "type": error.error_type, "param": None, "code": code}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class OpenAICompat:
    """The endpoint's state: the shared emulator, and one KV slot per persona."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.slots: dict[str, str] = {}
        #: Every request to these routes, "METHOD /path" (chat calls add their max_tokens).
        self.requests: list[str] = []

    def _seen(self, request: Request, detail: str = "") -> None:
        self.requests.append(f"{request.method} {request.url.path}{' ' + detail if detail else ''}")

    async def request_log(self, request: Request) -> Response:
        return JSONResponse({"requests": self.requests})

    def plan(self, chat: ChatRequest) -> Plan:
        config = self.emulator.config
        answer = answer_for(config.source, config.seed, config.length, chat.system_text, chat.first_user_text)
        return plan_output(answer, chat.mode, chat.assistant_text, QuirkChoice(), chat.max_tokens, chat.stop)

    def cached_tokens(self, persona: str, chat: ChatRequest) -> int:
        """llama-server's KV reuse: tokens of the prompt prefix shared with the slot's last prompt."""
        previous, self.slots[persona] = self.slots.get(persona, ""), chat.prompt_key
        if persona != "llama-server":
            return 0
        shared = common_prefix_length(previous, chat.prompt_key)
        return min(count_tokens(chat.prompt_key[:shared]), chat.prompt_tokens - 1)

    def persona(self, request: Request) -> str:
        """The persona a request's path names, or the one playing at the root."""
        return request.path_params.get("persona", self.emulator.config.openai_persona)

    def _at_root(self, request: Request, persona: str) -> bool:
        """Whether a root route (``/props``, ...) answers: yes under its persona's prefix, and at
        the root when that persona plays there."""
        return request.url.path.startswith(f"/{persona}/") or self.emulator.config.openai_persona == persona

    async def completions(self, request: Request) -> Response:
        persona = self.persona(request)
        if persona not in PERSONAS:
            return _error(ApiError(404, "not_found_error", f"unknown persona {persona!r}"))
        try:
            self.emulator.authenticate(request)
            body = await self.emulator.read_json(request)
            self._seen(
                request,
                str(body.get("max_completion_tokens", body.get("max_tokens")))
                if isinstance(body, dict)
                else "",
            )
            chat = parse_chat(body, persona)
            served = self.emulator.config.openai_models
            if persona not in ANY_MODEL and chat.model not in served:
                raise ApiError(404, "NotFoundError", f"The model `{chat.model}` does not exist.")
            if chat.prompt_tokens + chat.max_tokens > CONTEXT:
                raise _invalid(
                    f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
                    f"{chat.prompt_tokens + chat.max_tokens} tokens ({chat.prompt_tokens} in the messages, "
                    f"{chat.max_tokens} in the completion). Please reduce the length of the messages or completion."
                )
            plan = await asyncio.to_thread(self.plan, chat)
        except ApiError as error:
            return _error(error)
        cached = max(0, self.cached_tokens(persona, chat))
        echo = chat.assistant_text if persona == "llama-server" and chat.mode == "prefill" else ""
        reply = _Reply(chat, plan, echo, cached)
        if chat.stream:
            return StreamingResponse(reply.chunks(), media_type="text/event-stream")
        return JSONResponse(reply.whole())

    async def models(self, request: Request) -> Response:
        self._seen(request)
        persona = self.persona(request)
        entries: list[dict[str, Any]] = []
        for model in self.emulator.config.openai_models:
            entry: dict[str, Any] = {"id": model, "object": "model", "created": 0, "owned_by": persona}
            if persona in ("vllm", "sglang"):
                entry["max_model_len"] = CONTEXT
            entries.append(entry)
        return JSONResponse({"object": "list", "data": entries})

    async def props(self, request: Request) -> Response:
        self._seen(request)
        if not self._at_root(request, "llama-server"):
            return _error(ApiError(404, "not_found_error", "File Not Found"))
        return JSONResponse({"default_generation_settings": {"n_ctx": CONTEXT}, "total_slots": 1})

    async def lmstudio_models(self, request: Request) -> Response:
        """LM Studio's ``GET /api/v0/models`` entry shape (its REST API documentation)."""
        self._seen(request)
        if not self._at_root(request, "lmstudio"):
            return _error(ApiError(404, "not_found_error", "Not Found"))
        entries = [
            {
                "id": model,
                "object": "model",
                "type": "llm",
                "publisher": "emulator",
                "arch": "emulated",
                "compatibility_type": "gguf",
                "quantization": "Q4_K_M",
                "state": "loaded",
                "max_context_length": CONTEXT,
            }
            for model in self.emulator.config.openai_models
        ]
        return JSONResponse({"object": "list", "data": entries})

    async def version(self, request: Request) -> Response:
        self._seen(request)
        if not self._at_root(request, "ollama"):
            return _error(ApiError(404, "not_found_error", "404 page not found"))
        return JSONResponse({"version": "0.0.0-emulated"})


class _Reply:
    """One answer in the chat-completions wire shapes."""

    def __init__(self, chat: ChatRequest, plan: Plan, echo: str, cached: int) -> None:
        self.chat, self.plan, self.echo, self.cached = chat, plan, echo, cached
        self.id = f"chatcmpl-emu{int(time.time() * 1000)}"
        self.created = int(time.time())

    def usage(self) -> dict[str, Any]:
        prompt = self.chat.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.plan.output_tokens,
            "total_tokens": prompt + self.plan.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        }

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.chat.model,
            "choices": choices,
        }

    def whole(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.echo + self.plan.text}
        choice = {"index": 0, "message": message, "finish_reason": _FINISH[self.plan.stop_reason]}
        return {**self._envelope("chat.completion", [choice]), "usage": self.usage()}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        data = self._envelope(
            "chat.completion.chunk", [{"index": 0, "delta": delta, "finish_reason": finish}]
        )
        return "data: " + json.dumps(data, ensure_ascii=False) + "\n\n"

    async def chunks(self) -> AsyncIterator[str]:
        yield self._chunk({"role": "assistant", "content": ""})
        if self.echo:
            yield self._chunk({"content": self.echo})
        for text, _ in self.plan.chunks(4):
            yield self._chunk({"content": text})
            await asyncio.sleep(0)
        yield self._chunk({}, _FINISH[self.plan.stop_reason])
        if self.chat.include_usage:
            tail = {**self._envelope("chat.completion.chunk", []), "usage": self.usage()}
            yield "data: " + json.dumps(tail, ensure_ascii=False) + "\n\n"
        yield "data: [DONE]\n\n"


def routes(emulator: Any) -> list[Route]:
    """The endpoint's routes, to add to the emulator app."""
    compat = OpenAICompat(emulator)
    return [
        Route("/v1/chat/completions", compat.completions, methods=["POST"]),
        Route("/v1/models", compat.models, methods=["GET"]),
        Route("/{persona}/v1/chat/completions", compat.completions, methods=["POST"]),
        Route("/{persona}/v1/models", compat.models, methods=["GET"]),
        Route("/llama-server/props", compat.props, methods=["GET"]),
        Route("/ollama/api/version", compat.version, methods=["GET"]),
        Route("/lmstudio/api/v0/models", compat.lmstudio_models, methods=["GET"]),
        Route("/props", compat.props, methods=["GET"]),
        Route("/api/version", compat.version, methods=["GET"]),
        Route("/api/v0/models", compat.lmstudio_models, methods=["GET"]),
        Route("/emulator/openai/requests", compat.request_log, methods=["GET"]),
    ]
