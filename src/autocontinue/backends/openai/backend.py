"""The OpenAI-compatible backend: one streaming ``chat.completions.create`` call per round.

The server kind (``servers.py``) decides how a final assistant message is sent; it is given
(``server=``) or detected once per endpoint (``probe.py``). A server that should continue a
trailing assistant message is checked once per model, before its first prefill round, with
three one-token calls; one that closes the turn instead is run by user turn (a forced prefill
raises PrefillNotSupportedError). Both answers are remembered on disk per endpoint
(``known.py``), so a later process probes nothing. When a call is refused in a way that says
the memory may be another server's (a 404 for the model, a 400 for the request, with the kind
or model taken from memory), the endpoint is forgotten and asked again, once per backend; a
changed kind repeats the call, a model the server no longer serves ends the run saying which
it serves. llama-server's echo of the prefill is stripped exactly (``EchoStripper``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from ...catalogue import ModelSpec, find_model
from ...errors import (
    BackendUnavailableError,
    ConfigurationError,
    ContextWindowError,
    InvalidRequestError,
    MaxTokensExceededError,
    MissingCredentialsError,
    PrefillNotSupportedError,
    StreamInterruptedError,
    TransientBackendError,
    UnknownModelError,
)
from ...journal.records import redact_url
from ...usage import Usage
from ..base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest, transport_errors
from .errors import map_error
from .known import ServerMemory
from .prices import load_prices
from .probe import ServerInfo, closes_turn, detect_server, root_url
from .servers import SERVER_KINDS, EchoStripper, ServerMode, chat_params, prefill_of, server_mode

__all__ = ["OpenAIBackend", "OPENAI_DEFAULT_URL", "FINISH_REASONS"]

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
#: A context window assumed when the server does not say (the first error corrects it).
ASSUMED_CONTEXT = 131_072
#: The default ``max_tokens`` per call when the caller sets none.
DEFAULT_MAX_TOKENS = 4096
#: Defaults for hosted APIs whose model list is long.
HOSTED_DEFAULT_MODELS = {"openai": "gpt-4.1", "deepseek": "deepseek-chat", "mistral": "mistral-large-latest"}

#: OpenAI ``finish_reason`` -> the engine's (Messages API) stop reasons.
FINISH_REASONS = {
    "length": "max_tokens",
    "stop": "end_turn",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}

#: The window in a context error as ``map_error`` words it: ``(P + M > C)``.
_STATED_WINDOW = re.compile(r"\(\d+ \+ \d+ > (\d+)\)$")


def _import_sdk() -> Any:
    try:
        import openai
    except ImportError:
        raise BackendUnavailableError(
            "the openai SDK is not installed", hint="pip install 'autocontinue[openai]'"
        ) from None
    return openai


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    prompt = getattr(raw, "prompt_tokens", 0) or 0
    details = getattr(raw, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    out_details = getattr(raw, "completion_tokens_details", None)
    reasoning = (getattr(out_details, "reasoning_tokens", 0) or 0) if out_details is not None else 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=getattr(raw, "completion_tokens", 0) or 0,
        thinking_tokens=reasoning,
        cache_read_input_tokens=cached,
        evaluated_prompt_tokens=max(0, prompt - cached),
        reused_prompt_tokens=cached,
    )


def stop_reason(finish_reason: str | None, matched: Any, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """The engine's stop reason (and matched stop sequence) for an OpenAI ``finish_reason``.

    ``stop`` is a stop sequence only when the server names which one (vLLM's ``stop_reason``).
    """
    if finish_reason == "stop" and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return FINISH_REASONS.get(finish_reason or "", "end_turn"), None


class _Accumulator:
    """Folds the chunks of one stream into deltas and one RoundEnd."""

    def __init__(self, request: RoundRequest, mode: ServerMode) -> None:
        self.request = request
        self.echo = EchoStripper(prefill_of(request) if mode.echoes_prefill else None)
        self.sent: list[str] = []
        self.usage = Usage()
        self.finish: str | None = None
        self.matched: Any = None
        self.request_id: str | None = None

    def fold(self, chunk: Any) -> list[BackendEvent]:
        if getattr(chunk, "usage", None) is not None:
            self.usage = _usage(chunk.usage)
        out: list[BackendEvent] = []
        for choice in getattr(chunk, "choices", None) or []:
            content = getattr(choice.delta, "content", None) if choice.delta is not None else None
            if content:
                out += self._text(self.echo.feed(content))
            if choice.finish_reason:
                self.finish = choice.finish_reason
                self.matched = (choice.model_extra or {}).get("stop_reason")
        return out

    def _text(self, text: str) -> list[BackendEvent]:
        if not text:
            return []
        self.sent.append(text)
        return [BackendDelta(text)]

    def end(self) -> list[BackendEvent]:
        """The stream is over: the held echo candidate, then the RoundEnd (or raise)."""
        out = self._text(self.echo.finish())
        if self.finish is None:
            text = "".join(self.sent)
            if text:
                raise StreamInterruptedError("the stream ended without a finish reason")
            raise TransientBackendError("the stream ended without a finish reason")
        reason, matched = stop_reason(self.finish, self.matched, self.request.stop_sequences)
        return [
            *out,
            RoundEnd(stop_reason=reason, usage=self.usage, stop_sequence=matched, request_id=self.request_id),
        ]

    @property
    def text(self) -> str:
        return "".join(self.sent)


def _request_id(stream: Any) -> str | None:
    headers = getattr(getattr(stream, "response", None), "headers", None)
    return (headers.get("x-request-id") or headers.get("request-id")) if headers else None


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat endpoint, through the official ``openai`` SDK."""

    name = "openai"
    default_max_tokens_per_call = DEFAULT_MAX_TOKENS
    _owns_client = False

    def __init__(self, client: Any = None, *, base_url: str | None = None, server: str | None = None) -> None:
        openai = _import_sdk()
        if server is not None and server not in SERVER_KINDS:
            raise ConfigurationError(
                f"unknown server kind {server!r}", hint="use one of: " + ", ".join(SERVER_KINDS)
            )
        if client is not None and base_url is not None:
            raise ConfigurationError(
                "give client= or base_url=, not both", hint="set the base URL on the client"
            )
        if client is None:
            client = self._make_client(openai, base_url)
            self._owns_client = True
        self.client = client
        self.server = server
        self.is_async = isinstance(client, openai.AsyncOpenAI)
        self.base_url = str(client.base_url).rstrip("/")
        #: The base URL as messages show it: no user:password, query or fragment (tokens hide there).
        self.shown_url = redact_url(self.base_url)
        self._probe_client: Any = None
        self._default_model: str | None = None
        self._info: ServerInfo | None = None
        #: Whether ``_info`` came from the memory file (not asked of the server by this process).
        self._info_remembered = False
        #: (model, kind) -> whether a trailing assistant message is continued.
        self._continues: dict[tuple[str, str], bool] = {}
        self.memory = ServerMemory()

    @staticmethod
    def _make_client(openai: Any, base_url: str | None) -> Any:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        key = os.environ.get("OPENAI_API_KEY")
        if not base_url and not key:
            raise MissingCredentialsError(
                "no OpenAI-compatible endpoint",
                hint="pass --base-url URL (e.g. http://127.0.0.1:8080/v1) or export OPENAI_API_KEY",
            )
        # Local servers take any key; the SDK insists on one.
        return openai.OpenAI(base_url=base_url or OPENAI_DEFAULT_URL, api_key=key or "not-needed")

    # -- what the server is -----------------------------------------------------------------

    def endpoint_key(self) -> str:
        """The endpoint's name in the memories: its URL without credentials, query or fragment."""
        path = urlsplit(self.base_url).path.rstrip("/")
        return f"openai:{root_url(self.base_url)}{'/v1' if path.endswith('/v1') else ''}"

    def _prober(self) -> Any:
        """A sync client without retries, for the probes (also when the run's client is async)."""
        if self._probe_client is None:
            openai = _import_sdk()
            self._probe_client = openai.OpenAI(
                base_url=self.base_url, api_key=self.client.api_key, max_retries=0, timeout=120.0
            )
        return self._probe_client

    @property
    def info(self) -> ServerInfo:
        """What the server said about itself: remembered, else probed once and remembered."""
        if self._info is None:
            key = self.endpoint_key()
            self._info = self.memory.info(key)
            self._info_remembered = self._info is not None
            if self._info is None:
                self._info = detect_server(self._prober(), self.base_url)
                self.memory.remember_info(key, self._info)
        return self._info

    def _recheck(self, mapped: Exception, request: RoundRequest) -> bool:
        """After a refused call: whether to repeat it, the endpoint forgotten and asked again.

        Only when what the call relied on came from memory, once per backend (the flag is
        cleared here, so a second refusal is final): a 404 (the model) or a 400 (the request's
        shape, which follows the kind). The call is repeated when the kind changed; a model the
        server now says it does not serve raises UnknownModelError naming the ones it does.
        """
        contradicts = isinstance(mapped, UnknownModelError) or (
            isinstance(mapped, InvalidRequestError)
            and not isinstance(mapped, (ContextWindowError, MaxTokensExceededError))
            and self.server is None
        )
        if not (contradicts and self._info_remembered):
            return False
        before, kind = self.info, self.mode.kind
        self._info_remembered = False
        after = detect_server(self._prober(), self.base_url)
        if after.kind == "generic" and not after.models:
            # Nothing answered (down, overloaded, or a server that lists no models): that says
            # nothing against the memory, and must not overwrite what a real server said.
            return False
        if (after.kind, after.models) == (before.kind, before.models):
            return False  # the memory was right (its prefill verdicts too): the refusal stands
        key = self.endpoint_key()
        self.memory.remember_info(key, after, fresh=True)  # its prefill verdicts were the other server's
        self._info, self._default_model = after, None
        self._continues.clear()
        if isinstance(mapped, UnknownModelError) and after.models and request.model not in after.models:
            raise UnknownModelError(
                f"the server at {self.shown_url} does not serve model {request.model!r}; it serves "
                + ", ".join(repr(m) for m in after.models)
                + " (what was remembered about this URL was another server's, now forgotten)",
                hint=f"pass --model {after.default_model} (model=), or run again without --model",
            ) from None
        return self.mode.kind != kind

    @property
    def mode(self) -> ServerMode:
        return server_mode(self.server or self.info.kind)

    @property
    def prefill_takes_trailing_whitespace(self) -> bool:  # type: ignore[override]
        return self.mode.takes_trailing_whitespace

    @property
    def default_model(self) -> str:  # type: ignore[override]
        if self._default_model is None:
            kind = self.server or self.info.kind
            self._default_model = HOSTED_DEFAULT_MODELS.get(kind) or self.info.default_model or ""
        if not self._default_model:
            raise ConfigurationError(
                f"the server at {self.shown_url} names no model", hint="pass --model (model=) explicitly"
            )
        return self._default_model

    def model_spec(self, model: str) -> ModelSpec:
        known = find_model(model)  # a --model-spec registration, or a catalogue entry
        prices = load_prices().get(model)
        context = self.info.context_for(model) or (known.context_window if known else ASSUMED_CONTEXT)
        max_output = min(known.max_output, context) if known else context
        input_price, output_price = prices or (
            (known.input_price, known.output_price) if known else (0.0, 0.0)
        )
        priced = prices is not None or (known is not None and known.family != "local")
        return ModelSpec(
            id=model,
            context_window=context,
            max_output=max_output,
            prefill=self.mode.prefill and self._known_continues(model) is not False,
            min_cacheable=0,
            input_price=input_price,
            output_price=output_price,
            family="openai",
            priced=priced,
            notes=f"served by {self.mode.kind} at {self.shown_url}" + ("" if priced else "; price unknown"),
        )

    def prefill_supported(self, model: str) -> bool:
        """Whether the server continues a final assistant message (checked once, see probe.py).

        Asked before the run's first call, so the check's calls do not evict the first
        round's prompt from a one-slot server's cache. A server found closing the turn is
        remembered per endpoint and model, like a prefill refusal.
        """
        if self.mode.continuation != "trailing":
            return self.mode.prefill
        try:
            self.check_prefill(model)
        except PrefillNotSupportedError:
            return False
        return True

    def _known_continues(self, model: str) -> bool | None:
        """The trailing-turn verdict for ``model`` under the current kind, if already known."""
        kind = self.mode.kind
        if (model, kind) not in self._continues:
            known = self.memory.continues(self.endpoint_key(), model, kind)
            if known is None:
                return None
            self._continues[model, kind] = known
        return self._continues[model, kind]

    def check_prefill(self, model: str) -> None:
        """Before the first prefill round: raise PrefillNotSupportedError where it cannot work."""
        mode = self.mode
        if mode.continuation == "none":
            raise PrefillNotSupportedError(
                f"{mode.kind} servers do not continue a final assistant message",
                hint="use strategy auto or user-turn, or set --server to the server's kind",
            )
        if mode.continuation != "trailing":
            return
        continues = self._known_continues(model)
        if continues is None:
            try:
                continues = not closes_turn(self._prober(), model)
            except Exception as error:
                raise map_error(error, model=model) from error
            self._continues[model, mode.kind] = continues
            self.memory.remember_continues(self.endpoint_key(), model, mode.kind, continues)
        if not continues:
            raise PrefillNotSupportedError(
                f"the server at {self.shown_url} closes a final assistant message as a past turn "
                "instead of continuing it",
                hint="use strategy auto or user-turn for this server",
            )

    def close(self) -> None:
        if self._probe_client is not None:
            self._probe_client.close()
        if self._owns_client:
            self.client.close()

    # -- one round --------------------------------------------------------------------------

    def _mapped(self, error: Exception, request: RoundRequest, text: str) -> Exception:
        """``map_error``, learning the context window from the first error that states it."""
        mapped = map_error(error, model=request.model, max_tokens=request.max_tokens, text_received=text)
        window = _STATED_WINDOW.search(mapped.message) if isinstance(mapped, ContextWindowError) else None
        if window:
            self.info.models[request.model] = int(window.group(1))
            self.memory.remember_info(self.endpoint_key(), self.info)
        return mapped

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        if self.is_async:
            raise BackendUnavailableError(
                "an async client needs the async API", hint="use agenerate() / astream()"
            )
        openai = _import_sdk()
        errors = (openai.OpenAIError, OSError, *transport_errors())
        for attempt in (1, 2):
            if prefill_of(request) is not None:
                self.check_prefill(request.model)
            acc = _Accumulator(request, self.mode)
            try:
                stream = self.client.chat.completions.create(**chat_params(request, self.mode))
            except errors as error:
                mapped = self._mapped(error, request, "")
                if attempt == 1 and self._recheck(mapped, request):
                    continue
                raise mapped from error
            break
        try:
            acc.request_id = _request_id(stream)
            with stream:
                for chunk in stream:
                    yield from acc.fold(chunk)
        except errors as error:
            raise self._mapped(error, request, acc.text) from error
        yield from acc.end()

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        if not self.is_async:
            async for item in super().astream_round(request):
                yield item
            return
        openai = _import_sdk()
        errors = (openai.OpenAIError, OSError, *transport_errors())
        for attempt in (1, 2):
            if prefill_of(request) is not None:
                await asyncio.to_thread(self.check_prefill, request.model)
            acc = _Accumulator(request, self.mode)
            try:
                stream = await self.client.chat.completions.create(**chat_params(request, self.mode))
            except errors as error:
                mapped = self._mapped(error, request, "")
                if attempt == 1 and await asyncio.to_thread(self._recheck, mapped, request):
                    continue
                raise mapped from error
            break
        try:
            acc.request_id = _request_id(stream)
            async with stream:
                async for chunk in stream:
                    for event in acc.fold(chunk):
                        yield event
        except errors as error:
            raise self._mapped(error, request, acc.text) from error
        for event in acc.end():
            yield event
