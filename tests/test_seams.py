"""Seam repair: the cut before a continuation and the join after it (pure, no I/O)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autocontinue.errors import ConfigurationError
from autocontinue.seams import (
    ECHO_WINDOW,
    CutScanner,
    CutState,
    SeamRepairer,
    SeamReport,
    cut_state,
    is_grapheme_boundary,
    join_piece,
    split_for_continuation,
)

STRATEGIES = ("prefill", "user-turn")
#: SEAMS_EXAMPLES=3000 for a deeper search (minutes); the default keeps the file well under a minute.
FAST = settings(
    max_examples=int(os.environ.get("SEAMS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _stream(
    base_tail: str,
    held: str,
    pieces: list[str],
    strategy: str,
    cut: CutState | None = None,
    capped: bool = False,
) -> tuple[str, list[str], SeamReport]:
    repairer = SeamRepairer(base_tail, held, strategy, cut=cut)
    outputs = [repairer.feed(piece) for piece in pieces]
    outputs.append(repairer.finish(capped=capped))
    return "".join(outputs), outputs, repairer.report


def _continue(text_so_far: str, piece: str, strategy: str) -> str:
    """What the engine does: cut, send base, repair the piece, append."""
    base, held = split_for_continuation(text_so_far, strategy)
    out, _ = join_piece(base[-ECHO_WINDOW:], held, piece, strategy)
    return base + out


# ----------------------------------------------------------------------------- the cut


def test_prefill_holds_back_only_trailing_whitespace():
    assert split_for_continuation("One para.\n\n", "prefill") == ("One para.", "\n\n")
    assert split_for_continuation("the quick bro", "prefill") == ("the quick bro", "")


def test_user_turn_holds_back_whitespace_and_partial_word():
    assert split_for_continuation("the quick bro", "user-turn") == ("the quick", " bro")
    assert split_for_continuation("end.\n\nNe", "user-turn") == ("end.", "\n\nNe")


def test_user_turn_text_ending_in_whitespace_holds_the_last_word_too():
    # A cut inside a whitespace run cannot tell how much of the run is missing, so the last
    # word is regenerated with the whole run after it.
    assert split_for_continuation("the quick ", "user-turn") == ("the", " quick ")
    assert split_for_continuation("x = 1\n", "user-turn") == ("x =", " 1\n")


def test_user_turn_long_partial_word_is_kept_in_base():
    token = "x" * 40
    assert split_for_continuation("see " + token, "user-turn") == ("see " + token, "")
    assert split_for_continuation("see " + token, "user-turn", max_partial=40) == ("see", " " + token)


def test_user_turn_single_word_text_is_not_emptied():
    assert split_for_continuation("Hello", "user-turn") == ("Hello", "")
    assert split_for_continuation("  Hello", "user-turn") == ("  Hello", "")


def test_all_whitespace_text_is_all_held():
    assert split_for_continuation(" \n", "user-turn") == ("", " \n")


def test_unknown_strategy_is_refused_with_a_hint():
    with pytest.raises(ConfigurationError) as info:
        split_for_continuation("x", "assistant")
    assert "prefill" in info.value.hint
    with pytest.raises(ConfigurationError):
        SeamRepairer("x", "", "auto")


TRICKY = st.sampled_from(
    [
        "a",
        "b",
        "Z",
        "é",
        "e\u0301",
        "\u0301",
        "\u200d",
        "👩",
        "💻",
        "\ufe0f",
        "🏽",
        "🇫",
        "🇷",
        " ",
        "\n",
        "\t",
        "\r\n",
        ".",
        "日",
    ]
)


@FAST
@given(st.lists(TRICKY, max_size=30).map("".join), st.sampled_from(STRATEGIES), st.integers(0, 6))
def test_split_keeps_text_and_never_splits_a_grapheme(text, strategy, max_partial):
    base, held = split_for_continuation(text, strategy, max_partial)
    assert base + held == text
    assert not base[-1:].isspace()
    assert is_grapheme_boundary(text, len(base))
    if held and not held[0].isspace():
        raise AssertionError(f"held {held!r} must open with whitespace")


# ----------------------------------------------------------------------------- examples of joins


def test_prefill_restores_held_paragraph_break():
    out, report = join_piece("para.", "\n\n", "Next", "prefill")
    assert out == "\n\nNext"
    assert report.restored_whitespace == "\n\n"


def test_piece_that_brings_its_own_whitespace_keeps_it():
    out, report = join_piece("para.", "\n\n", "\nNext", "prefill")
    assert out == "\nNext"
    assert report.restored_whitespace == ""


def test_prefill_is_trusted_nothing_looking_like_an_echo_is_trimmed():
    # A model continuing its own turn does not echo it: "quick brown" after "the quick bro"
    # is what it wrote (the emulator's echo quirk applies to user-turn continuations only).
    out, report = join_piece("...the quick bro", "", "quick brown fox", "prefill")
    assert (out, report.trimmed_echo, report.verdict) == ("quick brown fox", "", "new")
    assert join_piece("the lazy", "", "lazy dog", "prefill")[0] == "lazy dog"
    assert join_piece("end.", "\n\n", "end. More", "prefill")[0] == "\n\nend. More"


def test_user_turn_one_word_echo_is_trimmed():
    out, report = join_piece("...the quick", " bro", "quick brown fox", "user-turn")
    assert out == " brown fox"
    assert report.trimmed_echo == "quick"
    assert report.dropped_partial == "bro"


def test_user_turn_whole_sentence_echo_is_trimmed():
    base = "It was late. The fox slept under the old oak tree."
    out, report = join_piece(
        base, "\n\nThe", "The fox slept under the old oak tree.\n\nThe morning came.", "user-turn"
    )
    assert out == "\n\nThe morning came."
    assert report.trimmed_echo == "The fox slept under the old oak tree."
    assert "repeated the last 8 words" in report.notes[-1]


def test_user_turn_dropped_space_is_restored():
    out, report = join_piece("...the quick", " bro", "brown fox", "user-turn")
    assert out == " brown fox"
    assert report.restored_whitespace == " "


def test_echo_of_a_word_that_goes_on_is_not_trimmed_after_a_word_end():
    # "quickly" is not a repeat of "quick": the text ended at a word end.
    assert join_piece("the quick", " ", "quickly ran", "prefill")[0] == " quickly ran"


def test_whitespace_led_single_word_repeat_is_kept_as_new_text():
    out, report = join_piece("jumped over the", "", " the lazy dog", "prefill")
    assert out == " the lazy dog"
    assert report.trimmed_echo == ""


def test_whitespace_led_repeat_followed_by_the_held_word_is_trimmed():
    out, report = join_piece("jumped over the lazy", " dog", " the lazy dog", "user-turn")
    # Nothing beyond the held word itself came back: the round made no progress.
    assert (out, report.trimmed_echo, report.verdict) == (" dog", "the lazy", "nothing-new")
    assert join_piece("jumped over the lazy", " dog", " the lazy dog ran", "user-turn")[1].verdict == "echo"


def test_match_that_does_not_start_at_a_word_start_is_kept():
    assert join_piece("the cat", "", "at the door", "prefill")[0] == "at the door"


def test_punctuation_repeat_after_whitespace_is_kept():
    assert join_piece("(a b) --", "", " -- c", "prefill")[0] == " -- c"


def test_prefill_keeps_punctuation_that_repeats_the_last_token():
    # "<" + "<story_2>" may be a glitch, but under prefill nothing is trimmed without proof.
    assert join_piece("</story_1>\n\n<", "", "<story_2>\nText", "prefill")[0] == "<story_2>\nText"
    assert join_piece("total = value * 3 +", "", "+ 5", "prefill")[0] == "+ 5"
    assert join_piece("river·4 —", "", "— stone·5", "prefill")[0] == "— stone·5"


def test_user_turn_repeated_dash_word_is_trimmed():
    assert join_piece("river·4 —", " stone·5", "— stone·5", "user-turn")[0] == " stone·5"


def test_repeated_punctuation_is_trimmed_when_the_held_word_follows_it():
    # user-turn: the model was asked to regenerate "permissio"; it comes right after the "|".
    out, report = join_piece("| 403 |", " permissio", "| permission_error |", "user-turn")
    assert out == " permission_error |"
    assert report.trimmed_echo == "|"


def test_markdown_mark_at_a_line_start_is_kept():
    # "#" + "# Title" is as likely "## Title" as a repeat.
    assert join_piece("Intro.\n\n#", "", "# What we measured", "prefill")[0] == "# What we measured"


def test_punctuation_run_that_goes_on_is_kept():
    # A table rule cut inside: "|------" + "|-----------|" is the rule going on.
    assert join_piece("| a |\n|------", "", "|-----------|\n| b |", "prefill")[0] == "|-----------|\n| b |"


def test_backtick_that_completes_a_code_fence_is_not_taken_for_a_repeat():
    assert join_piece("Done.\n\n`", "", "``python\nx = 1", "prefill")[0] == "``python\nx = 1"
    assert join_piece("Done.\n\n``", "", "```\n</story_1>", "prefill")[0] == "```\n</story_1>"


def test_word_repeated_in_the_text_itself_is_kept_when_the_held_word_follows():
    # "very very": the model regenerates the held "ve" as "very", so nothing is an echo.
    assert join_piece("it was very", " ve", "very good", "user-turn")[0] == " very good"


def test_closing_punctuation_gets_no_restored_space():
    assert join_piece("He said hello", " ", ", then left.", "prefill")[0] == ", then left."


def test_combining_mark_at_piece_start_stays_with_the_text_before():
    assert join_piece("caf", " ", "\u0301 au lait", "prefill")[0] == "\u0301 au lait"


def test_echo_of_a_text_cut_inside_an_emoji_sequence_joins_back_exactly():
    text = "code 👩\u200d💻 done"
    base, held = split_for_continuation(text[: text.index("\u200d") + 1], "user-turn")
    assert base + join_piece(base, held, "code 👩\u200d💻 done", "user-turn")[0] == text


def test_piece_that_ends_inside_a_possible_repeat_is_kept_and_unresolved():
    # "ran over the old sto" may be the start of an echo of "ran over the old stone bridge",
    # or the answer going on: no evidence either way, so the text is kept and the engine told.
    out, report = join_piece(
        "the fox ran over the old stone bridge", " the", "ran over the old sto", "user-turn", capped=True
    )
    assert out == " ran over the old sto"
    assert (report.unresolved, report.verdict, report.trimmed_echo) == (True, "unresolved", "")


def test_capped_piece_that_repeats_an_earlier_stretch_is_kept():
    base = "lighthouse·191 window·192 island·193 forest·194"
    out, report = join_piece(base, " it·", "lighthouse·191", "user-turn", capped=True)
    assert (out, report.unresolved) == (" lighthouse·191", True)
    out, report = join_piece(base, " it·", "lighthouse·191", "user-turn")
    assert (out, report.unresolved, report.verdict) == (" lighthouse·191", False, "new")


def test_short_piece_that_matches_the_start_of_earlier_words_is_new_text():
    assert join_piece("<story_3>\nOrchard·336 saffron·341.\n</", "", "story_3>", "prefill")[0] == "story_3>"
    assert join_piece("the end of the road. We walked", " ", "the end", "prefill")[0] == " the end"


def test_longest_repeat_is_trimmed():
    base = "the cat sat. the cat"
    assert join_piece(base, " ran", "the cat sat. the cat ran", "user-turn")[0] == " ran"


def test_repairer_ignores_text_beyond_the_window():
    words = " ".join(f"w{i}" for i in range(1000))
    piece = words + " next"  # a repeat of the whole text, longer than the window
    far, _ = join_piece(words, "", piece, "prefill")
    near, _ = join_piece(words[-ECHO_WINDOW:], "", piece, "prefill")
    assert far == near == piece  # no word start inside the window matches the piece's start


PREAMBLES = [
    # Wordings real models use; several are not spelled out anywhere in seams.py.
    "Sure, continuing where I left off:",
    "Certainly! Continuing from where I left off:",
    "Here is the continuation:",
    "Continuing:",
    "Here's the rest:",
    "Okay, picking up where I stopped:",
    "**Continuing:**",
    "Alright, here is the remainder of the text:",
    "No problem! Resuming:",
    "Got it. I'll carry on from exactly where the answer stopped:",
    "As requested, the rest of the story:",
    "Apologies for the interruption. Continuing the response:",
    "[Continuing from where I left off]",
    "(continued)",
    "Continuing...",
    "Absolutely — picking it back up right where I stopped:",
    "Of course! Here's the continuation of the essay.",
    "Let me continue seamlessly:",
    "Resuming exactly where the previous message ended:",
    "Of course. Picking up exactly where the text stopped:",
    "Sure thing, I can do that. Continuing:",
    'Continuing from "jumped over the lazy":',
    "Picking up mid-sentence:",
    "Sure — here's where it continues:",
    "Here you go:",
]


@pytest.mark.parametrize("preamble", PREAMBLES)
@pytest.mark.parametrize("gap", ["\n\n", "\n", " "])
def test_continuation_preamble_is_removed(preamble, gap):
    out, report = join_piece("...the quick", " bro", preamble + gap + "quick brown fox", "user-turn")
    assert out == " brown fox"
    assert report.trimmed_preamble == preamble + gap


def test_preamble_then_plain_continuation_gets_whitespace_restored():
    out, report = join_piece("end.", "\n\nNe", "Here is the continuation:\n\nNext para.", "user-turn")
    assert out == "\n\nNext para."
    assert report.restored_whitespace == "\n\n"


def test_preamble_on_its_own_line_after_an_opener_line_is_removed():
    assert join_piece("the quick", " bro", "Sure!\nContinuing:\n\nbrown fox", "user-turn")[0] == " brown fox"


GENUINE_OPENINGS = [
    "## Continuing Education\n\nThe program runs all year.",
    "The rest of the ingredients:\n- flour\n- salt",
    "Continuing the tradition, the family gathered.",
    "Continuing the tradition. The family gathered.",
    "Resume writing is an art. Start with a draft.",
    "She left off the lid. Then the soup boiled over.",
    "He continued where she left off. The crowd cheered.",
    "Pick up the phone and call her.",
    "Sure enough, the fox ran away.",
    "Okay was all he said.",
    "Here is what happened next: the fox ran.",
    "Continuing Professional Development:\nCourses start in May.",
    "Continued on page 4.",
    "Here's the rest of the recipe:\nbake it.",
    "Continuing education matters:\nit keeps skills fresh.",
    "**Chapter 2: Continuing On**\n\nThe road was long.",
    "I left off the part about the fox. It was too long.",
    "Shall I continue?\nThe fox ran.",
    "continue from it.\n\nReal recordings follow.",
    "to continue is to\nsend the text back.",
]


@pytest.mark.parametrize("opening", GENUINE_OPENINGS)
def test_genuine_opening_is_not_taken_for_a_preamble(opening):
    out, report = join_piece("The story so far.", "\n\n", opening, "user-turn")
    assert out == "\n\n" + opening
    assert report.trimmed_preamble == ""


def test_leading_ellipsis_before_a_repeat_is_trimmed_with_it():
    assert join_piece("Text and the quick", " bro", "...quick brown", "user-turn")[0] == " brown"
    assert join_piece("Text and the quick", " bro", "\u2026the quick brown", "user-turn")[0] == " brown"


def test_leading_ellipsis_without_a_repeat_is_kept():
    assert join_piece("He paused", " th", "... then spoke", "user-turn")[0] == "... then spoke"


def test_reopened_code_fence_is_removed_and_the_line_break_restored():
    cut = cut_state("Text\n```python\ndef f(x):\n    x = 1")
    piece = "Continuing:\n\n```python\n    return x\n```\nDone."
    out, report = join_piece("x = 1", "\n    re", piece, "user-turn", cut=cut)
    assert out == "\n    return x\n```\nDone."
    assert report.trimmed_preamble == "Continuing:\n\n```python\n"
    assert report.cut == cut


def test_bare_fence_reopens_only_where_a_half_word_was_expected():
    cut = cut_state("```\nx = 1")
    assert join_piece("x = 1", "\n    re", "```\n    return x", "user-turn", cut=cut)[0] == "\n    return x"
    # Cut at a line end with nothing held to regenerate: a bare fence may close the block.
    assert join_piece("x = 1", "\n", "```\nDone.", "user-turn", cut=cut)[0] == "\n```\nDone."


def test_reopened_tag_is_removed():
    cut = cut_state("<story_3>\nText and the quick")
    out, report = join_piece("Text and the quick", " bro", "<story_3>\nquick brown", "user-turn", cut=cut)
    assert out == " brown"
    assert report.trimmed_preamble == "<story_3>\n"


def test_fence_and_tag_lines_are_kept_without_a_cut_state():
    assert (
        join_piece("x = 1", "\n    re", "```python\n    return x", "user-turn")[0]
        == "\n    ```python\n    return x"
    )


def test_preamble_is_not_removed_in_prefill():
    assert join_piece("end.", "\n\n", "Continuing:\n\nNext", "prefill")[0] == "\n\nContinuing:\n\nNext"


def test_report_says_why_and_serialises():
    out, report = join_piece("Tail of the text.", " Ne", "Continuing:\n\nNext words", "user-turn")
    assert out == " Next words"
    data = report.to_dict()
    json.dumps(data)
    assert data["strategy"] == "user-turn"
    assert data["dropped_partial"] == "Ne"
    assert any("partial word 'Ne'" in note for note in data["notes"])
    assert any("preamble 'Continuing:'" in note for note in data["notes"])
    assert any("restored 1 chars" in note for note in data["notes"])


# ----------------------------------------------------------------------------- streaming


def test_repairer_emits_at_once_when_the_first_chars_rule_out_repair():
    repairer = SeamRepairer("The fox. The quick", " bro", "user-turn")
    assert repairer.feed(" zebra") == " zebra"  # whitespace first: no preamble; no word starts with "z"
    assert repairer.feed(" runs") == " runs"


def test_repairer_emits_a_plain_first_sentence_once_it_ends():
    repairer = SeamRepairer("The fox. The quick", " bro", "user-turn")
    assert repairer.feed("brown fox jumps over the dog.") == ""  # could still open a preamble
    assert repairer.feed(" Then") == " brown fox jumps over the dog. Then"


def test_repairer_holds_a_possible_echo_until_it_diverges():
    repairer = SeamRepairer("...the quick brown", " fox", "user-turn")
    assert repairer.feed("quick br") == ""
    assert repairer.feed("own fox. Then") == " fox. Then"
    assert repairer.report.trimmed_echo == "quick brown"


def test_prefill_repairer_emits_at_once():
    repairer = SeamRepairer("...the quick brown", "", "prefill")
    assert repairer.feed("quick br") == "quick br"


def test_feed_after_finish_is_refused():
    repairer = SeamRepairer("x", "", "prefill")
    repairer.finish()
    with pytest.raises(ValueError):
        repairer.feed("y")


# ----------------------------------------------------------------------------- properties

ATOMS = [
    "river",
    "stone",
    "a",
    "I",
    "café",
    "naïve",
    "日本",
    "🌊",
    "e\u0301clair",
    "👩\u200d💻",
    "🇫🇷",
    "Ωmega",
    "über",
]
SEPARATORS = [" ", " ", " ", " ", "\n", "\n\n", "  ", "\t"]
PUNCT = ["", "", "", ",", ".", "!", ":", ";", "?"]


@st.composite
def answers(draw, max_words=40):
    """Prose whose words are numbered, like the emulator's, so no word repeats by chance."""
    count = draw(st.integers(1, max_words))
    parts = []
    for index in range(count):
        parts.append(draw(st.sampled_from(ATOMS)) + str(index) + draw(st.sampled_from(PUNCT)))
        parts.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(parts[:-1])


