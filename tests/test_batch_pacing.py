"""The pacer as a pure function of headers, usage and an injected clock."""

from __future__ import annotations

from autocontinue.batch.pacing import Need, Pacer, limits_from_headers, parse_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(requests=(60, 60), output=(6000, 6000)) -> dict[str, str]:
    return {
        "anthropic-ratelimit-requests-limit": str(requests[0]),
        "anthropic-ratelimit-requests-remaining": str(requests[1]),
        "anthropic-ratelimit-output-tokens-limit": str(output[0]),
        "anthropic-ratelimit-output-tokens-remaining": str(output[1]),
    }


def test_headers_of_both_families_are_read():
    assert limits_from_headers(_headers()) == {"requests": (60.0, 60.0), "output": (6000.0, 6000.0)}
    openai = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000",
    }
    assert limits_from_headers(openai) == {"requests": (500.0, 499.0), "input": (30000.0, 29000.0)}
    assert parse_duration("6m0s") == 360.0 and parse_duration("20ms") == 0.02


def test_one_call_at_a_time_until_the_service_tells_its_limits():
    clock = Clock()
    pacer = Pacer(clock=clock)
    need = pacer.estimate(100, 1000)
    assert pacer.wait_time(need) == 0
    pacer.take(need)
    assert pacer.wait_time(need) > 0
    pacer.observe(_headers())
    assert pacer.wait_time(need) == 0


def test_an_empty_request_bucket_waits_for_its_refill():
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.observe(_headers(requests=(60, 1)))
    need = Need(output=10)
    assert pacer.wait_time(need) == 0
    pacer.take(need)
    wait = pacer.wait_time(need)
    assert 0.9 < wait <= 1.0  # 60 a minute: one more a second
    clock.now += wait
    assert pacer.wait_time(need) == 0


def test_output_in_flight_counts_against_what_the_service_has_left():
    clock = Clock()
    pacer = Pacer(clock=clock)
    need = Need(output=4000)
    pacer.observe(_headers(output=(6000, 6000)))
    pacer.take(need)
    pacer.take(need)  # 8000 reserved of 6000: the next must wait
    pacer.observe(_headers(output=(6000, 6000)))  # the service has not counted them yet
    assert pacer.wait_time(need) > 0
    pacer.settle(need, 100)
    pacer.settle(need, 100)  # they spent far less than reserved
    assert pacer.wait_time(need) == 0


def test_a_429_pauses_for_retry_after_and_slows_down_then_ramps_up():
    clock = Clock()
    pacer = Pacer(clock=clock, given={"requests": 600})
    need = Need()
    pacer.on_throttled(3.0)
    assert 2.9 < pacer.wait_time(need) <= 3.0
    assert pacer.rate < 1.0
    slowed = pacer.rate
    clock.now += 3.0
    assert 0 < pacer.wait_time(need) < 0.2  # then one request's worth at the slower rate
    clock.now += pacer.wait_time(need)
    assert pacer.wait_time(need) == 0
    for _ in range(5):
        pacer.take(need)
        pacer.settle(need, 10)
    assert slowed < pacer.rate <= 1.0
    assert pacer.throttled == 1 and pacer.calls == 5


def test_the_output_estimate_follows_what_calls_really_wrote():
    pacer = Pacer(clock=Clock())
    first = pacer.estimate(10, 4000)
    assert first.output == 4000  # nothing known yet: a continuation round may use it all
    pacer.take(first)
    pacer.settle(first, 500)
    assert pacer.estimate(10, 4000).output == 500
    assert pacer.estimate(10, 100).output == 100


def test_a_stale_header_never_raises_the_level_above_what_was_taken_since():
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.observe(_headers(requests=(60, 3)))
    for _ in range(3):
        pacer.take(Need())
    # An answer to the first call arrives: its header was written before the other two went.
    pacer.observe(_headers(requests=(60, 2)))
    assert pacer.wait_time(Need()) > 0
    # A service past its output allowance says 0 remaining; the local debt is kept.
    pacer.observe(_headers(output=(6000, 6000)))
    pacer.take(Need(output=100))
    pacer.settle(Need(output=100), 7000)
    pacer.observe(_headers(output=(6000, 0)))
    assert pacer.buckets["output"].level < -900


def test_after_a_429_nothing_is_sent_until_the_allowance_it_owed_has_refilled():
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.observe(_headers(requests=(60, 60), output=(6000, 0)))
    pacer.on_throttled(4.0)
    clock.now += 4.0  # the pause is over, but what refilled during it was owed
    assert pacer.wait_time(Need()) > 0


def test_a_header_counts_the_output_still_to_come_from_the_calls_in_flight():
    # The service takes output when a call completes, so its "remaining" still holds what the
    # calls in flight will write; the local level must not be set to it as it stands.
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.observe(_headers(output=(6000, 6000)))
    for _ in range(3):
        pacer.take(Need(output=100))
    # Calls reserved too little (or the first news was stale): the service has 250 left.
    pacer.observe(_headers(output=(6000, 250)))
    assert pacer.buckets["output"].level <= 250 - 300
    assert pacer.wait_time(Need(output=100)) > 0


def test_a_service_that_tells_no_limits_is_not_held_to_one_call_at_a_time():
    clock = Clock()
    pacer = Pacer(clock=clock)
    need = pacer.estimate(100, 1000)
    pacer.take(need)
    assert pacer.wait_time(need) > 0  # the first answer may yet tell the limits
    pacer.settle(need, 500)  # it came back without rate-limit headers
    pacer.take(need)
    assert pacer.wait_time(need) == 0
