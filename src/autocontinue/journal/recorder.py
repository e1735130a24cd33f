"""``RunRecorder``: the listener on one run's engine events that keeps its journal entry current."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import JournalError
from ..events import Checkpoint, Finished, RoundFinished, RoundReport, RoundStarted, TextDelta
from ..usage import Usage
from .records import RunRecord
from .store import Journal

__all__ = ["RunRecorder", "RESUMABLE_STOPS"]

#: Stop reasons after which the run stays resumable (rounds in a row added no text).
RESUMABLE_STOPS = frozenset({"stalled"})


class RunRecorder:
    """A listener on one run's events that keeps its journal entry current.

    Text deltas are collected in memory; a background thread commits a checkpoint every
    ``interval`` seconds while new text arrives, and every round end commits the round with
    its checkpoint at once. ``stop()`` writes the last checkpoint and the final state, and a
    round cut short by the interruption as a round of its own (stop reason "interrupted",
    output tokens estimated from its text: the service bills what it streamed), so that a run
    resumed any number of times reports the rounds and tokens of every process that worked
    on it, and the resumed rounds are numbered after it.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        backend: str,
        model: str,
        request: dict[str, Any],
        output: str | None = None,
        run_id: str | None = None,
        text: str = "",
        held: str = "",
        interval: float = 0.5,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self._new_run: dict[str, Any] = dict(backend=backend, model=model, request=request, output=output)
        #: Rounds this process finished (a run ended before its first one may be discarded).
        self.rounds_finished = 0
        #: True if ``start()`` creates the run (False: it continues one already journaled).
        self.new_run = run_id is None
        self._round: RoundStarted | None = None
        self._round_chars = 0
        #: False once a round said its model has no known prices.
        self._costs_known = True
        self._interval = interval
        self._parts = [text] if text else []
        self._held = held
        self._dirty = False
        self._parts_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: JournalError | None = None

    @classmethod
    def resuming(
        cls, journal: Journal, record: RunRecord, checkpoint: Checkpoint | None, *, interval: float = 0.5
    ) -> RunRecorder:
        """A recorder that continues the journaled run ``record`` from ``checkpoint`` (its
        backend, model and request as journaled; no checkpoint: from no text)."""
        start = checkpoint or Checkpoint(text="")
        return cls(
            journal,
            backend=record.backend,
            model=record.model,
            request=record.request,
            run_id=record.id,
            text=start.text,
            held=start.held,
            interval=interval,
        )

    def start(self) -> str:
        """Create the run (or claim a resumed one) and start the checkpoint thread.

        Claiming refuses, with RunBusyError, a run another live process is working on.
        """
        if self.run_id is None:
            self.run_id = self.journal.start_run(**self._new_run)
        else:
            self.journal.claim_run(self.run_id)
        self._thread = threading.Thread(target=self._flush_loop, name="autocontinue-checkpoint", daemon=True)
        self._thread.start()
        return self.run_id

    def on_event(self, event: object) -> None:
        """Feed every event of the run here, in order."""
        if self._failure is not None:
            raise self._failure
        if isinstance(event, RoundStarted):
            self._round, self._round_chars = event, 0
        elif isinstance(event, TextDelta):
            self._round_chars += len(event.text)
            with self._parts_lock:
                self._parts.append(event.text)
                self._held = event.held
                self._dirty = True
        elif isinstance(event, RoundFinished):
            with self._write_lock:
                text, held = self._snapshot()
                self.journal.record_round(self._id(), event.report, text, held)
                self.rounds_finished += 1
                self._costs_known = self._costs_known and event.report.cost_known
                self._round = None
        elif isinstance(event, Finished):
            self._stop_thread()
            with self._write_lock:
                state = "interrupted" if event.result.stop_reason in RESUMABLE_STOPS else "finished"
                self.journal.finish_run(self._id(), event.result, state=state)
                self._dirty = False

    def stop(self, state: str, *, error: str | None = None) -> None:
        """Write the last checkpoint and leave the run in ``state`` (failed, interrupted...)."""
        if self.run_id is None:
            return
        self._stop_thread()
        cut = self._cut_round()
        if cut is not None:
            with self._write_lock:
                text, held = self._snapshot()
                self.journal.record_round(self.run_id, cut, text, held)
        else:
            self.flush()
        self.journal.set_state(self.run_id, state, error=error)

    def _cut_round(self) -> RoundReport | None:
        """The round in flight when the run stopped, if it had added text."""
        if self._round is None or self._round_chars == 0:
            return None
        usage = Usage(output_tokens=max(1, round(self._round_chars / 4)))
        cost = self._price(usage)
        return RoundReport(
            index=self._round.index,
            strategy=self._round.strategy,
            max_tokens=self._round.max_tokens,
            stop_reason="interrupted",
            usage=usage,
            chars=self._round_chars,
            cost_usd=cost or 0.0,
            cost_known=cost is not None,
            seam={"notes": ["cut short when the run stopped; output tokens estimated from its text"]},
        )

    def _price(self, usage: Usage) -> float | None:
        """The cut round's estimated cost; None when no price is known (the rounds before said
        so, or the model is not in the catalogue)."""
        from ..catalogue import lookup_model

        if self._new_run["backend"] == "local":
            return 0.0
        if not self._costs_known:
            return None
        try:
            return float(lookup_model(str(self._new_run["model"])).cost(usage))
        except Exception:  # noqa: BLE001 - an unknown model: no price to estimate
            return None

    def discard(self) -> None:
        """Delete the run from the journal (it produced nothing worth resuming)."""
        if self.run_id is None:
            return
        self._stop_thread()
        self.journal.delete_run(self.run_id)

    def flush(self) -> None:
        """Commit the checkpoint now if text arrived since the last one."""
        with self._write_lock:
            if not self._dirty:
                return
            text, held = self._snapshot()
            self.journal.save_checkpoint(self._id(), text, held)

    @property
    def text(self) -> str:
        with self._parts_lock:
            return "".join(self._parts)

    def _snapshot(self) -> tuple[str, str]:
        with self._parts_lock:
            text = "".join(self._parts)
            self._parts = [text]
            self._dirty = False
            return text, self._held

    def _flush_loop(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.flush()
            except JournalError as exc:
                self._failure = exc
                return

    def _stop_thread(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("RunRecorder.start() was not called")
        return self.run_id
