"""The Python API: ``generate``, ``stream`` and their async twins.

Arguments are checked and the backend chosen here, before any call; then a sans-I/O Engine
runs under the sync or async driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .backends.base import Backend
from .backends.select import resolve_backend
from .catalogue import ModelSpec
from .engine import Engine, RetryPolicy, resume_state, run_async, run_sync
from .errors import AutocontinueError, ConfigurationError
from .events import Checkpoint, Event, Finished, Result
from .memory import PrefillMemory
from .state import Budgets, ContinuationState, estimate_tokens
from .strategies import STRATEGIES, choose_strategy, normalise_prompt

__all__ = ["generate", "stream", "agenerate", "astream", "resolve_backend"]


def _positive(name: str, value: int | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be a positive whole number, got {value!r}")


def _per_call(backend: Backend, spec: ModelSpec, requested: int | None) -> int:
    if requested is None:
        default = getattr(backend, "default_max_tokens_per_call", None)
        return min(default or spec.max_output, spec.max_output)
    _positive("max_tokens_per_call", requested)
    if requested > spec.max_output:
        raise ConfigurationError(
            f"max_tokens_per_call {requested} is above the maximum output of {spec.id} "
            f"({spec.max_output})",
            hint=f"use at most {spec.max_output}, or leave it unset for the model's maximum",
        )
    return requested


def _prepare(
    prompt: Any,
    *,
    model: str | None,
    backend: Any,
    client: Any,
    system: Any,
    prefill: str | None,
    max_tokens_per_call: int | None,
    max_rounds: int,
    max_output_tokens: int | None,
    strategy: str,
    stop_sequences: Any,
    until: str | None,
    min_words: int | None,
    temperature: float | None,
    cache: bool,
    seed: int | None,
    model_path: str | None,
    resume: Checkpoint | None,
    retry: RetryPolicy | None,
    thinking: Any,
    effort: str | None,
    max_words: int | None,
    base_url: str | None,
    server: str | None,
) -> tuple[Engine, str, int]:
    messages = normalise_prompt(prompt)
    if strategy not in STRATEGIES:
        raise ConfigurationError(f"unknown strategy {strategy!r}", hint="use auto, prefill or user-turn")
    _positive("max_rounds", max_rounds, allow_none=False)
    _positive("max_output_tokens", max_output_tokens)
    _positive("min_words", min_words)
    _positive("max_words", max_words)
    if temperature is not None and not 0 <= temperature <= 1:
        raise ConfigurationError(
            f"temperature must be between 0 and 1, got {temperature}", hint="e.g. temperature=0.7"
        )
    if until is not None and not until:
        raise ConfigurationError("until is empty", hint="give the text to stop at, or None")
    if isinstance(stop_sequences, str):
        stop_sequences = [stop_sequences]
    stops = tuple(stop_sequences or ())
    if any(not s.strip() for s in stops):
        raise ConfigurationError("a stop sequence is empty or blank", hint="remove it")
    if thinking and (prefill or strategy == "prefill"):
        raise ConfigurationError(
            "extended thinking cannot be combined with prefill",
            hint="drop prefill= and use strategy='user-turn' or 'auto'",
        )
    chosen = resolve_backend(
        backend, client=client, model_path=model_path, seed=seed, base_url=base_url, server=server
    )
    model = model or chosen.default_model
    try:
        spec = chosen.model_spec(model)
        per_call = _per_call(chosen, spec, max_tokens_per_call)
    except AutocontinueError:
        if not isinstance(backend, Backend):
            chosen.close()  # refused before any call: release the client this call made
        raise
    memory = PrefillMemory()
    can_prefill = chosen.prefill_supported(model) and not thinking
    if can_prefill and memory.refused(chosen.endpoint_key(), model):
        can_prefill = False
    budgets = Budgets(
        max_tokens_per_call=per_call,
        max_rounds=max_rounds,
        max_output_tokens=max_output_tokens,
        until=until,
        min_words=min_words,
        max_words=max_words,
        context_window=spec.context_window,
    )
    state = ContinuationState(spec=spec, budgets=budgets, strategy=choose_strategy(strategy, can_prefill))
    system_text = system if isinstance(system, str) else str(system or "")
    state.prompt_tokens = estimate_tokens(system_text + str(messages))
    extra: dict[str, Any] = {"thinking": thinking} if thinking else {}
    if effort is not None:
        extra["effort"] = effort
    engine = Engine(
        chosen,
        state,
        model=model,
        prompt=messages,
        system=system,
        requested_strategy=strategy,
        stop_sequences=stops,
        temperature=temperature,
        cache=cache,
        seed=seed,
        extra=extra,
        retry=retry,
        memory=memory,
        thinking=thinking,
        effort=effort,
    )
    if resume is not None:
        return engine, resume_state(state, resume), len(resume.text)
    return engine, prefill or "", 0


def stream(prompt: str | list[dict[str, Any]], **options: Any) -> Iterator[Event]:
    """Yield events as the answer is written: text deltas (already repaired), rounds, the end.

    Options are those of ``generate``. The last event is ``Finished(result)``.
    """
    options = _with_defaults(options)
    engine, opening, emitted = _prepare(prompt, **options)
    return _closing(run_sync(engine, opening, emitted), engine.backend, options["backend"])


def _closing(events: Iterator[Event], backend: Backend, given: Any) -> Iterator[Event]:
    """Pass ``events`` through, then close the backend if this call created it."""
    try:
        yield from events
    finally:
        if not isinstance(given, Backend):
            backend.close()


def generate(prompt: str | list[dict[str, Any]], **options: Any) -> Result:
    """Write the whole answer, continuing past the output cap; returns a Result.

    Options: model, backend ("anthropic" | "local" | a Backend), client, system, prefill,
    max_tokens_per_call, max_rounds (20), max_output_tokens, strategy ("auto" | "prefill" |
    "user-turn"), stop_sequences, until, min_words, temperature, cache (True), seed,
    model_path, resume (a Checkpoint), retry (a RetryPolicy), thinking, effort, max_words,
    base_url, server.
    """
    result = None
    for event in stream(prompt, **options):
        if isinstance(event, Finished):
            result = event.result
    assert result is not None
    return result


async def astream(prompt: str | list[dict[str, Any]], **options: Any) -> AsyncIterator[Event]:
    """The async twin of ``stream``."""
    options = _with_defaults(options)
    engine, opening, emitted = _prepare(prompt, **options)
    try:
        async for event in run_async(engine, opening, emitted):
            yield event
    finally:
        if not isinstance(options["backend"], Backend):
            engine.backend.close()


async def agenerate(prompt: str | list[dict[str, Any]], **options: Any) -> Result:
    """The async twin of ``generate``."""
    result = None
    async for event in astream(prompt, **options):
        if isinstance(event, Finished):
            result = event.result
    assert result is not None
    return result


_DEFAULTS: dict[str, Any] = {
    "model": None,
    "backend": None,
    "client": None,
    "system": None,
    "prefill": None,
    "max_tokens_per_call": None,
    "max_rounds": 20,
    "max_output_tokens": None,
    "strategy": "auto",
    "stop_sequences": None,
    "until": None,
    "min_words": None,
    "temperature": None,
    "cache": True,
    "seed": None,
    "model_path": None,
    "resume": None,
    "retry": None,
    "thinking": None,
    "effort": None,
    "max_words": None,
    "base_url": None,
    "server": None,
}


def _with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise ConfigurationError(
            f"unknown option {sorted(unknown)[0]!r}", hint="options are: " + ", ".join(_DEFAULTS)
        )
    return {**_DEFAULTS, **options}

