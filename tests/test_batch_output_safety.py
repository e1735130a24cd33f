"""Where answers are written (issue 12 audit): into the file named, never over what must be kept.

``-o`` once wrote ``OUT.partial`` and renamed it over OUT: the input became the answers, a FIFO
or device (as root, ``/dev/null``) became a regular file, a symlink was replaced instead of its
target, and ``/dev/fd/N`` failed with an internal error. The real CLI runs in a subprocess
against the emulator over real HTTP; FIFOs, symlinks and pipes are made in ``tmp_path`` (the
machine's ``/dev/null`` is never a target here: a FIFO stands for "not a regular file").
Also: the JSON shown to the user leaves no C1 control raw.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import emulator_stats

from autocontinue import ConfigurationError, batch
from autocontinue.batch.output import ItemResult, OutputWriter

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


def _one_line_refusal(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "hint" in lines[0], done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _no_temporaries(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.endswith((".partial", ".tmp"))]
    assert left == []


# -- -o that is a file to keep -------------------------------------------------------------


@pytest.mark.parametrize("case", ["input", "symlink to input", "journal", "output-dir file"])
def test_an_output_that_is_the_input_or_the_journal_is_refused_before_any_call(emulator, tmp_path, case):
    source = _input(tmp_path / "in.jsonl")
    journal = tmp_path / "j.sqlite3"
    if case == "input":
        target = ["-o", str(source)]
    elif case == "symlink to input":
        (tmp_path / "link.jsonl").symlink_to(source)
        target = ["-o", str(tmp_path / "link.jsonl")]
    elif case == "journal":
        target = ["-o", str(journal)]
    else:  # the input is DIR/a.json and item "a" would be written to DIR/a.json
        (tmp_path / "dir").mkdir()
        source = _input(tmp_path / "dir" / "a.json")
        target = ["--output-dir", str(tmp_path / "dir")]
    before, calls = source.read_bytes(), emulator_stats(emulator)["requests"]
    done = _cli(
        emulator, tmp_path, "batch", str(source), *target, "--journal", str(journal), "--model", MODEL
    )
    _one_line_refusal(done, "would destroy it")
    assert source.read_bytes() == before
    assert emulator_stats(emulator)["requests"] == calls


def test_python_batch_refuses_an_output_that_is_its_input(tmp_path):
    source = _input(tmp_path / "in.jsonl")
    before = source.read_bytes()
    with pytest.raises(ConfigurationError, match="is the input") as caught:
        batch(str(source), output=str(source), journal=str(tmp_path / "j.sqlite3"), backend="local")
    assert caught.value.hint and source.read_bytes() == before


def test_an_output_dir_beside_the_input_is_fine_when_no_item_file_is_the_input(tmp_path):
    from autocontinue.batch.output import check_targets

    source = _input(tmp_path / "in.jsonl", ("a",))
    check_targets(None, tmp_path, inputs=source, journal=tmp_path / "j.sqlite3", ids=["a", "in"])
    with pytest.raises(ConfigurationError, match="is the input"):
        check_targets(None, tmp_path, inputs=tmp_path / "a.json", journal=None, ids=["a"])


def test_run_refuses_an_output_that_is_its_prompt_file(emulator, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Tell a story", encoding="utf-8")
    calls = emulator_stats(emulator)["requests"]
    done = _cli(emulator, tmp_path, "-f", str(prompt), "-o", str(prompt), "--model", MODEL)
    _one_line_refusal(done, "prompt file")
    assert prompt.read_text(encoding="utf-8") == "Tell a story"
    assert emulator_stats(emulator)["requests"] == calls


# -- -o that is not a regular file: written into, never renamed over --------------------------


class _FifoReader(threading.Thread):
    """Reads a FIFO to its end (a daemon: if the FIFO is replaced, it never gets a writer)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.data = path, b""

    def run(self) -> None:
        with open(self.path, "rb") as fifo:
            self.data = fifo.read()


def _command(kind: str, source: Path, out: str) -> list[str]:
    if kind == "batch":
        return ["batch", str(source), "-o", out, "--model", MODEL, "-q"]
    return ["Tell a story", "-o", out, "--model", MODEL, "-q"]


def _assert_answers(kind: str, data: bytes) -> None:
    """``data`` is the whole output: batch's lines for items a and b, or run's answer."""
    text = data.decode("utf-8")
    if kind == "batch":
        assert sorted(json.loads(line)["id"] for line in text.splitlines()) == ["a", "b"]
    else:
        assert "keeper" in text and not text.lstrip().startswith("{")


@pytest.mark.parametrize("kind", ["batch", "run"])
def test_a_fifo_output_is_written_into_and_stays_a_fifo(emulator, tmp_path, kind):
    fifo = tmp_path / "answers.fifo"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    reader.start()
    done = _cli(emulator, tmp_path, *_command(kind, _input(tmp_path / "in.jsonl"), str(fifo)))
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    reader.join(timeout=30)
    assert not reader.is_alive()
    _assert_answers(kind, reader.data)
    _no_temporaries(tmp_path)


@pytest.mark.parametrize("kind", ["batch", "run"])
def test_a_symlink_output_writes_its_target_and_stays_a_link(emulator, tmp_path, kind):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "answers.txt"
    real.write_text("old answers\n", encoding="utf-8")
    os.chmod(real, 0o640)
    link = tmp_path / "answers.link"
    link.symlink_to(real)
    done = _cli(emulator, tmp_path, *_command(kind, _input(tmp_path / "in.jsonl"), str(link)))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    _assert_answers(kind, real.read_bytes())
    assert "old answers" not in real.read_text(encoding="utf-8")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the file's own mode is kept
    _no_temporaries(tmp_path)
    _no_temporaries(tmp_path / "real")


@pytest.mark.parametrize("kind", ["batch", "run"])
def test_a_dev_fd_output_is_written_into_the_pipe(emulator, tmp_path, kind):
    # What the shell passes for -o >(wc -c): /dev/fd/N, the write end of a pipe.
    read_end, write_end = os.pipe()
    try:
        command = _command(kind, _input(tmp_path / "in.jsonl"), f"/dev/fd/{write_end}")
        done = _cli(emulator, tmp_path, *command, pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert done.returncode == 0, done.stderr
    _assert_answers(kind, data)


@pytest.mark.parametrize("kind", ["batch", "run"])
def test_an_output_that_cannot_be_written_is_refused_before_any_call(emulator, tmp_path, kind):
    # /proc/version is "writable" to root by os.access, yet no file can be made beside it.
    calls = emulator_stats(emulator)["requests"]
    done = _cli(emulator, tmp_path, *_command(kind, _input(tmp_path / "in.jsonl"), "/proc/version"))
    _one_line_refusal(done, "/proc/version")
    assert emulator_stats(emulator)["requests"] == calls


def test_devices_fifos_and_descriptors_are_written_in_place_regular_files_are_not(tmp_path):
    from autocontinue.outfile import in_place

    os.mkfifo(tmp_path / "f")
    (tmp_path / "r").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "r")
    assert in_place("/dev/null") and in_place(tmp_path / "f") and in_place("/dev/stdout")
    assert not in_place(tmp_path / "r") and not in_place(tmp_path / "l") and not in_place(tmp_path / "new")


def test_a_resumed_output_rewritten_into_a_fifo_keeps_it_a_fifo(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    reader.start()
    writer = OutputWriter(fifo)
    writer.rewrite([ItemResult(id="a", text="done")])
    writer.write(ItemResult(id="b", text="later"))
    writer.close()
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(line)["id"] for line in reader.data.splitlines()] == ["a", "b"]


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
