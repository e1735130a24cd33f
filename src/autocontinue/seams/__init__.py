"""Pure seam repair: where to cut before a continuation, and how to join the next piece.

The rule in one line: text is removed at a seam only when it is proven to be a repeat
(a verbatim overlap with the end of the text) or a preamble (a line that talks only about
continuing), and only in user-turn continuations; under prefill only the held whitespace is
restored. Each rule lives in its own module, whose docstring says what evidence it needs:

- ``cut``: ``split_for_continuation(text, strategy, max_partial=32, *, fragment=False) ->
  (base, held)``, graphemes.
- ``preamble``: continuation preambles and reopened fence/tag lines.
- ``echo``: verbatim suffix overlaps, decided by the held word.
- ``restart``: a piece that starts the answer or its section over (reported, not trimmed).
- ``markup``: ``cut_state``/``CutScanner``/``CutState``, what is open at the cut.
- ``repairer``: ``SeamRepairer(base_tail, held, strategy, *, window=ECHO_WINDOW, cut=None, head="")``
  with ``feed(delta) -> str`` and ``finish(*, capped=False) -> str``, and ``join_piece``. The
  output does not depend on how the piece is split into deltas.
- ``report``: ``SeamReport`` with a typed ``verdict``, ``unresolved`` and ``restart``.
"""

from __future__ import annotations

from .cut import STRATEGIES, is_grapheme_boundary, split_for_continuation
from .echo import ECHO_WINDOW
from .markup import LONG_LINE, CutScanner, CutState, _apply_line, cut_state
from .preamble import MAX_PREAMBLE
from .repairer import SeamRepairer, join_piece
from .report import VERDICTS, SeamReport, Verdict

__all__ = [
    "ECHO_WINDOW",
    "LONG_LINE",
    "MAX_PREAMBLE",
    "STRATEGIES",
    "VERDICTS",
    "CutScanner",
    "CutState",
    "SeamRepairer",
    "SeamReport",
    "Verdict",
    "cut_state",
    "is_grapheme_boundary",
    "join_piece",
    "split_for_continuation",
]

_ = _apply_line  # re-exported for tests that compare against a plain line-by-line scan
