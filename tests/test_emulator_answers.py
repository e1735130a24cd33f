"""The emulated model's text: tokenizer, fixed answers, continuation, stop sequences and quirks."""

from __future__ import annotations

import re

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autocontinue.emulator.quirks import PREAMBLES, decide_quirks, echo_text, parse_quirks
from autocontinue.emulator.sources import numbered_text
from autocontinue.emulator.tokenizer import count_tokens, tokenize

MODEL = "claude-haiku-4-5"
LENGTH = 400
PROMPT = [{"role": "user", "content": "Write five stories in <story_N> tags."}]


def client_for(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)


def ask(url: str, messages, max_tokens: int = 2000, **params) -> anthropic.types.Message:
    return client_for(url).messages.create(model=MODEL, max_tokens=max_tokens, messages=messages, **params)


def text_of(message) -> str:
    return "".join(block.text for block in message.content)


@pytest.fixture(scope="module")
def clean_url():
    from autocontinue.emulator import run_emulator

    with run_emulator(seed=7, length=LENGTH) as url:
        yield url


@pytest.fixture(scope="module")
def full_answer(clean_url) -> str:
    message = ask(clean_url, PROMPT)
    assert message.stop_reason == "end_turn"
    return text_of(message)


# -- tokenizer ---------------------------------------------------------------------------------


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_tokens_join_back_to_the_text(text):
    assert "".join(tokenize(text)) == text
    assert count_tokens(text) == len(tokenize(text))


def test_tokenizer_attaches_spaces_to_words_and_splits_long_words_and_marks():
    assert tokenize(" river·17") == [" river", "·", "17"]
    assert tokenize("continuing") == ["conti", "nuing"]
    assert tokenize("12345") == ["123", "45"]
    assert tokenize("a\n\nb") == ["a", "\n\n", "b"]
    assert tokenize("日本 🚀") == ["日", "本", " 🚀"]
    assert tokenize("end  ") == ["end", "  "]


# -- fixed answers -----------------------------------------------------------------------------


def test_full_answer_has_exactly_length_tokens_then_end_turn(clean_url, full_answer):
    message = ask(clean_url, PROMPT)
    assert message.usage.output_tokens == LENGTH == count_tokens(full_answer)
    assert text_of(message) == full_answer


def test_numbered_words_and_code_names_carry_consecutive_indices():
    text = numbered_text(seed=1, length=3000, system="", first_user="go")
    untagged = re.sub(r"</?story_\d+>", "", text)
    seen: list[int] = []
    for number in map(int, re.findall(r"[·_](\d+)", untagged)):
        if number not in seen:
            seen.append(number)
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) > 400


def test_numbered_answer_mixes_paragraphs_marks_multibyte_code_and_tags():
    text = numbered_text(seed=2, length=4000, system="", first_user="go")
    assert "\n\n" in text and "—" in text and "," in text
    assert re.search(r"[éïüå日東Ω🌊🚀]", text)
    assert "```python\n" in text
    assert text.startswith("<story_1>\n") and "</story_1>\n\n<story_2>" in text
    assert re.search(r"</story_\d+>$", text)


def test_section_tags_follow_the_tag_the_prompt_asks_for():
    text = numbered_text(seed=2, length=2000, system="", first_user="Answer in <chapter_N> tags")
    assert text.startswith("<chapter_1>") and "<story_" not in text


def test_answer_depends_on_seed_system_and_first_user_text_only(clean_url, full_answer, start_emulator):
    as_blocks = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Write five stories ", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "in <story_N> tags."},
            ],
        }
    ]
    assert text_of(ask(clean_url, as_blocks)) == full_answer
    assert text_of(ask(clean_url, PROMPT, system="Be kind.")) != full_answer
    assert text_of(ask(clean_url, [{"role": "user", "content": "Another prompt"}])) != full_answer
    other_seed = start_emulator(seed=8, length=LENGTH)
    assert text_of(ask(other_seed, PROMPT)) != full_answer


