"""Options as the one typed source of the public API: signatures, validation, records.

Wrong arguments are refused at the call, before any model call: the backend here is the
in-process ScriptedBackend (a real Backend that counts its calls), because what is tested is
that nothing reaches a backend at all. The README is read as a user would.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import autocontinue
from autocontinue import AutocontinueError, ConfigurationError, Options
from autocontinue.backends.scripted import ScriptedBackend
from autocontinue.engine import RetryPolicy
from autocontinue.events import Checkpoint
from autocontinue.options import OPTION_FIELDS

ROOT = Path(__file__).resolve().parents[1]
ANSWER = " ".join(f"word{i}." for i in range(600))
ENTRY_POINTS = ("generate", "stream", "agenerate", "astream")


# -- one source: signatures, README, records ------------------------------------------------


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_takes_exactly_the_option_fields_by_keyword(name):
    params = inspect.signature(getattr(autocontinue, name)).parameters.values()
    keywords = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keywords == list(OPTION_FIELDS)
    assert [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY] == ["prompt"]
    defaults = {f.name: f.default for f in dataclasses.fields(Options)}
    assert {p.name: p.default for p in params if p.name != "prompt"} == defaults


def test_the_readme_lists_exactly_the_option_fields_with_their_defaults():
    readme = (ROOT / "README.md").read_text("utf-8")
    signature = re.search(r"`generate\(prompt, \*, (.*?)\)`", readme, re.S)
    assert signature, "the README's generate(...) signature line"
    listed = [item.split("=") for item in re.split(r",\s*", " ".join(signature.group(1).split()))]
    assert [name for name, _ in listed] == list(OPTION_FIELDS)
    defaults = {f.name: f.default for f in dataclasses.fields(Options)}
    assert {name: ast.literal_eval(default) for name, default in listed} == defaults


def test_the_old_defaults_stay():
    o = Options()
    assert (o.max_rounds, o.strategy, o.cache, o.stop_sequences) == (20, "auto", True, ())
    assert all(
        getattr(o, name) is None
        for name in OPTION_FIELDS
        if name not in ("max_rounds", "strategy", "cache", "stop_sequences")
    )


def test_help_shows_every_option_with_its_description():
    doc = autocontinue.generate.__doc__ or ""
    for name in OPTION_FIELDS:
        assert re.search(rf"^\s+{name}: \S", doc, re.M), name


def test_the_record_is_json_safe_secret_free_and_round_trips():
    client = type("Client", (), {"messages": object(), "api_key": "sk-ant-secret"})()
    options = Options(
        model="claude-sonnet-4-5",
        client=client,
        backend=ScriptedBackend(ANSWER),
        stop_sequences=["END"],
        resume=Checkpoint(text="x", held="", rounds=[]),
        retry=RetryPolicy(),
        thinking="off",
        effort="low",
        max_words=900,
        base_url="http://127.0.0.1:9/v1",
        server="vllm",
    ).validate()
    record = options.to_record()
    text = json.dumps(record)
    assert "secret" not in text and "client" not in record and "backend" not in record
    assert set(record) == set(OPTION_FIELDS) - {"backend", "client", "resume", "retry"}
    again = Options.from_record(json.loads(text))
    assert again == options.replace(client=None, backend=None, resume=None, retry=None)
    journal_entry = {"prompt": "hi", "backend": "local", "endpoint": "x", **Options(seed=3).to_record()}
    assert Options.from_record(journal_entry) == Options(seed=3)


def test_keywords_feed_generate_back():
    options = Options(max_tokens_per_call=300, max_rounds=40, backend=ScriptedBackend(ANSWER))
    result = autocontinue.generate("write", **options.keywords())
    assert result.text == ANSWER and len(result.rounds) > 1


@pytest.mark.parametrize("stops", [None, "END", ["END"], ("END",)])
def test_stop_sequences_take_the_natural_forms(stops):
    assert Options(stop_sequences=stops).stop_sequences == (() if stops is None else ("END",))


def test_model_path_takes_a_path():
    assert Options(model_path=Path("/m/x.gguf")).validate().model_path == "/m/x.gguf"


def test_any_whole_number_is_a_seed_like_on_the_command_line():
    for seed in (-1, 0, 2**40):
        result = autocontinue.generate("write", backend=ScriptedBackend(ANSWER), seed=seed, max_rounds=40)
        assert result.text == ANSWER


def test_a_misspelt_option_is_refused_with_the_right_name():
    backend = ScriptedBackend(ANSWER)
    with pytest.raises(ConfigurationError) as caught:
        autocontinue.generate("hi", backend=backend, max_round=3)  # type: ignore[call-arg]
    assert "max_round" in caught.value.message and caught.value.hint == "did you mean max_rounds?"
    with pytest.raises(ConfigurationError, match="options by name"):
        autocontinue.generate("hi", "claude-sonnet-4-5")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="one prompt"):
        autocontinue.generate(backend=backend)  # type: ignore[call-arg]
    assert backend.calls == 0
    assert autocontinue.generate(prompt="hi", backend=backend).text == ANSWER  # type: ignore[call-arg]


def test_mypy_refuses_a_misspelt_or_mistyped_option(tmp_path):
    pytest.importorskip("mypy")
    snippet = tmp_path / "use.py"
    snippet.write_text(
        "import autocontinue\n"
        "autocontinue.generate('p', max_rounds=3, strategy='prefill', stop_sequences=['END'], effort='low')\n"
        "autocontinue.generate('p', max_round=3)\n"
        "autocontinue.stream('p', strategy='sideways')\n"
        "_ = autocontinue.agenerate('p', temperature='hot')\n"
        "autocontinue.astream([{'role': 'user', 'content': 'p'}], system=[{'type': 'text', 'text': 's'}])\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--no-incremental",
            "--ignore-missing-imports",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "MYPYPATH": str(Path(autocontinue.__file__).parents[1])},
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [3, 4, 5], done.stdout
    assert 'did you mean "max_rounds"' in errors[0]


# -- validation: every wrong argument is a ConfigurationError with a hint, before any call ----

LONE = "caf\udce9"  # what os.fsdecode makes of invalid UTF-8: cannot be sent

BAD = [
    # the cases of issue 15 item 7
    ("temperature", {"temperature": "hot"}),
    ("model", {"model": 123}),
    ("stop_sequences", {"stop_sequences": [None]}),
    ("until", {"until": 5}),
    ("resume", {"resume": "garbage"}),
    ("client", {"client": "notaclient"}),
    ("prompt", {"prompt": LONE}),
    ("system", {"system": LONE}),
    ("max_rounds", {"max_rounds": True}),
    ("max_tokens_per_call", {"max_tokens_per_call": "100"}),
    ("cache", {"cache": "yes"}),
    ("seed", {"seed": 1.5}),
    ("retry", {"retry": 3}),
    # more of the same kind
    ("min_words", {"min_words": 500, "max_words": 100}),
    ("max_words", {"max_words": 0}),
    ("max_output_tokens", {"max_output_tokens": -5}),
    ("strategy", {"strategy": "sideways"}),
    ("effort", {"effort": "extreme"}),
    ("thinking", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    ("thinking", {"thinking": "adaptive", "prefill": "Once"}),
    ("server", {"server": "nginx"}),
    ("backend", {"backend": 42}),
    ("backend", {"backend": "cloud"}),
    ("until", {"until": ""}),
    ("stop sequence", {"stop_sequences": ["  "]}),
    ("stop_sequences", {"stop_sequences": 5}),
    ("prompt", {"prompt": 123}),
    ("prompt", {"prompt": None}),
    ("prompt", {"prompt": [{"role": "user", "content": LONE}]}),
    ("prefill", {"prefill": 7}),
    ("prefill", {"prefill": LONE}),
    ("model", {"model": "  "}),
    ("temperature", {"temperature": float("nan")}),
    ("temperature", {"temperature": 1.5}),
    ("system", {"system": 42}),
    ("system", {"system": ["not a block"]}),
    ("base_url", {"base_url": "not a url"}),
    ("base_url", {"base_url": "ftp://127.0.0.1/"}),
    ("base_url", {"base_url": "http://127.0.0.1:99999/"}),
    ("model_path", {"model_path": 5}),
]


def _call(name: str, prompt, options):
    function = getattr(autocontinue, name)
    if name == "agenerate":
        return asyncio.run(function(prompt, **options))
    return function(prompt, **options)  # stream/astream must refuse here, not on first next()


@pytest.mark.parametrize("name", ENTRY_POINTS)
@pytest.mark.parametrize("what, options", BAD, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BAD)])
def test_a_wrong_argument_is_refused_with_a_hint_before_any_call(name, what, options):
    options = dict(options)
    prompt = options.pop("prompt", "Write a long story")
    backend = options.pop("backend", ScriptedBackend(ANSWER))
    with pytest.raises(AutocontinueError) as caught:
        _call(name, prompt, {"backend": backend, **options})
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert what in error.message and error.hint
    assert "\n" not in error.one_line()
    if isinstance(backend, ScriptedBackend):
        assert backend.calls == 0


def test_validate_returns_the_options_and_is_what_the_calls_use():
    options = Options(max_words=10, min_words=10, temperature=0, stop_sequences=["END"], until="\n")
    assert options.validate() is options
    with pytest.raises(ConfigurationError, match="max_rounds"):
        Options(max_rounds=0).validate()