def _last_words(text: str, count: int) -> str:
    starts = [i for i in range(len(text)) if not text[i].isspace() and (i == 0 or text[i - 1].isspace())]
    return text[starts[-min(count, len(starts))] :] if starts else ""


@st.composite
def model_pieces(draw):
    """(answer, cut, strategy, piece): what a quirky model sends to continue answer[:cut]."""
    text = draw(answers())
    cut = draw(st.integers(1, len(text)))
    assume(cut == len(text) or not text[cut].isspace())  # a model that drops a space drops the whole run
    strategy = draw(st.sampled_from(STRATEGIES))
    base, held = split_for_continuation(text[:cut], strategy)
    rest = text[len(base) :]
    # Echoes are user-turn only, and need a held word to tell them from the answer going on.
    echo_words = draw(st.integers(0, 4)) if strategy == "user-turn" and held.strip() else 0
    piece = rest
    if echo_words and base:
        piece = _last_words(base, echo_words) + rest
    elif draw(st.booleans()):
        piece = rest.lstrip() if rest.strip() else rest
    if strategy == "user-turn" and draw(st.booleans()):
        piece = draw(st.sampled_from(PREAMBLES)) + draw(st.sampled_from(["\n\n", "\n", " "])) + piece
    return text, cut, strategy, piece


