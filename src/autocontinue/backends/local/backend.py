"""``LocalBackend``: a GGUF model run in-process by llama.cpp, with true prefill and KV reuse.

It puts the parts together for each round: the model (``model.py``), the prompt planned
against the last round's tokens (``prompt.py``), the sampler and its token loop
(``sampler.py``); one round holds the model's lock from the first token evaluated to the last
token sampled, and every round, sync or async, runs on the process's one model thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor

from ...catalogue import LOCAL_DEFAULT_MODEL, ModelSpec, find_model
from ...errors import InvalidRequestError, UnknownModelError
from ...usage import Usage
from ..base import Backend, BackendEvent, RoundEnd, RoundRequest
from .model import (
    LoadedModel,
    bundled_model_path,
    check_gguf_file,
    load_model,
    model_id_for,
    require_llama_cpp,
)
from .prompt import TokenChunk, check_window, flat_tokens, open_answer, plan_prompt_tokens, render_prompt
from .sampler import Sampling, build_sampler, prime_penalties, sample_tokens
from .threads import default_threads

__all__ = ["LocalBackend"]


class _ThreadFlag(threading.local):
    #: True on ``_MODEL_THREAD``, where a round runs inline (a hand-off would wait on itself).
    active = False


_ON_MODEL_THREAD = _ThreadFlag()


def _mark_model_thread() -> None:
    _ON_MODEL_THREAD.active = True


#: The one thread that runs every round, sync or async, of every local model in this process.
#: libgomp keeps an idle OpenMP team for each thread that ever ran the model, and once the
#: teams outnumber the cores it stops spinning at barriers (ggml waits at one per graph node)
#: and sleeps instead: rounds stepped from the event loop's changing worker threads decoded
#: SmolLM2 on 2 cores 1.6-2x slower (9 -> 15-19 ms a token) than rounds on a single thread.
_MODEL_THREAD = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="autocontinue-local", initializer=_mark_model_thread
)

#: What the model thread hands its reader: (event, None), then (None, the round's error or None).
_Item = tuple[BackendEvent | None, BaseException | None]


def _feed(
    events: Generator[BackendEvent, None, None], put: Callable[[_Item], None], stopped: threading.Event
) -> None:
    """Run a round on the model thread, passing each event to ``put`` until ``stopped`` is set."""
    try:
        for event in events:
            if stopped.is_set():
                break
            put((event, None))
    except BaseException as exc:  # handed to the reader, raised there
        put((None, exc))
    else:
        put((None, None))
    finally:
        events.close()


class LocalBackend(Backend):
    """A GGUF model run in-process by llama.cpp, with true prefill and KV-cache reuse."""

    name = "local"
    default_model = LOCAL_DEFAULT_MODEL
    #: The engine's default ``max_tokens_per_call`` for this backend.
    default_max_tokens_per_call = 512
    #: The open turn continues after the exact text, whitespace included, so the model sees
    #: the very tokens it wrote (a stripped "\n\n" made SmolLM2 open with " Sentence").
    prefill_takes_trailing_whitespace = True

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        seed: int | None = None,
        temperature: float = 0.7,
        top_p: float = 0.9,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.15,
        repeat_last_n: int = 256,
        reuse_kv: bool = True,
        verbose: bool = False,
    ) -> None:
        require_llama_cpp()
        if model_path is None:
            self.model_path = bundled_model_path()
            self.default_model = LOCAL_DEFAULT_MODEL
        else:
            self.model_path = os.path.expanduser(str(model_path))
            check_gguf_file(self.model_path)
            self.default_model = model_id_for(self.model_path)
        self.custom_model = model_path is not None
        self.n_ctx = n_ctx
        #: Fixed thread count, or None to pick per round from the idle cores.
        self.n_threads = n_threads
        self.sampling = Sampling(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            repeat_last_n=repeat_last_n,
            seed=seed,
        )
        #: Off only to measure what the KV cache saves (bench/local_kv.py).
        self.reuse_kv = reuse_kv
        self.verbose = verbose
        self._model: LoadedModel | None = None

    @property
    def seed(self) -> int | None:
        return self.sampling.seed

    # -- model and spec

    def _loaded(self) -> LoadedModel:
        if self._model is None:
            self._model = load_model(self.model_path, n_ctx=self.n_ctx, verbose=self.verbose)
        return self._model

    def _serves(self, model: str) -> bool:
        if model in (self.default_model, self.model_path):
            return True
        if self.custom_model:
            return False
        spec = find_model(model)
        return spec is not None and spec.id == LOCAL_DEFAULT_MODEL

    def model_spec(self, model: str) -> ModelSpec:
        if not self._serves(model):
            raise UnknownModelError(
                f"the local backend cannot serve model {model!r}",
                hint=f"use {self.default_model!r}, or pass --model-path FILE.gguf for another model",
            )
        loaded = self._loaded()
        prefill = loaded.template.supports_open_turn()
        base = find_model(LOCAL_DEFAULT_MODEL) if not self.custom_model else None
        if base is None:
            base = ModelSpec(
                id=self.default_model,
                min_cacheable=0,
                input_price=0.0,
                output_price=0.0,
                family="local",
                notes=f"GGUF file {self.model_path}, run by llama.cpp",
            )
        return dataclasses.replace(
            base, context_window=loaded.n_ctx, max_output=loaded.n_ctx, prefill=prefill
        )

    def prefill_supported(self, model: str) -> bool:
        return self.model_spec(model).prefill

    def endpoint_key(self) -> str:
        return f"local:{os.path.realpath(self.model_path)}"

    def close(self) -> None:
        self._model = None

    def forget_cache(self) -> None:
        """Drop the KV cache and token history, so the next round evaluates its whole prompt."""
        loaded = self._loaded()
        with loaded.lock:
            loaded.forget()

    # -- prompts

    def render_prompt(self, request: RoundRequest) -> tuple[str, bool]:
        """The prompt text for ``request`` and whether it continues an open assistant turn."""
        return render_prompt(self._loaded().template, request)

    def _plan(self, loaded: LoadedModel, request: RoundRequest) -> tuple[list[TokenChunk], bool]:
        text, open_turn = render_prompt(loaded.template, request)
        return plan_prompt_tokens(loaded.history, text.encode("utf-8"), loaded.tokenize), open_turn

    def count_tokens(self, request: RoundRequest) -> int | None:
        loaded = self._loaded()  # no lock: planning only reads the history and tokenises
        chunks, _ = self._plan(loaded, request)
        return len(flat_tokens(chunks))

    # -- one round

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        """The round runs on the model's own thread (``_MODEL_THREAD``); its events come through a queue.

        A sync round on the caller's thread after async rounds (which run on the model thread)
        kept two OpenMP teams in the process, and both kinds of round then decoded at about 0.55x
        (docs/benchmarks.md, 9b). The model does not wait for its reader; a reader that stops
        (``close``, a dropped generator, Ctrl-C in the main thread) stops the round at its next
        event, and the model's lock is free when the generator has finished.
        """
        if _ON_MODEL_THREAD.active:  # already there (a round started from the model thread)
            yield from self._model_round(request)
            return
        events: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        stopped = threading.Event()
        worker = _MODEL_THREAD.submit(_feed, self._model_round(request), events.put, stopped)
        try:
            while True:
                event, error = events.get()
                if error is not None:
                    raise error
                if event is None:
                    return
                yield event
        finally:
            stopped.set()
            worker.result()

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        """The round runs whole on the model's own thread and hands its events to the loop as they come.

        The base class's default stepped the sync stream with one ``to_thread`` per event, on
        whichever worker thread was free (see ``_MODEL_THREAD`` for what that cost), and the
        model stood still while the reader handled each event. Here the model does not wait for
        its reader; a reader that stops (``aclose``, cancellation) stops the round at its next
        token, and the model's lock is free when this returns.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[_Item] = asyncio.Queue()
        stopped = threading.Event()

        def put(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is reading any more
                stopped.set()

        worker = loop.run_in_executor(_MODEL_THREAD, _feed, self._model_round(request), put, stopped)
        try:
            while True:
                event, error = await events.get()
                if error is not None:
                    raise error
                if event is None:
                    return
                yield event
        finally:
            stopped.set()
            await asyncio.shield(worker)

    def _model_round(self, request: RoundRequest) -> Generator[BackendEvent, None, None]:
        """One round under the model's lock, on the thread that steps it (the model thread)."""
        loaded = self._loaded()
        with loaded.lock:
            yield from self._round(loaded, request)

    def _round(self, loaded: LoadedModel, request: RoundRequest) -> Iterator[BackendEvent]:
        chunks, open_turn = self._plan(loaded, request)
        tokens = flat_tokens(chunks)
        if not tokens:
            raise InvalidRequestError(
                "the chat template rendered an empty prompt",
                status_code=400,
                error_type="invalid_request_error",
                hint="send at least one message with some text",
            )
        loaded.set_threads(self.n_threads or default_threads())
        check_window(len(tokens), request.max_tokens, loaded.n_ctx)
        reused = loaded.load_prompt(tokens, reuse=self.reuse_kv)
        sampler = build_sampler(self.sampling, loaded.llm.n_vocab(), request)
        if open_turn:
            prime_penalties(sampler, loaded, tokens, open_answer(request), self.sampling.repeat_last_n)
        generated: list[int] = []
        try:
            stop_reason, stop_sequence = yield from sample_tokens(loaded, sampler, request, generated)
        finally:
            loaded.history = chunks + [TokenChunk(loaded.piece(t, special=True), (t,)) for t in generated]
        usage = Usage(
            input_tokens=len(tokens),
            output_tokens=len(generated),
            evaluated_prompt_tokens=len(tokens) - reused,
            reused_prompt_tokens=reused,
        )
        yield RoundEnd(stop_reason=stop_reason, usage=usage, stop_sequence=stop_sequence)
