"""autocontinue: complete LLM answers of any length.

One model call stops at its output cap; autocontinue notices, asks the model to go on from
exactly where it stopped, repairs the seam, and repeats until the answer is finished.

    import autocontinue
    result = autocontinue.generate("Write five long stories ...", max_rounds=10)
    print(result.text, result.stop_reason, result.cost_usd)
"""

from .api import agenerate, astream, generate, stream
from .batch import abatch, batch
from .backends.select import resolve_backend
from .backends.base import Backend, BackendDelta, RoundEnd, RoundRequest
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
    MissingCredentialsError,
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
from .usage import Usage

__version__ = "0.1.0"

__all__ = [
    "generate",
    "stream",
    "agenerate",
    "astream",
    "batch",
    "abatch",
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
    "MissingCredentialsError",
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
