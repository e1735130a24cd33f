"""Which backend a call uses: given, named, or chosen from the environment."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigurationError
from .base import Backend

__all__ = ["resolve_backend"]


def resolve_backend(
    backend: str | Backend | None,
    *,
    client: Any = None,
    model_path: str | None = None,
    seed: int | None = None,
    base_url: str | None = None,
    server: str | None = None,
) -> Backend:
    """The backend to use: given, named, or chosen from the environment.

    None means anthropic when ``client`` is given or ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL is
    set, else the embedded local model.
    """
    if isinstance(backend, Backend):
        return backend
    if backend is None:
        has_env = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL")
        backend = "anthropic" if client is not None or has_env else "local"
    if backend == "anthropic":
        from .anthropic import AnthropicBackend

        return AnthropicBackend(client)
    if backend == "local":
        if client is not None:
            raise ConfigurationError(
                "client= is for the anthropic backend", hint="drop client= or use backend='anthropic'"
            )
        from .local import LocalBackend

        return LocalBackend(model_path, seed=seed)
    raise ConfigurationError(f"unknown backend {backend!r}", hint="use 'anthropic' or 'local'")
