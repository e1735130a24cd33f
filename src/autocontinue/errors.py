"""The exception tree. Every error the library raises is an AutocontinueError.

    AutocontinueError                 root; .hint says what to change, .partial keeps text so far
    ├── ConfigurationError            bad arguments, refused before any call
    │   ├── UnknownModelError         model id not in the catalogue (or 404 from the API)
    │   └── MissingCredentialsError   anthropic backend without a key
    ├── BackendUnavailableError       a backend's extra is not installed, or its model file is bad
    ├── BackendError                  the model service failed; .status_code, .request_id
    │   ├── PrefillNotSupportedError  the API refused a final assistant message
    │   ├── ContextWindowError        prompt too long / model_context_window_exceeded;
    │   │                             .prompt_tokens, .context_window, .max_tokens_allowed
    │   ├── AuthenticationError       401/403
    │   ├── InvalidRequestError       any other 400
    │   │   └── MaxTokensExceededError  max_tokens above the model's maximum; .max_tokens_allowed
    │   └── TransientBackendError     429, 5xx, 529, connection lost: worth retrying
    │       └── StreamInterruptedError  a stream broke after some text arrived
    ├── JournalError                  the run journal is unreadable, corrupt or too new
    └── OutputError                   the output file cannot be written (disk full, reader gone)

SDK and llama.cpp errors are converted once, at the backend boundary, with ``raise ... from``;
the limits a refusal names are parsed there too, into the fields above (None when not known),
so nothing downstream reads numbers back out of a message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "one_line",
    "AutocontinueError",
    "ConfigurationError",
    "UnknownModelError",
    "MissingCredentialsError",
    "BackendUnavailableError",
    "BackendError",
    "PrefillNotSupportedError",
    "ContextWindowError",
    "AuthenticationError",
    "InvalidRequestError",
    "MaxTokensExceededError",
    "TransientBackendError",
    "StreamInterruptedError",
    "JournalError",
    "OutputError",
]


class AutocontinueError(Exception):
    """Root of every error autocontinue raises."""

    def __init__(self, message: str, *, hint: str | None = None, partial: Any = None) -> None:
        super().__init__(message)
        self.message = message
        #: One sentence that says what to change.
        self.hint = hint
        #: The Result so far when a run failed part-way (text is never lost).
        self.partial = partial

    def one_line(self) -> str:
        """``message (hint)`` on one line, for the command line."""
        return one_line(self.message, self.hint)


def one_line(message: str, hint: str | None = None) -> str:
    """``message (hint: ...)`` folded onto one line."""
    text = " ".join(message.split())
    if hint:
        text += f" (hint: {' '.join(hint.split())})"
    return text


class ConfigurationError(AutocontinueError):
    """An argument is wrong; nothing was sent."""


class UnknownModelError(ConfigurationError):
    """The model id is not known."""


class MissingCredentialsError(ConfigurationError):
    """The anthropic backend has no API key."""


class BackendUnavailableError(AutocontinueError):
    """A backend cannot start: its extra is missing or its model file is unreadable."""


class BackendError(AutocontinueError):
    """The model service answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
        hint: str | None = None,
        partial: Any = None,
    ) -> None:
        super().__init__(message, hint=hint, partial=partial)
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type


class PrefillNotSupportedError(BackendError):
    """The API refused a final assistant message for this model."""


class ContextWindowError(BackendError):
    """The prompt plus max_tokens does not fit the model's context window.

    ``prompt_tokens`` and ``context_window`` are the service's own figures when it gave them;
    ``max_tokens_allowed`` is the room left for output (0 when the prompt alone is too long).
    """

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None = None,
        context_window: int | None = None,
        max_tokens_allowed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window
        if max_tokens_allowed is None and prompt_tokens is not None and context_window is not None:
            max_tokens_allowed = max(0, context_window - prompt_tokens)
        self.max_tokens_allowed = max_tokens_allowed


class AuthenticationError(BackendError):
    """The key was refused."""


class InvalidRequestError(BackendError):
    """The API refused the request as malformed."""


class MaxTokensExceededError(InvalidRequestError):
    """``max_tokens`` is above the model's maximum output; ``max_tokens_allowed`` is that maximum."""

    def __init__(self, message: str, *, max_tokens_allowed: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.max_tokens_allowed = max_tokens_allowed


class TransientBackendError(BackendError):
    """Overload, rate limit, server error or lost connection: retrying may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Seconds the server asked us to wait, if it said.
        self.retry_after = retry_after


class StreamInterruptedError(TransientBackendError):
    """The stream broke after some text had arrived (the engine keeps what it was given)."""

    def __init__(self, message: str, *, usage: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Usage of the broken call, when the backend knows it.
        self.usage = usage


class JournalError(AutocontinueError):
    """The run journal cannot be read or written."""


class OutputError(AutocontinueError):
    """The output (``-o FILE``, a batch's output) cannot be written: disk full, an I/O error, a
    FIFO whose reader went away. The text is kept in the journal; ``.path`` is the output."""

    def __init__(self, message: str, *, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path
