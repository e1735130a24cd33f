"""autocontinue: complete LLM answers of any length.

One model call stops at its output cap; autocontinue notices, asks the model to go on from
exactly where it stopped, repairs the seam, and repeats until the answer is finished.

    import autocontinue
    result = autocontinue.generate("Write five long stories ...", max_rounds=10)
    print(result.text, result.stop_reason, result.cost_usd)
"""

# No `from __future__ import annotations` and only underscored helpers: every name that is not
# private in this namespace is a public name (tests/test_public_names.py checks it).
import importlib as _importlib
import sys as _sys
import types as _types
import typing as _typing

if _typing.TYPE_CHECKING:
    from .api import Prompt, agenerate, astream, generate, stream
    from .backends.base import Backend, BackendDelta, RoundEnd, RoundRequest
    from .backends.select import resolve_backend
    from .batch import abatch, batch
    from .catalogue import ModelSpec, lookup_model, parse_model_spec, register_model
    from .engine import RetryPolicy
    from .errors import (
        AuthenticationError,
        AutocontinueError,
        BackendError,
        BackendUnavailableError,
        ConfigurationError,
        ContextWindowError,
        InvalidRequestError,
        JournalError,
        MaxTokensExceededError,
        MissingCredentialsError,
        OutputError,
        PrefillNotSupportedError,
        StreamInterruptedError,
        TransientBackendError,
        UnknownModelError,
    )
    from .events import (
        Checkpoint,
        Event,
        Finished,
        Result,
        Retrying,
        RoundFinished,
        RoundReport,
        RoundStarted,
        StrategyChanged,
        TextDelta,
    )
    from .options import Options
    from .usage import Usage

#: Public name -> the submodule that defines it, imported on first use (PEP 562), so that
#: the command line's start-up does not pay for the engine, seams or backends it does not use.
_LAZY = {
    "agenerate": "api",
    "astream": "api",
    "generate": "api",
    "stream": "api",
    "Prompt": "api",
    "Options": "options",
    "abatch": "batch",
    "batch": "batch",
    "resolve_backend": "backends.select",
    "Backend": "backends.base",
    "BackendDelta": "backends.base",
    "RoundEnd": "backends.base",
    "RoundRequest": "backends.base",
    "ModelSpec": "catalogue",
    "lookup_model": "catalogue",
    "parse_model_spec": "catalogue",
    "register_model": "catalogue",
    "RetryPolicy": "engine",
    "AuthenticationError": "errors",
    "AutocontinueError": "errors",
    "BackendError": "errors",
    "BackendUnavailableError": "errors",
    "ConfigurationError": "errors",
    "ContextWindowError": "errors",
    "InvalidRequestError": "errors",
    "JournalError": "errors",
    "MaxTokensExceededError": "errors",
    "MissingCredentialsError": "errors",
    "OutputError": "errors",
    "PrefillNotSupportedError": "errors",
    "StreamInterruptedError": "errors",
    "TransientBackendError": "errors",
    "UnknownModelError": "errors",
    "Checkpoint": "events",
    "Event": "events",
    "Finished": "events",
    "Result": "events",
    "Retrying": "events",
    "RoundFinished": "events",
    "RoundReport": "events",
    "RoundStarted": "events",
    "StrategyChanged": "events",
    "TextDelta": "events",
    "Usage": "usage",
}

__version__ = "0.1.0"

__all__ = [
    "generate",
    "stream",
    "agenerate",
    "astream",
    "batch",
    "abatch",
    "Options",
    "Prompt",
    "resolve_backend",
    "Backend",
    "BackendDelta",
    "RoundEnd",
    "RoundRequest",
    "ModelSpec",
    "lookup_model",
    "parse_model_spec",
    "register_model",
    "RetryPolicy",
    "AutocontinueError",
    "AuthenticationError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ContextWindowError",
    "InvalidRequestError",
    "JournalError",
    "MaxTokensExceededError",
    "MissingCredentialsError",
    "OutputError",
    "PrefillNotSupportedError",
    "StreamInterruptedError",
    "TransientBackendError",
    "UnknownModelError",
    "Checkpoint",
    "Event",
    "Finished",
    "Result",
    "Retrying",
    "RoundFinished",
    "RoundReport",
    "RoundStarted",
    "StrategyChanged",
    "TextDelta",
    "Usage",
    "__version__",
]


def __getattr__(name: str) -> _typing.Any:
    """Import a public name from its submodule the first time it is used (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autocontinue' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(_types.ModuleType):
    """Keeps a public function whose name is also a subpackage's (``batch``): importing the
    subpackage would otherwise rebind ``autocontinue.batch`` to the module."""

    def __setattr__(self, name: str, value: _typing.Any) -> None:
        if isinstance(value, _types.ModuleType) and name in _LAZY:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
