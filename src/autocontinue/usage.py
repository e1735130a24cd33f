"""Token usage of one call or a whole run, summed field by field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["Usage"]


@dataclass(frozen=True)
class Usage:
    """Tokens as the Messages API reports them, plus the local backend's KV-cache split.

    Total input of a call = input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
    """

    #: Input tokens billed at the full input price.
    input_tokens: int = 0
    #: Output tokens generated (thinking included: it is billed as output).
    output_tokens: int = 0
    #: Of ``output_tokens``, those spent thinking (never part of the answer's text).
    thinking_tokens: int = 0
    #: Input tokens written to the prompt cache (all lifetimes).
    cache_creation_input_tokens: int = 0
    #: Of those, tokens written with the 1-hour lifetime (billed at 2x instead of 1.25x).
    cache_creation_1h_input_tokens: int = 0
    #: Input tokens read from the prompt cache.
    cache_read_input_tokens: int = 0
    #: Local backend: prompt tokens evaluated this call (not found in the KV cache).
    evaluated_prompt_tokens: int = 0
    #: Local backend: prompt tokens reused from the KV cache.
    reused_prompt_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Usage:
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v or 0) for k, v in data.items() if k in names})
