"""Pure seam repair: where to cut before a continuation, and how to join the next piece.

CONTRACT (the engine depends on these names and meanings; the implementation is pending):

- ``split_for_continuation(text, strategy, max_partial=32) -> (base, held)``: ``base + held ==
  text``. ``base`` is what is safe to emit now and what the next round sends as the assistant
  turn; it never ends in whitespace. For "prefill", ``held`` is the trailing whitespace. For
  "user-turn", ``held`` is the last whitespace run plus the partial word after it (so the half
  word is regenerated), unless that partial word is longer than ``max_partial`` characters
  (CJK, long code tokens), in which case only trailing whitespace is held. Never splits a
  grapheme (combining mark, ZWJ sequence, variation selector, surrogate).
- ``SeamRepairer(base_tail, held, strategy)``: streaming repair of one new piece that follows
  ``base`` (only its last ``ECHO_WINDOW`` characters are given, so cost does not grow with
  the text). ``feed(delta) -> str`` returns text that is safe to emit; ``finish() -> str``
  the rest. ``report`` is a SeamReport, complete after ``finish()``.
- ``join_piece(base_tail, held, piece, strategy) -> (text_to_append, SeamReport)``.
- ``cut_state(text) -> CutState``: open code fence and open XML-like tags at the end of text.
"""

from __future__ import annotations