@FAST
@given(model_pieces())
def test_quirky_model_continuation_joins_to_the_exact_answer(case):
    text, cut, strategy, piece = case
    assert _continue(text[:cut], piece, strategy) == text


NATURAL = """# Field notes

The river was quiet that morning. We walked along the bank, and the water was so clear that
we could see the stones on the bottom. "Look," she said, "the fish are back." It was true:
small silver fish moved between the stones, and the light moved with them.

## What we measured

| site | depth (m) | temperature (°C) | notes |
|------|-----------|------------------|-------|
| A    | 1.2       | 14.5             | clear, fast |
| B    | 0.8       | 15.1             | weeds — slow |

- Depth was measured at noon, twice.
- Temperature was read from the same probe, *after* it settled.
- Café owners near site B said the water had been higher in spring.

```python
def mean(values):
    \"\"\"The mean of a list of numbers.\"\"\"
    return sum(values) / len(values)
```

Afterwards we wrote it all down in the notebook. The notebook is blue, and its pages are
numbered; page 12 has the map. Naïve as it sounds, the map was the most useful thing we made:
it showed where the bank was steep, where the path turned, and where the old bridge had been.
日本語のメモもある。 🌊 Then the rain came, and we went home.
"""


@FAST
@given(st.integers(1, len(NATURAL) - 1), st.sampled_from(STRATEGIES), st.data())
def test_quirky_continuation_of_natural_text_joins_exactly(cut, strategy, data):
    # Real prose, a table and code, where words do repeat ("the", "was", "|"); the repeated
    # tail always holds a word (a lone "|" or "=" repeated after a prefill is ambiguous).
    base, held = split_for_continuation(NATURAL[:cut], strategy)
    assume(not NATURAL[cut].isspace() or (strategy == "user-turn" and held.strip()))
    rest = NATURAL[len(base) :]
    quirks = ["exact", "echo", "drop-space", "preamble"] if strategy == "user-turn" else ["exact"]
    quirk = data.draw(st.sampled_from(quirks))
    piece = {"exact": rest, "drop-space": rest.lstrip(), "preamble": None, "echo": None}[quirk]
    if quirk == "echo":
        echo = _last_words(base, data.draw(st.integers(1, 4)))
        assume(any(ch.isalnum() for ch in echo))
        piece = echo + rest
    elif quirk == "preamble":
        piece = data.draw(st.sampled_from(PREAMBLES)) + "\n\n" + rest.lstrip()
    out, _ = join_piece(base[-ECHO_WINDOW:], held, piece, strategy, cut=cut_state(base))
    assert base + out == NATURAL


