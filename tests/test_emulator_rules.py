"""Every rule the emulator enforces, with the real API's status and exact error text, via the SDK."""

from __future__ import annotations

import os

import anthropic
import httpx2
import pytest

from autocontinue.catalogue import find_model

SPECS = (
    "tiny-noprefill:context=400,max_output=100,prefill=no",
    "tiny-prefill:context=400,max_output=100,prefill=yes",
)
USER = [{"role": "user", "content": "Tell me a long story."}]


@pytest.fixture(scope="module")
def rules_url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=500, model_specs=SPECS) as url:
        yield url


def client_for(url: str, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=0, **kwargs)


def refused(url: str, error_class, **params) -> anthropic.APIStatusError:
    params.setdefault("model", "tiny-prefill")
    params.setdefault("max_tokens", 50)
    params.setdefault("messages", USER)
    with pytest.raises(error_class) as caught:
        client_for(url).messages.create(**params)
    error = caught.value
    assert error.request_id and error.request_id.startswith("req_")
    assert error.body["type"] == "error"
    return error


def message_of(error) -> str:
    return error.body["error"]["message"]


def test_trailing_whitespace_in_final_assistant_message_is_refused(rules_url):
    error = refused(
        rules_url, anthropic.BadRequestError, messages=USER + [{"role": "assistant", "content": "Once upon "}]
    )
    assert message_of(error) == "messages: final assistant content cannot end with trailing whitespace"
    assert error.body["error"]["type"] == "invalid_request_error"


def test_trailing_newline_in_last_assistant_text_block_is_refused(rules_url):
    blocks = [{"type": "text", "text": "Once"}, {"type": "text", "text": " upon\n"}]
    error = refused(
        rules_url, anthropic.BadRequestError, messages=USER + [{"role": "assistant", "content": blocks}]
    )
    assert message_of(error) == "messages: final assistant content cannot end with trailing whitespace"


def test_prefill_to_a_model_without_prefill_is_refused(rules_url):
    error = refused(
        rules_url,
        anthropic.BadRequestError,
        model="tiny-noprefill",
        messages=USER + [{"role": "assistant", "content": "Once"}],
    )
    assert message_of(error) == (
        "This model does not support assistant message prefill. The conversation must end with a user message."
    )


def test_catalogue_model_without_prefill_refuses_prefill(emulator_url):
    assert find_model("claude-opus-4-6").prefill is False
    error = refused(
        emulator_url,
        anthropic.BadRequestError,
        model="claude-opus-4-6",
        messages=USER + [{"role": "assistant", "content": "Once"}],
    )
    assert message_of(error).startswith("This model does not support assistant message prefill.")


def test_user_turn_continuation_is_accepted_by_a_model_without_prefill(rules_url):
    messages = USER + [{"role": "assistant", "content": "Once"}, {"role": "user", "content": "Continue."}]
    message = client_for(rules_url).messages.create(model="tiny-noprefill", max_tokens=10, messages=messages)
    assert message.stop_reason == "max_tokens"


def test_max_tokens_above_the_model_maximum_is_refused(rules_url, emulator_url):
    error = refused(rules_url, anthropic.BadRequestError, max_tokens=101)
    assert (
        message_of(error)
        == "max_tokens: 101 > 100, which is the maximum allowed number of output tokens for tiny-prefill"
    )
    error = refused(
        emulator_url, anthropic.BadRequestError, model="claude-haiku-4-5", max_tokens=100000, stream=True
    )
    assert message_of(error) == (
        "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5"
    )


def test_prompt_longer_than_the_context_window_is_refused(rules_url):
    long_prompt = [{"role": "user", "content": ("word " * 500).strip()}]
    error = refused(rules_url, anthropic.BadRequestError, messages=long_prompt, max_tokens=10)
    assert message_of(error) == "prompt is too long: 503 tokens > 400 maximum"


def test_prompt_plus_max_tokens_over_the_context_window_is_refused(rules_url):
    prompt = [{"role": "user", "content": ("word " * 350).strip()}]  # 353 tokens with the message overhead
    error = refused(rules_url, anthropic.BadRequestError, messages=prompt, max_tokens=60)
    assert message_of(error) == (
        "input length and `max_tokens` exceed context limit: 353 + 60 > 400, "
        "decrease input length or `max_tokens` and try again"
    )
    ok = client_for(rules_url).messages.create(model="tiny-prefill", max_tokens=47, messages=prompt)
    assert ok.usage.input_tokens == 353


