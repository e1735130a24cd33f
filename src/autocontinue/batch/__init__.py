"""Many answers at once: ``batch`` / ``abatch``, concurrent, rate-limit aware and resumable.

Every item of a batch is an ordinary run in the journal, under one batch id. Live batches run
items concurrently on one shared client, paced by the service's rate limits (``pacing.py``,
``live.py``); ``via="batches"`` sends every round of every item through Anthropic's Message
Batches at half price (``service.py``). Where things are: ``items.py`` (reading the input),
``output.py`` (the output lines), ``store.py`` (the batch tables of the journal),
``progress.py`` (the progress figures), ``runner.py`` (the flow), ``models.py`` (what
batches change about a model).
"""

from __future__ import annotations

from .items import BadLine, BatchItem
from .output import ItemResult
from .runner import BatchResult, abatch, batch

__all__ = ["batch", "abatch", "BatchResult", "BatchItem", "BadLine", "ItemResult"]
