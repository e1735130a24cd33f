"""Mistakes that belong to the whole batch, found once instead of once per item.

Before any call, ``check_defaults`` prepares the run of a bare item with the batch's own
options on the shared backend and plans its first call without sending it (the options, the
model, ``max_tokens_per_call`` against the model's maximum, the first request's parameters):
a mistake there would fail every item, so it is raised once, and nothing is spent.

During the run, ``BatchGuard`` is shared by every item's calls:

* the first call on a model goes alone; the others on that model wait until the service has
  taken it (its first event), so a wrong key or a model the service does not know costs one
  refused call, not one per item. A model the service refused fails the later items that ask
  for it at once, without a call (the item's own model: those items fail alone);
* an error about the batch rather than the item (``about_the_batch``: the key refused, the
  account's billing, the batch's default model unknown) stops the batch: no call starts after
  it, the calls in flight finish their round (what they wrote is journaled, none is paid for
  twice) and the items stay resumable, not failed; ``run_items`` then raises it once.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from .. import api
from ..backends.base import RoundRequest
from ..engine import Call, Done
from ..errors import (
    AuthenticationError,
    AutocontinueError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    UnknownModelError,
)
from ..options import Options
from .items import BatchItem

__all__ = ["BatchGuard", "BatchStopped", "about_the_batch", "bare_item", "check_defaults", "first_call"]

#: What the bare item of ``check_defaults`` asks (never sent).
BARE_PROMPT = "Say hello."


class BatchStopped(Exception):
    """An item was stopped because the batch was (``BatchGuard.error`` says why)."""


def bare_item(items: list[BatchItem] | None = None) -> BatchItem | None:
    """The item whose first call stands for every item of ``items`` when the batch's own
    options are checked: a bare prompt on the batch's default model when one of them names
    none, on the one model they all name otherwise. None when every item names its own model
    and they differ: a default one model refuses is not every item's mistake then, and each
    item reports its own."""
    items = list(items or ())
    if items and all(item.options.get("model") for item in items):
        models = {str(item.options["model"]) for item in items}
        if len(models) != 1:
            return None
        return BatchItem(id="", prompt=BARE_PROMPT, options={"model": models.pop()})
    return BatchItem(id="", prompt=BARE_PROMPT)


def first_call(options: dict[str, Any]) -> RoundRequest | None:
    """The first request a bare prompt with run ``options`` would send (it is never sent).

    What refuses the options before any call is raised (ConfigurationError, a backend that
    cannot be used); None when something else would stop the run first (a server that could
    not be asked how it continues): each item meets, and reports, that itself.
    """
    try:
        engine, opening, emitted = api.prepare(BARE_PROMPT, Options(**options).validate())
    except (ConfigurationError, BackendUnavailableError):
        raise
    except AutocontinueError:
        return None
    _events, action = engine.begin(opening, emitted)
    if isinstance(action, Done):
        if isinstance(action.error, ConfigurationError):
            action.error.partial = None
            raise action.error
        return None
    return action.request if isinstance(action, Call) else None


def check_defaults(
    options_for: Callable[[BatchItem], dict[str, Any]], items: list[BatchItem] | None = None
) -> None:
    """Raise once what the batch's own options get wrong, before any item of ``items`` runs.

    ``options_for`` gives an item's run options (the batch's, the item's own over them, the
    shared backend); the bare item is ``bare_item(items)``'s.
    """
    bare = bare_item(items)
    if bare is not None:
        first_call(options_for(bare))


def about_the_batch(
    error: BaseException, model: str = "", default_model: str = "", *, bare: bool = False
) -> bool:
    """Whether ``error``, met by an item on ``model``, is about the batch and not the item.

    The key (401/403, ``permission_error``) and the account's billing (402 ``billing_error``)
    fail every item alike; so does a model the service does not know when it is the batch's
    default. With ``bare`` the error was met by the bare item (``bare_item``: the batch's own
    options on the model the items use, a short prompt): its model unknown, or an option the
    configuration or the API refuses, are the batch's too. A real item's refused option or
    request may be its own (its own options, a too-long prompt), as are its own unknown model
    and a service that kept failing.
    """
    if isinstance(error, AuthenticationError):
        return True
    if isinstance(error, BackendError) and (
        error.status_code == 402 or error.error_type in ("billing_error", "permission_error")
    ):
        return True
    if isinstance(error, UnknownModelError):
        return bare or model == default_model
    return bare and isinstance(error, (ConfigurationError, InvalidRequestError))


class BatchGuard:
    """Shared by a batch's calls: one first call per model, and the error that stopped the batch."""

    def __init__(self) -> None:
        #: The error that stopped the batch (None while it runs).
        self.error: AutocontinueError | None = None
        #: The tasks whose call is out (they finish their round when the batch stops).
        self.calling: set[asyncio.Task[object]] = set()
        self._taken: set[str] = set()
        self._refused: dict[str, AutocontinueError] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def stop(self, error: AutocontinueError) -> None:
        """Stop the batch for ``error`` (the first such error is the one reported)."""
        if self.error is None:
            self.error = error

    def check(self) -> None:
        """Raise BatchStopped once the batch is stopped: no call starts after that."""
        if self.error is not None:
            raise BatchStopped(self.error.one_line())

    async def enter(self, model: str) -> bool:
        """Wait until a call on ``model`` may go; True if it is the model's first (the caller
        then holds the model's turn until ``taken``, ``refused`` or ``leave``)."""
        self.check()
        if model in self._taken:
            return False
        self._raise_refusal(model)
        lock = self._locks.setdefault(model, asyncio.Lock())
        await lock.acquire()
        try:
            self.check()
            self._raise_refusal(model)
        except BaseException:
            lock.release()
            raise
        if model in self._taken:
            lock.release()
            return False
        return True

    def taken(self, model: str) -> None:
        """The service took the first call on ``model``: the others may go."""
        self._taken.add(model)
        self.leave(model)

    def refused(self, model: str, error: AutocontinueError) -> None:
        """The first call on ``model`` failed with ``error``; the next waiting call goes first
        instead, unless the service does not know the model (then every later one fails so)."""
        if isinstance(error, UnknownModelError):
            self._refused[model] = error
        self.leave(model)

    def leave(self, model: str) -> None:
        lock = self._locks.get(model)
        if lock is not None and lock.locked():
            lock.release()

    def _raise_refusal(self, model: str) -> None:
        refusal = self._refused.get(model)
        if refusal is not None:
            again = copy.copy(refusal)  # each item gets its own (the engine attaches its text)
            again.partial = None
            raise again.with_traceback(None)
