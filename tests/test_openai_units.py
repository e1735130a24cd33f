"""The openai backend's pure parts: echo stripping, request building, stop and error mapping.

The error texts are the servers' own (vLLM, llama-cpp-python, OpenAI), wrapped in the SDK's
real exception classes over a real ``httpx2`` response: those servers cannot run here.
"""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

from autocontinue.backends.base import RoundRequest  # noqa: E402
from autocontinue.backends.openai.backend import stop_reason  # noqa: E402
from autocontinue.backends.openai.errors import map_error  # noqa: E402
from autocontinue.backends.openai.probe import root_url  # noqa: E402
from autocontinue.backends.openai.servers import SERVERS, EchoStripper, chat_params  # noqa: E402
from autocontinue.errors import (  # noqa: E402
    AuthenticationError,
    ContextWindowError,
    InvalidRequestError,
    StreamInterruptedError,
    TransientBackendError,
)


def feed_all(stripper: EchoStripper, pieces: list[str]) -> str:
    return "".join(stripper.feed(p) for p in pieces) + stripper.finish()


@pytest.mark.parametrize(
    "pieces, out",
    [
        (["Once upon", " a time", " there"], " there"),  # the whole prefill, split anywhere
        (["Once upon a time there"], " there"),
        (["Once upon a ti", "de"], "Once upon a tide"),  # differs before the end: all kept
        (["Once up"], "Once up"),  # ended inside a partial copy: not proven a repeat, kept
        (["There was"], "There was"),
        (["Once upon a time"], ""),  # exactly the prefill and nothing new
    ],
)
def test_echo_stripper_removes_only_a_whole_verbatim_copy(pieces, out):
    assert feed_all(EchoStripper("Once upon a time"), pieces) == out


def request(last_assistant: bool = True, **kw) -> RoundRequest:
    messages = [{"role": "user", "content": "Go"}]
    if last_assistant:
        messages.append(
            {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B "}]}
        )
    return RoundRequest(model="m", messages=messages, max_tokens=9, system="Be brief.", **kw)


def test_chat_params_per_server_mode():
    vllm = chat_params(request(), SERVERS["vllm"])
    assert vllm["extra_body"] == {"continue_final_message": True, "add_generation_prompt": False}
    assert vllm["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": "AB "},
    ]
    assert vllm["stream_options"] == {"include_usage": True} and vllm["max_tokens"] == 9
    deepseek = chat_params(request(), SERVERS["deepseek"])
    assert deepseek["messages"][-1]["prefix"] is True and "extra_body" not in deepseek
    fresh = chat_params(request(last_assistant=False), SERVERS["vllm"])
    assert "extra_body" not in fresh  # no prefill, no flags
    official = chat_params(request(last_assistant=False, stop_sequences=("END",), seed=3), SERVERS["openai"])
    assert official["max_completion_tokens"] == 9 and "max_tokens" not in official
    assert official["stop"] == ["END"] and official["seed"] == 3
    no_cache = chat_params(request(cache=False), SERVERS["llama-server"])
    assert no_cache["extra_body"] == {"cache_prompt": False}


def test_finish_reasons_map_to_the_engines_stop_reasons():
    assert stop_reason("length", None, ()) == ("max_tokens", None)
    assert stop_reason("stop", None, ("END",)) == ("end_turn", None)  # which stop is not said
    assert stop_reason("stop", "END", ("END",)) == ("stop_sequence", "END")  # vLLM says it
    assert stop_reason("content_filter", None, ()) == ("refusal", None)
    assert stop_reason(None, None, ()) == ("end_turn", None)


def test_root_url_drops_v1_and_credentials():
    assert root_url("http://user:pw@127.0.0.1:8080/v1/") == "http://127.0.0.1:8080"
    assert root_url("https://api.deepseek.com/beta") == "https://api.deepseek.com/beta"


def status_error(status: int, body: dict):
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError, 429: openai.RateLimitError}.get(
        status, openai.APIStatusError
    )
    response = httpx2.Response(
        status, json=body, request=httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    )
    return cls(body["error"]["message"], response=response, body=body["error"])


def test_context_errors_carry_the_numbers_the_engine_shrinks_by():
    new_vllm = status_error(
        400,
        {
            "error": {
                "message": "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum "
                "context length is 2048 tokens and your request has 100 input tokens (2000 > 2048 - 100).",
                "type": "BadRequestError",
            }
        },
    )
    mapped = map_error(new_vllm, model="m", max_tokens=2000)
    assert isinstance(mapped, ContextWindowError) and mapped.message.endswith("(100 + 2000 > 2048)")
    lcp = status_error(
        400,
        {
            "error": {
                "message": "Requested tokens (2100) exceed context window of 2048",
                "type": "invalid_request_error",
            }
        },
    )
    assert map_error(lcp, model="m", max_tokens=50).message.endswith("(2100 + 50 > 2048)")
    llama = status_error(
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 2100,
                "n_ctx": 2048,
            }
        },
    )
    assert map_error(llama, model="m", max_tokens=40).message.endswith("(2100 + 40 > 2048)")
    too_many = status_error(
        400,
        {
            "error": {
                "message": "max_tokens is too large: 100000. This model supports at "
                "most 16384 completion tokens, whereas you provided 100000.",
                "type": "invalid_request_error",
            }
        },
    )
    mapped = map_error(too_many, model="m", max_tokens=100000)
    assert isinstance(mapped, InvalidRequestError) and "(max_tokens: 100000 > 16384)" in mapped.message


def test_status_errors_are_mapped_once():
    auth = map_error(
        status_error(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}),
        model="m",
    )
    assert isinstance(auth, AuthenticationError) and "OPENAI_API_KEY" in auth.hint
    limited = map_error(
        status_error(429, {"error": {"message": "Rate limit", "type": "requests"}}), model="m"
    )
    assert isinstance(limited, TransientBackendError)
    broken = map_error(
        openai.APIConnectionError(request=httpx2.Request("POST", "http://x")), model="m", text_received="abc"
    )
    assert isinstance(broken, StreamInterruptedError) and "after 3 characters" in broken.message


def test_server_memory_keeps_what_the_server_said_per_endpoint_and_kind(tmp_path):
    from autocontinue.backends.openai.known import ServerMemory
    from autocontinue.backends.openai.probe import ServerInfo

    memory = ServerMemory(tmp_path / "servers.json")
    assert memory.info("openai:http://h/v1") is None
    memory.remember_info("openai:http://h/v1", ServerInfo("llama-server", {"m": 2048}, 4096))
    memory.remember_continues("openai:http://h/v1", "m", "llama-server", False)
    again = ServerMemory(tmp_path / "servers.json")  # as a later process reads it
    info = again.info("openai:http://h/v1")
    assert info is not None and (info.kind, info.models, info.context_window) == (
        "llama-server",
        {"m": 2048},
        4096,
    )
    assert again.continues("openai:http://h/v1", "m", "llama-server") is False
    assert again.continues("openai:http://h/v1", "m", "ollama") is None  # checked as another kind
    assert again.continues("openai:http://other/v1", "m", "llama-server") is None
    again.forget("openai:http://h/v1")
    assert again.info("openai:http://h/v1") is None
    (tmp_path / "servers.json").write_text("{not json")
    assert ServerMemory(tmp_path / "servers.json").info("openai:http://h/v1") is None  # never fails a run
