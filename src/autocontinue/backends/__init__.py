"""Backends: the anthropic SDK, the embedded local model, and the interface they share."""

from .base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundOpened, RoundRequest

__all__ = ["Backend", "BackendDelta", "BackendEvent", "RoundEnd", "RoundOpened", "RoundRequest"]
