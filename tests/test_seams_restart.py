"""The restart check as pure functions, and the repairer holding a user-turn piece for it."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocontinue.seams import SeamRepairer, join_piece
from autocontinue.seams.restart import could_restart, is_restart, restart_confirmed, restart_ruled_out

FAST = settings(
    max_examples=int(os.environ.get("SEAMS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Few words, so that openings often match the head or the heading for a while, then differ.
WORDS = ["The", "river", "was", "quiet", "that", "morning", "##", "Results", "la", "|", "a"]
GAPS = [" ", " ", "\n", "\n\n", ""]
HEAD = "The river was quiet that morning, and the fog lay low over the water."
TAIL = "## Results\n\nThe first test ran for an hour and the second one failed at once. Then"


@st.composite
def texts(draw, max_words=14):
    words = draw(st.lists(st.sampled_from(WORDS), max_size=max_words))
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=len(words), max_size=len(words)))
    return "".join(w + g for w, g in zip(words, gaps))


@FAST
@given(
    kept=texts(),
    more=texts(),
    head=st.sampled_from([HEAD, "```python\nThe river was quiet that", "la la la la\n| a |", ""]),
    tail=st.sampled_from([TAIL, "## Results\n\n", "some text and then", "# Results\nla la\n"]),
    line_start=st.booleans(),
    reopened=st.booleans(),
)
def test_a_verdict_decided_early_holds_however_the_opening_goes_on(
    kept, more, head, tail, line_start, reopened
):
    evidence = {"line_start": line_start, "reopened": reopened}
    if restart_ruled_out(kept, tail, head, **evidence):
        assert not is_restart(kept + more, tail, head, **evidence)
    if restart_confirmed(kept, tail, head, **evidence):
        assert is_restart(kept + more, tail, head, **evidence)


def test_the_answers_opening_again_mid_line_is_a_restart():
    assert is_restart("The river was quiet that morning, and", "the fog lay on the", HEAD)
    # ...after a short first line of the answer (a fence, a tag) the piece lost
    assert is_restart("The river was quiet that", "x = 1", "```python\nThe river was quiet that morning")


def test_at_a_line_start_only_a_reopening_makes_the_answers_opening_a_restart():
    refrain = "Oh la la, we sing all night long,\nla la la, the night is young.\n"
    again = "Oh la la, we sing all night long,\nla la"
    assert not is_restart(again, "Verse 1: the river runs.\n", refrain)
    assert not is_restart(again, "Verse 1: the river runs.", refrain, line_start=True)
    assert is_restart(again, "Verse 1: the river runs.\n", refrain, reopened=True)


def test_the_first_words_of_the_answer_skipped_only_when_they_are_a_line_of_their_own():
    # "la la, we sing" is the refrain without its first word, not the answer after a fence.
    assert not is_restart("la la, we sing all night long", "Oh", "Oh la la, we sing all night long,")


def test_a_section_restart_repeats_the_heading_and_its_first_words():
    assert is_restart("## Results\n\nThe first test ran", TAIL, "")
    assert not is_restart("## Results\n\nA second table of results", TAIL, "")  # a new section
    assert is_restart("## Results\n\n", "text\n## Results\n\n", "")  # nothing written under it yet


def test_no_restart_is_possible_without_a_head_or_a_heading():
    assert not could_restart("some text", "a b c")
    assert could_restart("some text", HEAD) and could_restart(TAIL, "")


def _first_output(repairer: SeamRepairer, piece: str, step: int = 3) -> int | None:
    """Where in ``piece`` the repairer first lets text out (None: not before ``finish``)."""
    for i in range(0, len(piece), step):
        if repairer.feed(piece[i : i + step]):
            return i + step
    return None


def test_a_user_turn_piece_is_held_until_a_restart_is_ruled_out():
    base = HEAD + " We walked along the bank until the"
    repairer = SeamRepairer(base, " path", "user-turn", head=HEAD, window=40)
    piece = " path turned away from the river and climbed into the woods."
    assert _first_output(repairer, piece) <= 12  # released as soon as the opening differs


def test_a_restarted_piece_is_flagged_before_any_of_it_is_let_out():
    base = "x " * 300 + HEAD + " We walked along the bank until the"
    piece = HEAD + " We walked along the bank."
    for step in (1, 3, 7, len(piece)):
        repairer = SeamRepairer(base[-100:], " path", "user-turn", head=HEAD)
        for i in range(0, len(piece), step):
            if repairer.feed(piece[i : i + step]):
                break  # the first text let out...
        assert repairer.report.restart, step  # ...comes with the flag: the engine throws it away
    assert join_piece(base[-100:], " path", piece, "user-turn", head=HEAD)[1].restart


def test_a_restart_is_reported_as_soon_as_the_answers_first_words_are_all_there():
    base = "x " * 300 + "and then the"
    repairer = SeamRepairer(base[-100:], " path", "user-turn", head=HEAD)
    piece = HEAD + " " + "More words follow here, " * 20
    for i in range(0, len(piece), 3):
        repairer.feed(piece[i : i + 3])
        if repairer.report.restart:
            break
    # Flagged with the first text let out (the preamble rule holds the first sentence), far
    # before the 400 characters or the line break that would settle it otherwise.
    assert repairer.report.restart and i < len(HEAD) + 3


def test_prefill_pieces_are_never_held():
    repairer = SeamRepairer(HEAD, "", "prefill", head=HEAD)
    assert repairer.feed(" The river was") == " The river was"