def test_corpus_source_serves_the_file_text(tmp_path, start_emulator):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Alpha beta gamma delta. Epsilon zeta eta theta.\n", encoding="utf-8")
    url = start_emulator(source=f"corpus:{corpus}", length=60)
    text = text_of(ask(url, PROMPT))
    assert count_tokens(text) == 60
    assert "gamma delta" in text and set(re.findall(r"[A-Za-z]+", text)) <= set(
        re.findall(r"[A-Za-z]+", corpus.read_text())
    )


# -- continuation ------------------------------------------------------------------------------


def test_prefill_cut_mid_word_continues_mid_word(clean_url, full_answer):
    cut = full_answer.index("·30") - 2  # inside the word before index 30
    prefill = full_answer[:cut]
    assert not prefill[-1].isspace()
    message = ask(clean_url, PROMPT + [{"role": "assistant", "content": prefill}])
    assert prefill + text_of(message) == full_answer
    assert message.stop_reason == "end_turn"


def test_prefill_in_several_blocks_is_concatenated(clean_url, full_answer):
    a, b = full_answer[:100], full_answer[100:251].rstrip()
    message = ask(
        clean_url,
        PROMPT
        + [{"role": "assistant", "content": [{"type": "text", "text": a}, {"type": "text", "text": b}]}],
    )
    assert a + b + text_of(message) == full_answer


def test_user_turn_continuation_cut_back_to_whitespace_goes_on_with_the_whitespace(clean_url, full_answer):
    cut = full_answer.index(" ", 500)
    given = full_answer[:cut]
    messages = PROMPT + [
        {"role": "assistant", "content": given},
        {"role": "user", "content": "Continue exactly where you stopped."},
    ]
    message = ask(clean_url, messages)
    assert text_of(message).startswith(" ")
    assert given + text_of(message) == full_answer


def test_consecutive_assistant_turns_merge_into_one_prefill(clean_url, full_answer):
    messages = PROMPT + [
        {"role": "assistant", "content": full_answer[:80]},
        {"role": "assistant", "content": full_answer[80:200].rstrip()},
    ]
    message = ask(clean_url, messages)
    assert full_answer[:200].rstrip() + text_of(message) == full_answer


def test_max_tokens_cuts_by_the_tokenizer_and_the_rest_follows(clean_url, full_answer):
    first = ask(clean_url, PROMPT, max_tokens=123)
    assert first.stop_reason == "max_tokens"
    assert first.usage.output_tokens == 123 == count_tokens(text_of(first))
    so_far = text_of(first)
    rest = ask(clean_url, PROMPT + [{"role": "assistant", "content": so_far.rstrip()}])
    assert so_far.rstrip() + text_of(rest) == full_answer


def test_finished_answer_continued_gives_empty_end_turn(clean_url, full_answer):
    message = ask(clean_url, PROMPT + [{"role": "assistant", "content": full_answer}])
    assert message.content == [] and message.stop_reason == "end_turn" and message.usage.output_tokens == 0


def test_stop_sequence_ends_before_the_match_and_names_it(clean_url, full_answer):
    message = ask(clean_url, PROMPT, stop_sequences=["·12 ", "·11 "])
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "·11 "
    assert full_answer.startswith(text_of(message) + "·11 ")
    assert message.usage.output_tokens >= count_tokens(text_of(message))


def test_stop_sequence_beyond_max_tokens_is_not_reached(clean_url):
    message = ask(clean_url, PROMPT, max_tokens=5, stop_sequences=["·300"])
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None


# -- quirks ------------------------------------------------------------------------------------