@FAST
@given(model_pieces(), st.lists(st.integers(0, 400), max_size=8))
def test_streaming_gives_the_same_text_as_a_one_shot_join(case, splits):
    text, cut, strategy, piece = case
    base, held = split_for_continuation(text[:cut], strategy)
    whole, report = join_piece(base, held, piece, strategy)
    bounds = sorted({0, len(piece), *(s % (len(piece) + 1) for s in splits)})
    deltas = [piece[a:b] for a, b in zip(bounds, bounds[1:])]
    streamed, _, streamed_report = _stream(base, held, deltas, strategy)
    assert streamed == whole
    assert streamed_report == report


CUTS = st.sampled_from(
    [
        None,
        CutState(None, (), False),
        CutState("py", (), True),
        CutState("", ("s",), False),
        CutState("", ("s", "t"), True),
    ]
)


@FAST
@given(
    st.text(st.sampled_from("ab c.:\n\u0301é"), max_size=30),
    st.sampled_from(["", " ", "\n\n", " ab", "\n  `"]),
    st.one_of(
        st.text(st.sampled_from("ab c.:\n\u0301SureContinuing!…"), max_size=40),
        st.lists(
            st.sampled_from(
                ["```", "```py", "\n", " ", "<s>", "<t>", "a", "b c", "...", "Continuing:", "`", "<"]
            ),
            max_size=12,
        ).map("".join),
    ),
    st.sampled_from(STRATEGIES),
    st.lists(st.integers(0, 60), max_size=6),
    CUTS,
    st.booleans(),
)
def test_streaming_matches_one_shot_for_arbitrary_pieces(base, held, piece, strategy, splits, cut, capped):
    whole, report = join_piece(base, held, piece, strategy, cut=cut, capped=capped)
    bounds = sorted({0, len(piece), *(s % (len(piece) + 1) for s in splits)})
    deltas = [piece[a:b] for a, b in zip(bounds, bounds[1:])]
    streamed, _, streamed_report = _stream(base, held, deltas, strategy, cut, capped)
    assert (streamed, streamed_report) == (whole, report)
    # Whatever is trimmed comes off the front: the rest of the piece arrives untouched.
    assert piece.startswith(report.trimmed_preamble)
    assert whole.startswith(report.restored_whitespace)
    assert piece.endswith(whole[len(report.restored_whitespace) :])


