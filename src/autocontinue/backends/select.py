"""Which backend a call uses: given, named, or chosen from the client and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .base import Backend

__all__ = ["BACKENDS", "backend_for", "resolve_backend", "infer_backend"]

BACKENDS = ("anthropic", "local", "openai")


def _is_openai_client(client: Any) -> bool:
    """An ``openai.OpenAI``/``AsyncOpenAI`` (or subclass), without importing the SDK needlessly."""
    return any(cls.__module__.split(".")[0] == "openai" for cls in type(client).__mro__)


def infer_backend(client: Any = None, base_url: str | None = None) -> str:
    """The backend named by nothing: from the client's type, else from the environment.

    An ``openai`` client means openai; any other client anthropic. Without a client:
    ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL mean anthropic; else OPENAI_BASE_URL (or a
    ``base_url``) means openai; else the embedded local model.
    """
    if client is not None:
        return "openai" if _is_openai_client(client) else "anthropic"
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL"):
        return "anthropic"
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "local"


def resolve_backend(
    backend: str | Backend | None,
    *,
    client: Any = None,
    model_path: str | None = None,
    seed: int | None = None,
    base_url: str | None = None,
    server: str | None = None,
) -> Backend:
    """The backend to use: given, named, or chosen by ``infer_backend``."""
    if isinstance(backend, Backend):
        return backend
    if backend is None:
        backend = infer_backend(client, base_url)
    if server is not None and backend != "openai":
        raise ConfigurationError(
            f"server= is for the openai backend, not {backend!r}", hint="drop server= or use backend='openai'"
        )
    if backend == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(client, base_url=base_url, server=server)
    if backend == "anthropic":
        return _anthropic(client, base_url)
    if backend == "local":
        if client is not None:
            raise ConfigurationError(
                "client= is for the anthropic and openai backends", hint="drop client= or name the backend"
            )
        from .local import LocalBackend

        return LocalBackend(model_path, seed=seed)
    raise ConfigurationError(f"unknown backend {backend!r}", hint="use " + ", ".join(BACKENDS))


def backend_for(options: Any, *, client: Any = None) -> Backend:
    """The backend a run's options name: ``options`` is an ``Options`` or a mapping of option names.

    The one place a run's backend comes from its options (``backend``, ``client``,
    ``model_path``, ``seed``, ``base_url``, ``server``); ``client`` given here wins over the
    options' own (a batch's shared, paced client).
    """
    get = options.get if isinstance(options, Mapping) else lambda name: getattr(options, name, None)
    return resolve_backend(
        get("backend"),
        client=client if client is not None else get("client"),
        model_path=get("model_path"),
        seed=get("seed"),
        base_url=get("base_url"),
        server=get("server"),
    )


def check_client_or_url(client: Any, base_url: str | None) -> None:
    """A client carries its own base URL: both given is refused (one place says so)."""
    if client is not None and base_url:
        raise ConfigurationError("give client= or base_url=, not both", hint="set the base URL on the client")


def _anthropic(client: Any, base_url: str | None) -> Backend:
    """The anthropic backend; a ``base_url`` without a client is where its own client goes."""
    from .anthropic import AnthropicBackend

    check_client_or_url(client, base_url)
    if client is None and base_url:
        made = AnthropicBackend(None)  # checks the key, as without a base URL
        # The copy shares (and closing it closes) the connection pool of the client it made.
        made.client = made.client.with_options(base_url=base_url)
        return made
    return AnthropicBackend(client)