def test_quirk_list_accepts_bare_names_and_rejects_unknown_ones():
    assert parse_quirks("echo,preamble:0.5") == {"echo": 1.0, "preamble": 0.5}
    with pytest.raises(ValueError, match="unknown quirk 'wobble'"):
        parse_quirks("wobble:1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_quirks("echo:2")


def test_echo_takes_whole_words_from_a_word_start():
    assert echo_text("the quick bro", 2) == "quick bro"
    assert echo_text("the quick\nbrown fox", 2) == "brown fox"
    assert echo_text("one", 4) == "one"


def test_echo_quirk_repeats_the_last_words_then_goes_on(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="echo:1")
    cut = full_answer.index(" ", full_answer.index("·40"))
    given = full_answer[:cut]  # a user-turn base ends at a word end
    message = ask(
        url, PROMPT + [{"role": "assistant", "content": given}, {"role": "user", "content": "Continue."}]
    )
    piece = text_of(message)
    echoed = piece[: len(piece) - len(full_answer) + cut]
    assert given.endswith(echoed) and echoed
    assert (given + piece[len(echoed) :]) == full_answer
    words = echoed.split()
    assert 1 <= len(words) <= 4 and given[: len(given) - len(echoed)][-1:].isspace()
    assert abs(message.usage.output_tokens - count_tokens(piece)) <= 1  # a mid-word seam may split a token
    # Under prefill the model continues its own turn and never echoes it (seams issue 9).
    assert given + text_of(ask(url, PROMPT + [{"role": "assistant", "content": given}])) == full_answer


def test_preamble_quirk_opens_a_user_turn_continuation_only(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="preamble:1")
    given = full_answer[: full_answer.index(" ", 300)]
    seen = set()
    for n in range(6):
        messages = PROMPT + [
            {"role": "assistant", "content": given},
            {"role": "user", "content": f"Continue ({n})."},
        ]
        piece = text_of(ask(url, messages))
        opening, sep, rest = piece.partition("\n\n")
        assert opening in PREAMBLES and sep
        assert not rest[0].isspace()
        assert given + " " + rest == full_answer
        seen.add(opening)
    assert len(seen) > 1
    prefill = text_of(ask(url, PROMPT + [{"role": "assistant", "content": given}]))
    assert given + prefill == full_answer


def test_drop_space_quirk_omits_the_opening_whitespace(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="drop-space:1")
    cut = full_answer.index(" ", 300)
    given = full_answer[:cut]
    piece = text_of(
        ask(url, PROMPT + [{"role": "assistant", "content": given}, {"role": "user", "content": "Continue."}])
    )
    assert not piece[0].isspace()
    assert given + " " + piece == full_answer


def test_early_stop_quirk_ends_well_short_and_continues_when_asked(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="early-stop:1")
    first = ask(url, PROMPT)
    assert first.stop_reason == "end_turn"
    assert 0.25 * LENGTH <= first.usage.output_tokens <= 0.75 * LENGTH
    text = text_of(first)
    assert full_answer.startswith(text)
    for _ in range(20):
        if text == full_answer:
            break
        given = text.rstrip()
        text = given + text_of(
            ask(
                url, PROMPT + [{"role": "assistant", "content": given}, {"role": "user", "content": "Go on."}]
            )
        )
        assert full_answer.startswith(text)
    assert text == full_answer


def test_restart_quirk_writes_the_first_paragraph_again_unless_the_end_is_quoted(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="restart:1")
    given = full_answer[: full_answer.index(" ", 600)]
    first_paragraph = full_answer[: full_answer.index("\n\n") + 2]
    asked = PROMPT + [{"role": "assistant", "content": given}, {"role": "user", "content": "Continue."}]
    piece = text_of(ask(url, asked))
    assert piece.startswith(first_paragraph)
    assert given + " " + piece[len(first_paragraph) :] == full_answer  # then it goes on as it should
    quoted = f"Continue after this line:\n\n{given.splitlines()[-1][-40:]}"
    asked[-1] = {"role": "user", "content": quoted}
    assert given + text_of(ask(url, asked)) == full_answer  # shown where it stopped: no restart
    assert given + text_of(ask(url, PROMPT + [{"role": "assistant", "content": given}])) == full_answer


def test_restart_section_quirk_starts_from_the_current_heading(tmp_path, start_emulator):
    corpus = tmp_path / "doc.md"
    corpus.write_text(
        "".join(f"## Part {n}\n\nIntro {n}.\n\nBody {n} " + "word " * 30 + "\n\n" for n in range(9))
    )
    url = start_emulator(seed=7, length=LENGTH, source=f"corpus:{corpus}", quirks="restart-section:1")
    answer = text_of(ask(url, PROMPT))
    heading = answer.index("## Part", 1)
    given = answer[: answer.index("word", answer.index("Body", heading))]
    given = given.rstrip()
    piece = text_of(
        ask(url, PROMPT + [{"role": "assistant", "content": given}, {"role": "user", "content": "Go on."}])
    )
    section = answer[heading:].split("\n\n", 2)
    assert piece.startswith(section[0] + "\n\n" + section[1] + "\n\n")


def test_new_quirks_leave_the_quirks_of_a_seeded_mix_as_they_were():
    # Values from before restart and restart-section existed: new names draw after the old ones.
    mix = {"echo": 0.5, "preamble": 0.5, "drop-space": 0.5, "early-stop": 0.5}
    expected = [
        (2, "Certainly! C", False, 0.0),
        (3, "", True, 0.0),
        (0, "Here is the ", False, 0.0),
        (0, "Sure, contin", False, 0.0),
        (0, "Sure, contin", True, 0.547496),
        (3, "Certainly! C", False, 0.421078),
        (0, "Continuing:", False, 0.0),
        (0, "", False, 0.685799),
    ]
    for restart in (0.0, 1.0):
        got = []
        for i in range(8):
            q = decide_quirks({**mix, "restart": restart}, 7, f"key {i}", "user-turn", assistant_text="a b")
            got.append((q.echo_words, q.preamble[:12], q.drop_space, round(q.early_stop, 6)))
            assert q.restart == ("answer" if restart else "")
        assert got == expected


def test_quirks_are_decided_per_request_content(start_emulator, full_answer):
    url = start_emulator(seed=7, length=LENGTH, quirks="echo:0.5")
    pieces = set()
    for n in range(12):
        given = full_answer[: full_answer.index(" ", 100 + 10 * n)]
        turn = [
            {"role": "assistant", "content": given},
            {"role": "user", "content": "Continue."},
        ]  # echo: user-turn only
        piece = text_of(ask(url, PROMPT + turn, max_tokens=3))
        again = text_of(ask(url, PROMPT + turn, max_tokens=3))
        assert piece == again
        pieces.add(piece.startswith(" "))
    assert pieces == {True, False}


# -- pure continuation properties ----------------------------------------------------------------

from autocontinue.emulator.continuation import plan_output  # noqa: E402
from autocontinue.emulator.quirks import QuirkChoice  # noqa: E402
from autocontinue.emulator.sources import answer_for  # noqa: E402


@given(seed=st.integers(0, 50), cut=st.integers(0, 2000), mode=st.sampled_from(["prefill", "user-turn"]))
@settings(max_examples=100, deadline=None)
def test_any_cut_continues_to_exactly_the_full_answer(seed, cut, mode):
    answer = answer_for("numbered", seed, 300, "", "go")
    given_text = answer.text[: min(cut, len(answer.text))]
    if mode == "prefill":
        given_text = given_text.rstrip()
    plan = plan_output(answer, mode if given_text else "fresh", given_text, QuirkChoice(), 10_000)
    assert given_text + plan.text == answer.text
    assert plan.stop_reason == "end_turn"


@given(seed=st.integers(0, 50), fraction=st.floats(0.3, 0.7))
@settings(max_examples=50, deadline=None)
def test_early_stops_always_make_progress_to_the_end(seed, fraction):
    answer = answer_for("numbered", seed, 300, "", "go")
    text = ""
    for _ in range(200):
        plan = plan_output(
            answer, "user-turn" if text else "fresh", text, QuirkChoice(early_stop=fraction), 10_000
        )
        assert plan.text.strip() or not plan.text
        text = (text + plan.text).rstrip()
        if not plan.text:
            break
    assert text == answer.text


@given(length=st.integers(1, 3000), seed=st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_numbered_answer_has_exact_length_balanced_tags_and_closed_fences(length, seed):
    text = numbered_text(seed=seed, length=length, system="", first_user="go")
    assert count_tokens(text) == length
    assert re.findall(r"<story_(\d+)>", text) == re.findall(r"</story_(\d+)>", text)
    assert text.count("```") % 2 == 0
