"""How long a refused call waits: the ``retry-after`` headers both API backends read.

The header reading is a pure function over the headers (``parse_retry_after``); the last test
takes a 429 from the emulator through the official Anthropic SDK and the error mapping, and
the OpenAI SDK's 429 error through the other backend's.
"""

from __future__ import annotations

from email.utils import formatdate

import pytest

from autocontinue.backends.base import MAX_RETRY_AFTER, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "headers, seconds",
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),  # a bad one falls to the next
        ({"retry-after-ms": "-5", "retry-after": "4"}, 4.0),
    ],
)
def test_seconds_and_milliseconds_are_read(headers, seconds):
    assert parse_retry_after(headers, now=NOW) == pytest.approx(seconds)


def test_an_http_date_is_the_seconds_until_it_and_a_past_one_is_no_wait():
    assert parse_retry_after({"retry-after": formatdate(NOW + 30, usegmt=True)}, now=NOW) == 30.0
    assert parse_retry_after({"retry-after": formatdate(NOW + 30)}, now=NOW) == 30.0  # "-0000" zone
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=NOW) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-3", "nan", "inf", "-inf", "1e400", "Wed, 99 Foo 2015"])
def test_garbage_negative_and_non_finite_values_say_nothing(value):
    assert parse_retry_after({"retry-after": value}, now=NOW) is None
    assert parse_retry_after({"retry-after-ms": value}, now=NOW) is None


def test_no_headers_say_nothing():
    assert parse_retry_after(None) is None and parse_retry_after({}) is None
    assert parse_retry_after({"x-other": "5"}) is None


def test_a_huge_wait_is_cut_to_the_ceiling():
    assert parse_retry_after({"retry-after": "86400"}, now=NOW) == MAX_RETRY_AFTER
    assert parse_retry_after({"retry-after-ms": "1e12"}, now=NOW) == MAX_RETRY_AFTER
    assert (
        parse_retry_after({"retry-after": formatdate(NOW + 10**7, usegmt=True)}, now=NOW) == MAX_RETRY_AFTER
    )


def test_both_backends_hand_the_servers_retry_after_to_the_engine(start_emulator):
    anthropic = pytest.importorskip("anthropic")
    openai = pytest.importorskip("openai")
    from autocontinue.backends.anthropic import map_error as anthropic_error
    from autocontinue.backends.openai.errors import map_error as openai_error

    url = start_emulator(length=100, faults="429/3:1")
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert anthropic_error(caught.value, model="claude-haiku-4-5").retry_after == 3.0
    # The emulator's chat endpoints inject no faults: the OpenAI SDK's own 429 error is built
    # here around a real HTTP response instead.
    httpx = pytest.importorskip("httpx2")
    response = httpx.Response(
        429, headers={"retry-after": "3"}, request=httpx.Request("POST", f"{url}/v1/chat/completions")
    )
    refused = openai.RateLimitError("rate limited", response=response, body=None)
    assert openai_error(refused, model="emulated").retry_after == 3.0