@pytest.mark.parametrize(
    "messages, text",
    [
        (
            [{"role": "user", "content": ""}],
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            [{"role": "user", "content": []}],
            "messages.0: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "go"},
            ],
            "messages.1: all messages must have non-empty content except for the optional final assistant message",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": ""}]}],
            "messages: text content blocks must be non-empty",
        ),
    ],
)
def test_empty_content_is_refused(rules_url, messages, text):
    error = refused(rules_url, anthropic.BadRequestError, messages=messages)
    assert message_of(error) == text


def test_empty_final_assistant_message_is_allowed_and_answers_fresh(rules_url):
    client = client_for(rules_url)
    fresh = client.messages.create(model="tiny-prefill", max_tokens=20, messages=USER)
    empty = client.messages.create(
        model="tiny-prefill", max_tokens=20, messages=USER + [{"role": "assistant", "content": ""}]
    )
    assert empty.content[0].text == fresh.content[0].text


def test_unknown_model_is_404_naming_the_model(rules_url):
    error = refused(rules_url, anthropic.NotFoundError, model="claude-nonexistent-9")
    assert error.status_code == 404
    assert error.body["error"] == {"type": "not_found_error", "message": "model: claude-nonexistent-9"}


def test_model_spec_is_per_emulator_instance(emulator_url):
    assert find_model("tiny-prefill") is None
    error = refused(emulator_url, anthropic.NotFoundError, model="tiny-prefill")
    assert message_of(error) == "model: tiny-prefill"


def test_model_spec_overrides_a_catalogue_model_only_in_its_emulator(start_emulator, emulator_url):
    url = start_emulator(model_specs=["claude-haiku-4-5:max_output=50"])
    error = refused(url, anthropic.BadRequestError, model="claude-haiku-4-5-20251001", max_tokens=51)
    assert "51 > 50" in message_of(error)
    assert find_model("claude-haiku-4-5").max_output == 64_000
    ok = client_for(emulator_url).messages.create(model="claude-haiku-4-5", max_tokens=51, messages=USER)
    assert ok.usage.output_tokens == 51


OLD_API = {"anthropic-version": "2023-06-01"}


@pytest.mark.parametrize("temperature", [-0.1, 1.5])
def test_temperature_out_of_range_is_refused_under_the_old_api_version(rules_url, temperature):
    # anthropic 2.x dropped ``temperature`` from its signature; it still goes on the wire
    with pytest.raises(anthropic.BadRequestError) as caught:
        client_for(rules_url, default_headers=OLD_API).messages.create(
            model="tiny-prefill", max_tokens=5, messages=USER, extra_body={"temperature": temperature}
        )
    assert message_of(caught.value) == "temperature: range: 0..1"


def test_temperature_at_the_bounds_is_accepted_under_the_old_api_version(rules_url):
    for temperature in (0, 1):
        client_for(rules_url, default_headers=OLD_API).messages.create(
            model="tiny-prefill", max_tokens=5, messages=USER, extra_body={"temperature": temperature}
        )