@FAST
@given(answers(), st.data())
def test_continuation_that_opens_with_whitespace_passes_unchanged(text, data):
    # A genuine continuation from the exact end of the text (prefill) or from the start of the
    # held whitespace (user-turn) opens with whitespace; nothing in it is ever trimmed.
    cuts = [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()]
    assume(cuts)
    cut = data.draw(st.sampled_from(cuts))
    strategy = data.draw(st.sampled_from(STRATEGIES))
    base, held = split_for_continuation(text[:cut], strategy)
    new = text[len(base) :]
    out, report = join_piece(base, held, new, strategy)
    assert out == new
    assert report.trimmed_echo == report.trimmed_preamble == ""


@FAST
@given(answers(), st.data())
def test_coincidental_short_match_in_prefill_is_kept(text, data):
    # The piece starts with the end of the last word (not at a word start), or repeats only its
    # last word after whitespace: both are new text.
    base = text.rstrip()
    last = _last_words(base, 1)
    assume(len(last) >= 2)
    start = data.draw(st.integers(1, len(last) - 1))
    assume(is_grapheme_boundary(last, start))
    fragment = last[start:] + " more words"
    assert join_piece(base, "", fragment, "prefill")[0] == fragment
    spaced = " " + last + " more words"
    assert join_piece(base, "", spaced, "prefill")[0] == spaced


