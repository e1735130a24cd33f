"""Sampling: the llama.cpp sampler chain of a round, its seed, stop sequences, the token loop.

A continuation round samples like one long call would: its seed is derived from the run's seed
and the round index, and the answer so far is fed to the repeat penalty as recent output.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from ..base import BackendDelta, RoundRequest
from .model import LoadedModel

__all__ = ["Sampling", "build_sampler", "prime_penalties", "round_seed", "sample_tokens", "split_at_stop"]


@dataclass(frozen=True)
class Sampling:
    """The sampler settings of a backend (a request's temperature and seed take precedence)."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.15
    repeat_last_n: int = 256
    seed: int | None = None


def round_seed(seed: int, round_index: int) -> int:
    """A per-round sampling seed derived from the run's seed (reproducible and resumable)."""
    digest = hashlib.sha256(f"{seed}:{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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


def build_sampler(settings: Sampling, n_vocab: int, request: RoundRequest) -> Any:
    """The sampler chain for one round: repeat penalty, then greedy or top-k/p, min-p, temperature."""
    import llama_cpp
    from llama_cpp._internals import LlamaSampler

    temperature = settings.temperature if request.temperature is None else request.temperature
    seed = request.seed if request.seed is not None else settings.seed
    sampler = LlamaSampler()
    sampler.add_penalties(
        n_vocab=n_vocab,
        penalty_last_n=settings.repeat_last_n,
        penalty_repeat=settings.repeat_penalty,
        penalty_freq=0.0,
        penalty_present=0.0,
    )
    if temperature <= 0:
        sampler.add_greedy()
        return sampler
    sampler.add_top_k(settings.top_k)
    sampler.add_top_p(settings.top_p, 1)
    sampler.add_min_p(settings.min_p, 1)
    sampler.add_temp(temperature)
    if seed is None:
        sampler.add_dist(llama_cpp.LLAMA_DEFAULT_SEED)  # random
    else:
        sampler.add_dist(round_seed(seed, request.round_index))
    return sampler


def prime_penalties(
    sampler: Any, loaded: LoadedModel, tokens: list[int], answer: str, repeat_last_n: int
) -> None:
    """Feed the answer so far to the repeat penalty, as if it had been generated now.

    A continuation round then samples like one long call would: text from earlier rounds
    counts as recent output. Only the open assistant turn (``answer``) counts, not the question.
    """
    answer_bytes = len(answer.encode("utf-8"))
    if answer_bytes == 0 or repeat_last_n == 0:
        return
    recent: list[int] = []
    size = 0
    for token in reversed(tokens):
        size += len(loaded.piece(token, special=True))
        if size > answer_bytes or len(recent) >= repeat_last_n:
            break
        recent.append(token)
    for token in reversed(recent):
        sampler.accept(token)


def sample_tokens(
    loaded: LoadedModel, sampler: Any, request: RoundRequest, generated: list[int]
) -> Generator[BackendDelta, None, tuple[str, str | None]]:
    """Sample up to ``max_tokens`` into ``generated``, yielding clean text; returns the stop.

    The stop is (``end_turn`` | ``stop_sequence`` | ``max_tokens``, matched sequence or None).
    Text is decoded incrementally (no half characters) and held while it may begin a stop
    sequence.
    """
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
    return stop_reason, stop_sequence
