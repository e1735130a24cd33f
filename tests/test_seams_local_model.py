"""Seams of the real local model (SmolLM2-135M through llama.cpp) in user-turn mode: no mocks.

Greedy SmolLM2, asked to continue, often rewrites its whole answer (the essay) or restarts
its code block (the class): the seams these prompts produce were read one by one (two are
in tests/fixtures/seams/real_*.json). Whatever the model does, nothing held may be lost and
no run may spend more than 3 rounds in a row without progress.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import autocontinue

pytest.importorskip("llama_cpp")

from autocontinue.backends.base import BackendDelta, BackendEvent, RoundRequest  # noqa: E402
from autocontinue.backends.local import LocalBackend  # noqa: E402

PROMPTS = (
    "Write a short essay about the history of bicycles.",
    "Write a Python class Rectangle with width, height, area and perimeter properties, with docstrings.",
)
#: Rounds in a row that add nothing, at most (issue 9: then the run stops "stalled").
MAX_IDLE = 3


class RecordingBackend(LocalBackend):
    """The real local backend; keeps each round's raw text (what the model sent)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.pieces: list[str] = []

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        self.pieces.append("")
        for event in super().stream_round(request):
            if isinstance(event, BackendDelta):
                self.pieces[-1] += event.text
            yield event


@pytest.mark.parametrize("prompt", PROMPTS, ids=["essay", "class"])
def test_real_model_user_turn_rounds_lose_no_held_word_and_never_spin(prompt):
    backend = RecordingBackend(seed=1)
    try:
        result = autocontinue.generate(
            prompt,
            backend=backend,
            strategy="user-turn",
            max_tokens_per_call=48,
            max_rounds=8,
            temperature=0,
            seed=1,
        )
    finally:
        backend.close()
    rounds = result.rounds
    assert len(backend.pieces) >= len(rounds) >= 2
    idle = worst = 0
    for report in rounds[1:]:
        idle = idle + 1 if report.chars == 0 else 0
        worst = max(worst, idle)
    assert worst <= MAX_IDLE, [(r.index, r.chars, r.seam.get("verdict")) for r in rounds]
    # A round that added nothing leaves the held word held: the next round is asked for it again.
    for before, after in zip(rounds[1:], rounds[2:]):
        if before.chars == 0 and before.seam.get("dropped_partial"):
            assert after.seam.get("dropped_partial") == before.seam["dropped_partial"]
    # And the answer never ends on a dropped word: a held word still held at the end is in the text.
    last = rounds[-1].seam.get("dropped_partial", "").strip()
    if rounds[-1].chars == 0 and last:
        assert result.text.rstrip().endswith(last)