@FAST
@given(answers(), st.sampled_from(["\u0301", "\ufe0f", "\u200d👩", "🏽"]), st.sampled_from(STRATEGIES))
def test_restored_whitespace_never_separates_a_mark_from_its_character(text, mark, strategy):
    base = text.rstrip()
    out, report = join_piece(base, " ", mark + " next", strategy)
    assert out.startswith(mark)
    assert report.restored_whitespace == ""


@settings(max_examples=40, deadline=None)
@given(answers(max_words=12), st.integers(1, 200))
def test_join_reads_only_the_window_of_a_long_text(text, extra):
    # Cost does not grow with the text: the result depends only on base[-ECHO_WINDOW:].
    long_base = ("filler " * (ECHO_WINDOW // 7 + extra)) + text.rstrip()
    piece = _last_words(text.rstrip(), 2) + " next"
    assert join_piece(long_base, "", piece, "prefill") == join_piece(
        long_base[-ECHO_WINDOW:], "", piece, "prefill"
    )


# ----------------------------------------------------------------------------- cut state


def test_open_fence_reports_its_info_string():
    assert cut_state("Intro\n```python\nx = 1\n").open_fence == "python"
    assert cut_state("```\nx\n").open_fence == ""
    assert cut_state("```python\nx = 1\n```\nafter").open_fence is None


def test_fence_is_closed_only_by_a_long_enough_fence_of_its_own_kind():
    assert cut_state("~~~~\ncode\n~~~\n").open_fence == ""
    assert cut_state("````md\n```\n````\n").open_fence is None


def test_open_tags_are_reported_outermost_first():
    text = "<story_1>\nOne.\n</story_1>\n<story_2>\n<scene a='x'>Two <b>bold</b> and on"
    assert cut_state(text).open_tags == ("story_2", "scene")


def test_tags_inside_code_and_void_tags_do_not_count():
    text = "<story_1>\n```html\n<div>\n```\nuse `<tag>` and <br> and <img src='x'/> here"
    state = cut_state(text)
    assert state.open_tags == ("story_1",)
    assert state.open_fence is None


def test_closing_an_outer_tag_closes_what_was_left_open_inside():
    assert cut_state("<story_1><p>one<p>two</story_1>").open_tags == ()


def test_cut_state_tells_whether_the_text_ends_inside_a_word():
    assert cut_state("the quick bro").in_word
    assert not cut_state("the end.").in_word
    assert cut_state("x").to_dict() == {"open_fence": None, "open_tags": [], "in_word": True}


def test_cut_state_goes_into_the_seam_report():
    report = SeamReport(
        strategy="prefill", cut=CutState(open_fence="py", open_tags=("story_1",), in_word=False)
    )
    assert report.to_dict()["cut"] == {"open_fence": "py", "open_tags": ["story_1"], "in_word": False}


@FAST
@given(
    st.lists(
        st.sampled_from(["<a>", "</a>", "<b>", "</b>", "```", "```py", "~~~", "\n", "x", " ", "`", "é"]),
        max_size=30,
    ).map("".join),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_cut_scanner_fed_in_pieces_agrees_with_one_pass(text, splits):
    bounds = sorted({0, len(text), *(s % (len(text) + 1) for s in splits)})
    scanner = CutScanner()
    for a, b in zip(bounds, bounds[1:]):
        scanner.feed(text[a:b])
    assert scanner.state() == cut_state(text)


def test_grapheme_boundary_helper_knows_marks_joiners_and_flags():
    assert not is_grapheme_boundary("e\u0301", 1)
    assert not is_grapheme_boundary("👩\u200d💻", 2)
    assert not is_grapheme_boundary("🇫🇷", 1)
    assert is_grapheme_boundary("🇫🇷🇩🇪", 2)
    assert is_grapheme_boundary("ab", 1)


def _cut_oracle(text: str):
    """Open fence info and open tags, line by line with no settling (the reference)."""
    from autocontinue.seams import _apply_line

    fence, tags = None, []
    for line in text.split("\n"):
        fence = _apply_line(line, fence, tags)
    return (fence[2] if fence else None), tuple(tags)


@pytest.mark.parametrize(
    "text",
    [
        "<story_1>" + " word" * 3000 + " <b>bold</b> and <i>open" + " more" * 2000,
        "```json\n" + '{"a": "<x>"}, ' * 2000 + "\n" + "tail <t>" + " z" * 3000,
        "```json\n" + '{"a": 1}' * 1000 + "\n```\n<open>" + " y" * 5000,
        "<a>" + "x" * 9000 + "<b" + " y" * 10 + ">" + " z" * 3000 + "</b>",
        "prose " * 2000 + "```python\nprint(1)\n",
    ],
)
def test_cut_state_of_very_long_lines_matches_a_plain_line_by_line_scan(text):
    from autocontinue.seams import CutScanner

    scanner = CutScanner()
    for i in range(0, len(text), 97):
        scanner.feed(text[i : i + 97])
        scanner.state()
    state = scanner.state()
    assert (state.open_fence, state.open_tags) == _cut_oracle(text)


def test_cut_state_keeps_only_a_short_pending_line_on_a_text_with_no_newline():
    from autocontinue.seams import LONG_LINE, CutScanner

    scanner = CutScanner()
    for _ in range(2000):
        scanner.feed("<p>para</p> " + "word " * 40)
    assert sum(len(part) for part in scanner._line) <= LONG_LINE + 250


def _split_by_scanning(text, strategy, max_partial=32, *, fragment=False):
    """The plain character-by-character statement of the rule (the engine's fast version must agree)."""
    end = len(text)
    while end > 0 and text[end - 1].isspace():
        end -= 1
    if strategy == "prefill":
        return text[:end], text[end:]
    start = end
    while start > 0 and end - start <= max_partial and not text[start - 1].isspace():
        start -= 1
    if start == 0 or end - start > max_partial:
        return text[:end], text[end:]
    cut = start
    while cut > 0 and text[cut - 1].isspace():
        cut -= 1
    if cut == 0 and not fragment:
        return text[:end], text[end:]
    return text[:cut], text[cut:]


@settings(max_examples=3000, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab x\n\t\u00a0\u2003\u200d\x1c\x85é日")), max_size=60),
    strategy=st.sampled_from(["prefill", "user-turn"]),
    max_partial=st.sampled_from([0, 1, 2, 5, 32]),
    fragment=st.booleans(),
)
def test_split_for_continuation_agrees_with_the_scanning_rule(text, strategy, max_partial, fragment):
    expected = _split_by_scanning(text, strategy, max_partial, fragment=fragment)
    assert split_for_continuation(text, strategy, max_partial, fragment=fragment) == expected
