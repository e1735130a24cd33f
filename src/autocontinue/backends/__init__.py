"""Backends: the anthropic SDK, the embedded local model, and the interface they share."""

from .base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest

__all__ = ["Backend", "BackendDelta", "BackendEvent", "RoundEnd", "RoundRequest"]
