"""``--source local``: the whole API path on the embedded SmolLM2 model (slow: loads the model)."""

from __future__ import annotations

import pytest

anthropic = pytest.importorskip("anthropic")
pytest.importorskip("llama_cpp")

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_url():
    from autocontinue.backends.local import bundled_model_path
    from autocontinue.emulator import run_emulator
    from autocontinue.errors import AutocontinueError

    try:
        bundled_model_path()
    except AutocontinueError as exc:
        pytest.skip(f"local model not available: {exc}")
    with run_emulator(source="local", seed=1) as url:
        yield url


def test_local_source_answers_through_the_messages_api(local_url):
    from autocontinue.emulator.tokenizer import count_tokens

    client = anthropic.Anthropic(base_url=local_url, api_key="test")
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=12, messages=[{"role": "user", "content": "Describe the sea."}]
    )
    text = message.content[0].text
    assert text.strip()
    assert message.usage.output_tokens == count_tokens(text) <= 12


def test_local_source_streams_a_prefill_continuation(local_url):
    client = anthropic.Anthropic(base_url=local_url, api_key="test")
    messages = [
        {"role": "user", "content": "Describe the sea."},
        {"role": "assistant", "content": "The sea is"},
    ]
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason in ("max_tokens", "end_turn")
