"""The engine as a pure state machine: what happened in, events and the next action out.

No backend is called here: the test plays the backend's part by hand, feeding ``step`` the
items a stream would yield (the Backend object only answers questions such as its name).
"""

from __future__ import annotations

from autocontinue.backends.base import BackendDelta, RoundEnd
from autocontinue.backends.scripted import ScriptedBackend
from autocontinue.catalogue import lookup_model
from autocontinue.engine import Call, Done, Engine, RetryPolicy, Sleep, Slept, StreamEnded
from autocontinue.errors import AuthenticationError, PrefillNotSupportedError, TransientBackendError
from autocontinue.events import Finished, StrategyChanged, TextDelta
from autocontinue.memory import PrefillMemory
from autocontinue.state import Budgets, ContinuationState
from autocontinue.usage import Usage


def _engine(tmp_path, strategy="prefill", **kw):
    spec = lookup_model("claude-haiku-4-5")
    state = ContinuationState(spec=spec, budgets=Budgets(max_tokens_per_call=100), strategy=strategy)
    ticks = iter(range(0, 1000, 5))
    return Engine(
        ScriptedBackend("unused", model=spec.id),
        state,
        model=spec.id,
        prompt=[{"role": "user", "content": "hi"}],
        memory=PrefillMemory(tmp_path / "p.json"),
        retry=RetryPolicy(jitter=lambda: 0.0),
        clock=lambda: float(next(ticks)),
        **kw,
    )


def test_a_run_is_a_sequence_of_actions_with_no_io(tmp_path):
    engine = _engine(tmp_path)
    events, action = engine.begin("")
    assert isinstance(action, Call) and action.request.max_tokens == 100
    events, action = engine.step(BackendDelta("Hello there, "))
    assert action is None and "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there,"
    events, action = engine.step(RoundEnd("max_tokens", Usage(output_tokens=100)))
    assert isinstance(action, Call)
    assert action.request.messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello there,"}],
    }
    # A stream that ended without a stop reason, before any text: backoff, then the same call.
    first = action.request
    events, action = engine.step(StreamEnded())
    assert action == Sleep(1.0)  # base delay, no jitter: the injected source says 0
    events, action = engine.step(Slept())
    assert isinstance(action, Call) and action.request == first
    engine.step(BackendDelta("world."))
    events, action = engine.step(RoundEnd("end_turn", Usage(output_tokens=2)))
    assert isinstance(action, Done) and action.result.text == "Hello there, world."
    assert isinstance(events[-1], Finished)
    assert [r.duration_s for r in action.result.rounds] == [5.0, 5.0]  # the injected clock


def test_a_prefill_refusal_is_an_event_and_the_engine_writes_no_file(tmp_path):
    engine = _engine(tmp_path)
    engine.begin("Start")
    events, action = engine.step(PrefillNotSupportedError("prefill is not supported"))
    assert [type(e) for e in events][:1] == [StrategyChanged]
    assert isinstance(action, Call) and action.request.messages[-1]["role"] == "user"
    assert not (tmp_path / "p.json").exists()  # the drivers remember it, as a listener


def test_errors_become_a_done_action_carrying_the_text(tmp_path):
    engine = _engine(tmp_path)
    engine.begin("")
    engine.step(BackendDelta("Some text "))
    events, action = engine.step(AuthenticationError("bad key", status_code=401))
    assert isinstance(action, Done) and action.result is None
    assert isinstance(action.error, AuthenticationError) and action.error.partial.text == "Some text "


def test_giving_up_is_a_done_action_too(tmp_path):
    engine = _engine(tmp_path)
    engine.retry = RetryPolicy(max_attempts=2, jitter=lambda: 0.0)
    engine.begin("")
    _, action = engine.step(TransientBackendError("overloaded", status_code=529))
    assert action == Sleep(1.0)
    engine.step(Slept())
    _, action = engine.step(TransientBackendError("overloaded", status_code=529))
    assert isinstance(action, Done) and isinstance(action.error, TransientBackendError)
