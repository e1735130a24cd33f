"""The JSON shown to the user (batch lines and files, ``--json``) leaves no control raw.

A model's 8-bit CSI (U+009B) in a batch line on a terminal could drive it; the real CLI runs in
a subprocess against the emulator over real HTTP, whose "model" writes such controls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autocontinue.batch.output import ItemResult

MODEL = "claude-haiku-4-5"
HOSTILE = "A \x9b31m red \x1b]0;title\x07 line\u2028split\u2029 \x7f end."


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    from autocontinue.emulator import run_emulator

    corpus = tmp_path_factory.mktemp("corpus") / "hostile.txt"
    corpus.write_text("\n".join(f"The keeper {HOSTILE} climbed." for _ in range(4)), encoding="utf-8")
    with run_emulator(length=120, source=f"corpus:{corpus}") as url:
        yield url


def _env(url: str, home: Path) -> dict[str, str]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test-key"}
    env["AUTOCONTINUE_HOME"] = str(home)
    env.pop("AUTOCONTINUE_DEBUG", None)
    return env


def _cli(url: str, home: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "autocontinue", *args],
        env=_env(url, home),
        capture_output=True,
        text=True,
        timeout=300,
        **popen,
    )


def _input(path: Path, ids: tuple[str, ...] = ("a", "b")) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Tell {i}"}) + "\n" for i in ids), "utf-8")
    return path


# -- JSON that cannot drive a terminal -------------------------------------------------------


def test_an_item_line_escapes_c1_controls_and_line_separators():
    line = ItemResult(id="a", text=HOSTILE).to_line()
    for raw in ("\x9b", "\x1b", "\x07", "\x7f", "\u2028", "\u2029"):
        assert raw not in line
    assert "\\u009b31m" in line and line.count("\n") == 1
    assert json.loads(line)["text"] == HOSTILE  # same value once decoded
    assert "é" in ItemResult(id="a", text="é").to_line()  # letters stay readable


def test_batch_lines_and_run_json_on_stdout_hold_no_raw_control(emulator, tmp_path):
    source = _input(tmp_path / "in.jsonl", ("a",))
    for command in (["batch", str(source), "--model", MODEL, "-q"], ["Tell", "--json", "--model", MODEL]):
        done = _cli(emulator, tmp_path, *command)
        assert done.returncode == 0, done.stderr
        assert not any(raw in done.stdout for raw in ("\x9b", "\x1b", "\x07", "\u2028")), command
        assert "\x9b31m" in json.loads(done.stdout.splitlines()[0])["text"]
