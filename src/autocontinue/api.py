"""The Python API: ``generate``, ``stream`` and their async twins.

Their keyword arguments are the fields of ``options.Options`` (the signatures are derived from
it, so type checkers and IDEs see every option and refuse a misspelt one). Every argument is
checked and the backend chosen here, before any call; then a sans-I/O Engine runs under the
sync or async driver.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from .backends.base import Backend
from .backends.select import backend_for, resolve_backend
from .catalogue import ModelSpec
from .engine import Engine, resume_state, run_async, run_sync
from .errors import ConfigurationError
from .events import Event, Finished, Result
from .memory import PrefillMemory
from .options import OPTION_FIELDS, Options, encodable, option_doc
from .state import Budgets, ContinuationState, estimate_tokens
from .strategies import choose_strategy, normalise_prompt

__all__ = ["Prompt", "generate", "stream", "agenerate", "astream", "prepare", "resolve_backend"]

#: A string, or Messages API messages ending with a user message.
Prompt = str | list[dict[str, Any]]

P = ParamSpec("P")
R = TypeVar("R")


def _takes_options(
    cls: Callable[P, Options],
) -> Callable[[Callable[[Prompt, Options], R]], Callable[Concatenate[Prompt, P], R]]:
    """Give ``fn(prompt, options)`` the signature ``fn(prompt, *, <every field of Options>)``.

    The keywords become one validated ``Options`` before ``fn`` runs, so every wrong argument
    is refused at the call, even for the iterators and the coroutine.
    """

    def decorate(fn: Callable[[Prompt, Options], R]) -> Callable[Concatenate[Prompt, P], R]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*_arguments(fn.__name__, args, kwargs))

        async def acall(*args: Any, **kwargs: Any) -> Any:
            return await fn(*_arguments(fn.__name__, args, kwargs))  # type: ignore[misc]

        wrapper: Any = functools.wraps(fn)(acall if inspect.iscoroutinefunction(fn) else call)
        wrapper.__signature__ = _signature()
        wrapper.__doc__ = (fn.__doc__ or "") + _options_doc()
        return wrapper

    return decorate


def _arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Prompt, Options]:
    """The prompt and the validated Options of one call (a wrong one: ConfigurationError)."""
    if "prompt" in kwargs:
        args = (*args, kwargs.pop("prompt"))
    if len(args) != 1:
        raise ConfigurationError(
            f"{name}() takes one prompt, then options by name", hint=f"e.g. {name}(prompt, max_rounds=5)"
        )
    unknown = sorted(set(kwargs) - set(OPTION_FIELDS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], OPTION_FIELDS, n=1)
        hint = f"did you mean {close[0]}?" if close else "options are: " + ", ".join(OPTION_FIELDS)
        raise ConfigurationError(f"unknown option {unknown[0]!r}", hint=hint)
    return args[0], Options(**kwargs).validate()


@functools.cache
def _signature() -> inspect.Signature:
    prompt = inspect.Parameter("prompt", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Prompt")
    keywords = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in dataclasses.fields(Options)
    ]
    return inspect.Signature([prompt, *keywords])


@functools.cache
def _options_doc() -> str:
    lines = [f"        {name}: {option_doc(name)}" for name in OPTION_FIELDS]
    return "\n\n    Options (keywords; see ``autocontinue.Options``):\n\n" + "\n".join(lines) + "\n"


# -- the four entry points -------------------------------------------------------------------


@_takes_options(Options)
def stream(prompt: Prompt, options: Options) -> Iterator[Event]:
    """Yield events as the answer is written: text deltas (already repaired), rounds, the end.

    The last event is ``Finished(result)``. Arguments are checked at the call, before the
    first event is asked for.
    """
    engine, opening, emitted = prepare(prompt, options)
    return _closing(run_sync(engine, opening, emitted), engine.backend, options.backend)


@_takes_options(Options)
def generate(prompt: Prompt, options: Options) -> Result:
    """Write the whole answer, continuing past the output cap; returns a Result."""
    engine, opening, emitted = prepare(prompt, options)
    events = _closing(run_sync(engine, opening, emitted), engine.backend, options.backend)
    return _last_result(events)


@_takes_options(Options)
def astream(prompt: Prompt, options: Options) -> AsyncIterator[Event]:
    """The async twin of ``stream``: checks its arguments at the call, then returns the iterator."""
    engine, opening, emitted = prepare(prompt, options)
    return _aclosing(run_async(engine, opening, emitted), engine.backend, options.backend)


@_takes_options(Options)
async def agenerate(prompt: Prompt, options: Options) -> Result:
    """The async twin of ``generate``."""
    engine, opening, emitted = prepare(prompt, options)
    result = None
    async for event in _aclosing(run_async(engine, opening, emitted), engine.backend, options.backend):
        if isinstance(event, Finished):
            result = event.result
    assert result is not None, "a run always ends with Finished"
    return result


def _last_result(events: Iterator[Event]) -> Result:
    result = None
    for event in events:
        if isinstance(event, Finished):
            result = event.result
    assert result is not None, "a run always ends with Finished"
    return result


def _closing(events: Iterator[Event], backend: Backend, given: Any) -> Iterator[Event]:
    """Pass ``events`` through, then close the backend if this call created it."""
    try:
        yield from events
    finally:
        if not isinstance(given, Backend):
            backend.close()


async def _aclosing(events: AsyncIterator[Event], backend: Backend, given: Any) -> AsyncIterator[Event]:
    """The async twin of ``_closing``."""
    try:
        async for event in events:
            yield event
    finally:
        if not isinstance(given, Backend):
            backend.close()


# -- from options to an engine ---------------------------------------------------------------


def prepare(prompt: Prompt, options: Options) -> tuple[Engine, str, int]:
    """Options -> backend -> model spec -> state -> Engine; refuses before any call.

    The one constructor of a run: the four entry points drive what it returns, and so does
    a batch sent through Message Batches (``batch/service.py``).

    Returns the engine, the text the answer opens with, and how much of it was shown before.
    """
    messages = _messages(prompt)
    backend = backend_for(options)
    try:
        engine = _engine(messages, options, backend)
    except BaseException:
        if not isinstance(options.backend, Backend):
            backend.close()  # refused before any call: release the client this call made
        raise
    if options.resume is not None:
        return engine, resume_state(engine.state, options.resume), len(options.resume.text)
    return engine, options.prefill or "", 0


def _engine(messages: list[dict[str, Any]], options: Options, backend: Backend) -> Engine:
    model = options.model or backend.default_model
    spec = backend.model_spec(model)
    memory = PrefillMemory()
    state = _state(
        options, backend, model, spec, _per_call(backend, spec, options.max_tokens_per_call), memory
    )
    state.prompt_tokens = estimate_tokens(_system_text(options.system) + str(messages))
    return Engine(
        backend,
        state,
        model=model,
        prompt=messages,
        system=options.system,
        requested_strategy=options.strategy,
        stop_sequences=tuple(options.stop_sequences),
        temperature=options.temperature,
        cache=options.cache,
        seed=options.seed,
        thinking=options.thinking,
        effort=options.effort,
        retry=options.retry,
        memory=memory,
    )


def _messages(prompt: Prompt) -> list[dict[str, Any]]:
    if not isinstance(prompt, (str, list)):
        raise ConfigurationError(
            f"the prompt must be a string or a list of messages, got {type(prompt).__name__}",
            hint='e.g. generate("Write a long story") or [{"role": "user", "content": "..."}]',
        )
    if not encodable(prompt):
        raise ConfigurationError(
            "the prompt contains a lone surrogate (text that cannot be encoded as UTF-8)",
            hint="decode the text with errors='replace' (or fix its source) before passing it",
        )
    return normalise_prompt(prompt)


def _state(
    options: Options, backend: Backend, model: str, spec: ModelSpec, per_call: int, memory: PrefillMemory
) -> ContinuationState:
    can_prefill = backend.prefill_supported(model) and options.thinking != "adaptive"
    if can_prefill and memory.refused(backend.endpoint_key(), model):
        can_prefill = False
    budgets = Budgets(
        max_tokens_per_call=per_call,
        max_rounds=options.max_rounds,
        max_output_tokens=options.max_output_tokens,
        until=options.until,
        min_words=options.min_words,
        max_words=options.max_words,
        context_window=spec.context_window,
    )
    return ContinuationState(
        spec=spec, budgets=budgets, strategy=choose_strategy(options.strategy, can_prefill)
    )


def _system_text(system: str | list[dict[str, Any]] | None) -> str:
    return system if isinstance(system, str) else str(system or "")


def _per_call(backend: Backend, spec: ModelSpec, requested: int | None) -> int:
    if requested is None:
        default = getattr(backend, "default_max_tokens_per_call", None)
        return min(default or spec.max_output, spec.max_output)
    if requested > spec.max_output:
        raise ConfigurationError(
            f"max_tokens_per_call {requested} is above the maximum output of {spec.id} ({spec.max_output})",
            hint=f"use at most {spec.max_output}, or leave it unset for the model's maximum",
        )
    return requested