def test_bad_api_key_is_401_only_when_the_emulator_has_one(start_emulator, emulator_url):
    url = start_emulator(api_key="sekret")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=url, api_key="wrong").messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=USER
        )
    assert caught.value.status_code == 401
    assert caught.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert caught.value.response.headers["x-should-retry"] == "false"
    good = anthropic.Anthropic(base_url=url, api_key="sekret").messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=USER
    )
    assert good.stop_reason == "max_tokens"
    anyone = anthropic.Anthropic(base_url=emulator_url, api_key="whatever").messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=USER
    )
    assert anyone.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"model": 5}', b'{"model": "claude-haiku-4-5"}'],
)
def test_unparseable_bodies_get_a_400_in_the_api_shape(rules_url, raw):
    response = httpx2.post(
        f"{rules_url}/v1/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize(
    "body, text",
    [
        ({"messages": USER, "max_tokens": 5}, "model: Field required"),
        ({"model": "tiny-prefill", "max_tokens": 5}, "messages: Field required"),
        ({"model": "tiny-prefill", "messages": USER}, "max_tokens: Field required"),
        (
            {"model": "tiny-prefill", "messages": USER, "max_tokens": "5"},
            "max_tokens: Input should be a valid integer",
        ),
        (
            {"model": "tiny-prefill", "messages": USER, "max_tokens": 0},
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            {"model": "tiny-prefill", "messages": [], "max_tokens": 5},
            "messages: at least one message is required",
        ),
        (
            {"model": "tiny-prefill", "messages": [{"role": "bot", "content": "x"}], "max_tokens": 5},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {
                "model": "tiny-prefill",
                "messages": [{"role": "user", "content": [{"type": "text"}]}],
                "max_tokens": 5,
            },
            "messages.0.content.0.text: Field required",
        ),
    ],
)
def test_malformed_fields_are_named_in_the_error(rules_url, body, text):
    response = httpx2.post(f"{rules_url}/v1/messages", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == text


def test_more_than_four_cache_breakpoints_are_refused(rules_url):
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    error = refused(rules_url, anthropic.BadRequestError, messages=[{"role": "user", "content": blocks}])
    assert message_of(error) == "A maximum of 4 blocks with cache_control may be provided. Found 5."


def test_unknown_route_is_a_json_404(rules_url):
    response = httpx2.get(f"{rules_url}/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_count_tokens_applies_the_same_model_check(rules_url):
    with pytest.raises(anthropic.NotFoundError):
        client_for(rules_url).messages.count_tokens(model="nope", messages=USER)


def test_prefill_with_extended_thinking_is_refused(rules_url):
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    error = refused(
        rules_url,
        anthropic.BadRequestError,
        model="claude-haiku-4-5",
        max_tokens=2000,
        messages=USER + [{"role": "assistant", "content": "Once"}],
        extra_body=thinking,
    )
    assert message_of(error).startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`."
    )
    ok = client_for(rules_url).messages.create(
        model="claude-haiku-4-5", max_tokens=2000, messages=USER, extra_body=thinking
    )
    assert ok.stop_reason == "end_turn"


def test_malformed_json_names_the_place_like_the_api(rules_url):
    response = httpx2.post(
        f"{rules_url}/v1/messages", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert (
        response.json()["error"]["message"]
        == "The request body is not valid JSON: Expecting value: line 1 column 11 (char 10)"
    )


def test_one_hour_breakpoint_after_a_five_minute_one_is_refused(rules_url):
    system = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        }
    ]
    error = refused(rules_url, anthropic.BadRequestError, system=system, messages=messages)
    assert message_of(error).startswith(
        "messages.0.content.0.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block."
    )
    system[0]["cache_control"]["ttl"] = "1h"
    client_for(rules_url).messages.create(
        model="tiny-prefill", max_tokens=5, system=system, messages=messages
    )


# -- anything unreadable is an API error, never a crash -------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from autocontinue.emulator.request import ApiError, check_context, parse_request  # noqa: E402

#: Raise for a longer hunt, e.g. EMULATOR_FUZZ_EXAMPLES=5000.
FUZZ_EXAMPLES = int(os.environ.get("EMULATOR_FUZZ_EXAMPLES", "300"))

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "bogus", 3]), "text": st.text(max_size=5) | _json},
    optional={"cache_control": _json | st.just({"type": "ephemeral", "ttl": "1h"})},
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", None]),
        "content": st.text(max_size=5) | st.lists(_block, max_size=3) | _json,
    }
)
_body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["claude-haiku-4-5", "claude-opus-4-6", "nope"]) | _json,
        "messages": st.lists(_message, max_size=4) | _json,
        "max_tokens": st.integers(-2, 200_000) | _json,
        "system": st.text(max_size=5) | st.lists(_block, max_size=2) | _json,
        "temperature": _json,
        "stop_sequences": st.lists(st.text(max_size=3), max_size=2) | _json,
        "thinking": _json | st.just({"type": "enabled", "budget_tokens": 2000}),
        "stream": _json,
    },
)


@given(_body | _json)
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
def test_any_json_body_is_either_accepted_or_an_api_error(body):
    from autocontinue.catalogue import find_model

    try:
        parsed = parse_request(body, find_model)
        check_context(parsed)
    except ApiError as error:
        assert error.status in (400, 404) and error.message
