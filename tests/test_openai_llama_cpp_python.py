"""The openai backend against llama-cpp-python's own OpenAI server (``python -m llama_cpp.server``).

Its chat endpoint always adds the generation prompt, so a trailing assistant message is a past
turn and the answer starts anew: the backend must find that out (prompt-token check) and the
run must go on by user turn, whether the server kind was detected or wrongly set by hand.
"""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")

import autocontinue  # noqa: E402
from autocontinue.backends.openai import OpenAIBackend  # noqa: E402
from autocontinue.backends.openai.known import ServerMemory  # noqa: E402
from autocontinue.backends.openai.probe import closes_turn  # noqa: E402

pytestmark = [pytest.mark.slow]

PROMPT = "Write a short story about a lighthouse keeper and a storm."


@pytest.fixture(scope="module")
def client(llama_cpp_python_server_url):
    with openai.OpenAI(base_url=llama_cpp_python_server_url, api_key="none") as client:
        yield client


def _model(client) -> str:
    return client.models.list().data[0].id


def test_its_chat_endpoint_closes_the_turn(client):
    assert closes_turn(OpenAIBackend(client)._prober(), _model(client)) is True


def test_detected_as_generic_and_continued_by_user_turn(client):
    result = autocontinue.generate(
        PROMPT, client=client, max_tokens_per_call=16, max_output_tokens=32, temperature=0, seed=3
    )
    assert OpenAIBackend(client).mode.kind == "generic"
    assert len(result.rounds) >= 2
    assert {r.strategy for r in result.rounds[1:]} == {"user-turn"}
    assert result.text.strip()


def test_wrongly_set_as_llama_server_it_is_caught_and_continued_by_user_turn(client):
    model = _model(client)
    result = autocontinue.generate(
        PROMPT,
        client=client,
        server="llama-server",
        max_tokens_per_call=16,
        max_output_tokens=32,
        temperature=0,
        seed=3,
    )
    assert len(result.rounds) >= 2
    assert {r.strategy for r in result.rounds[1:]} == {"user-turn"}
    assert ServerMemory().continues(OpenAIBackend(client).endpoint_key(), model, "llama-server") is False
