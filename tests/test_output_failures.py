"""When the output fails mid-way (disk full, an I/O error, a reader gone), after a kill -9, and
on resume.

A write that fails once the run is paid for (ENOSPC, EIO, EPIPE) used to end in an internal
error (exit 70); it is now one line naming the file and the OS error, exit 2, and the answers
are kept: a batch's items are journaled before their lines are written, so the same command
run again writes them without a new call. The disk is never filled: ``/dev/full`` answers every
write with ENOSPC (the test checks it is still a device afterwards) and a FIFO whose reader
closes gives EPIPE. The real CLI runs in a subprocess against the emulator over real HTTP.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import emulator_stats

from autocontinue import OutputError
from autocontinue.batch.output import ItemResult, OutputWriter
from autocontinue.journal import Journal

MODEL = "claude-haiku-4-5"
FULL = "/dev/full"


@pytest.fixture(scope="module")
def emulator():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=120) as url:
        yield url


@pytest.fixture(autouse=True)
def _dev_full_stays_a_device():
    yield
    assert stat.S_ISCHR(os.lstat(FULL).st_mode), "/dev/full was replaced"


def _popen_args(url: str, home: Path, *args: str) -> dict[str, object]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test-key"}
    env["AUTOCONTINUE_HOME"] = str(home)
    env.pop("AUTOCONTINUE_DEBUG", None)
    return {"args": [sys.executable, "-m", "autocontinue", *args], "env": env, "stdin": subprocess.DEVNULL}


def _cli(url: str, home: Path, *args: str, **extra: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        **_popen_args(url, home, *args), capture_output=True, text=True, timeout=300, **extra
    )


def _input(path: Path, ids: tuple[str, ...]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": f"Tell {i}"}) + "\n" for i in ids), "utf-8")
    return path


def _one_line(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "(hint: " in lines[0], done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _ids(text: str) -> list[str]:
    return sorted(json.loads(line)["id"] for line in text.splitlines())


# -- disk full and a reader gone: one line, exit 2, the answers kept ----------------------------


def test_a_batch_whose_output_disk_is_full_exits_2_and_the_rerun_writes_the_item_without_a_call(
    emulator, tmp_path
):
    source = _input(tmp_path / "in.jsonl", ("a",))
    done = _cli(emulator, tmp_path, "batch", str(source), "-o", FULL, "--model", MODEL, "-q")
    line = _one_line(
        done, FULL, "No space left on device (ENOSPC)", "free some space", "rerun the same command"
    )
    assert line.startswith("autocontinue: cannot write the output")

    calls = emulator_stats(emulator)["requests"]
    out = tmp_path / "out.jsonl"
    again = _cli(emulator, tmp_path, "batch", str(source), "-o", str(out), "--model", MODEL, "-q")
    assert again.returncode == 0, again.stderr
    assert _ids(out.read_text("utf-8")) == ["a"]  # the item whose line failed was journaled
    assert emulator_stats(emulator)["requests"] == calls  # and is not paid for again


class _ReadsOneLine(threading.Thread):
    """Reads the first line from a FIFO, then closes it: the writer's next write gets EPIPE."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.first = path, b""

    def run(self) -> None:
        with open(self.path, "rb") as fifo:
            self.first = fifo.readline()


def test_a_fifo_whose_reader_quits_mid_batch_exits_2_and_the_rerun_writes_every_line(emulator, tmp_path):
    source = _input(tmp_path / "in.jsonl", ("a", "b"))
    fifo = tmp_path / "answers.fifo"
    os.mkfifo(fifo)
    reader = _ReadsOneLine(fifo)
    reader.start()
    command = ["batch", str(source), "-o", str(fifo), "--model", MODEL, "-q", "--concurrency", "1"]
    done = _cli(emulator, tmp_path, *command)
    _one_line(done, str(fifo), "Broken pipe (EPIPE)", "keep a reader on it", "rerun the same command")
    reader.join(timeout=30)
    first = json.loads(reader.first)["id"]  # the first line got through before the reader quit
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    calls = emulator_stats(emulator)["requests"]
    out = tmp_path / "out.jsonl"
    again = _cli(emulator, tmp_path, *command[:3], str(out), *command[4:])
    assert again.returncode == 0, again.stderr
    assert _ids(out.read_text("utf-8")) == ["a", "b"]
    assert emulator_stats(emulator)["requests"] == calls  # both were journaled as finished
    assert first in ("a", "b")


def test_run_whose_output_disk_is_full_exits_2_and_names_the_run_to_show(emulator, tmp_path):
    done = _cli(emulator, tmp_path, "Tell a story", "-o", FULL, "--model", MODEL, "-q")
    line = _one_line(done, FULL, "ENOSPC", "free some space", "autocontinue show ")
    run_id = line.split("autocontinue show ")[1].split()[0]
    shown = _cli(emulator, tmp_path, "show", run_id)
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr


def _cli_to(url: str, home: Path, stdout: object, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with ``stdout`` as its descriptor 1 (stderr captured)."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        **_popen_args(url, home, *args), stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300
    )


def _to_closed_stdout(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout a pipe whose reader is gone before it writes (as ``| head -c 0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return _cli_to(url, home, write_end, *args)
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "command",
    [
        ("batch", "IN", "-o", "/dev/stdout"),
        ("batch", "IN", "-o", "/dev/fd/1"),
        ("batch", "IN", "-o", "/proc/self/fd/1"),
        ("batch", "IN"),
        ("Tell a story", "-o", "/dev/stdout"),
        ("Tell a story", "-o", "/dev/fd/1"),
        ("Tell a story",),
    ],
    ids=["batch-dev-stdout", "batch-dev-fd-1", "batch-proc-fd-1", "batch-stdout",
         "run-dev-stdout", "run-dev-fd-1", "run-stdout"],
)  # fmt: skip
def test_a_closed_stdout_named_as_the_output_ends_as_a_closed_stdout(emulator, tmp_path, command):
    """``-o /dev/stdout | head`` used to be an OutputError (exit 2, "keep a reader on it"),
    while plain stdout exits 141: the same pipe now ends the same way, resumable."""
    source = _input(tmp_path / "in.jsonl", ("a",))
    args = [str(source) if part == "IN" else part for part in command]
    done = _to_closed_stdout(emulator, tmp_path, *args, "--model", MODEL, "-q")
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "keep a reader" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocontinue: stdout was closed"), done.stderr
    if command[0] == "batch":
        assert "autocontinue batch --resume" in lines[0], lines[0]
    elif "-o" in command:  # the run was done before its file was written: its answer is kept
        assert "autocontinue show " in lines[0], lines[0]


def test_epipe_on_the_file_stdout_is_by_samestat_is_a_closed_stdout(emulator, tmp_path):
    """A FIFO given by its own name that is also descriptor 1 is the process's stdout."""
    source = _input(tmp_path / "in.jsonl", ("a", "b"))
    fifo = tmp_path / "answers.fifo"
    os.mkfifo(fifo)
    reader = _ReadsOneLine(fifo)
    reader.start()
    with open(fifo, "wb") as stdout:  # opens once the reader has: both ends are the one pipe
        done = _cli_to(
            emulator, tmp_path, stdout, "batch", str(source), "-o", str(fifo), "--model", MODEL,
            "-q", "--concurrency", "1",
        )  # fmt: skip
    reader.join(timeout=30)
    assert done.returncode == 141, done.stderr
    assert "stdout was closed" in done.stderr and "Traceback" not in done.stderr


def test_the_writer_raises_output_error_once_then_keeps_quiet():
    writer = OutputWriter(Path(FULL))
    writer.rewrite([])
    with pytest.raises(OutputError) as caught:
        writer.write(ItemResult(id="a", text="x"))
    assert caught.value.path == FULL and "ENOSPC" in caught.value.message and caught.value.hint
    writer.write(ItemResult(id="b", text="y"))  # journaled; the rerun writes it
    writer.close()  # what is still buffered is dropped without a second error


def test_an_output_dir_on_a_full_disk_is_an_output_error(tmp_path, monkeypatch):
    # Mocked: os.replace raising EIO (no faulty disk here); the rest is the real writer.
    def failing(src: object, dst: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "replace", failing)
    writer = OutputWriter(output_dir=tmp_path / "out")
    writer.rewrite([])
    with pytest.raises(OutputError, match=r"a\.json: Input/output error \(EIO\)"):
        writer.write(ItemResult(id="a", text="x"))
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temporary left


def test_a_closed_stdout_stays_a_broken_pipe_for_the_cli_to_end_as_run_does():
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        writer = OutputWriter(stream=stream)
        with pytest.raises(BrokenPipeError):
            writer.write(ItemResult(id="a", text="x"))
        with pytest.raises(BrokenPipeError):
            stream.close()  # the line it buffered


# -- kill -9 in the middle of a rewrite ----------------------------------------------------------

_KILLED_MID_WRITE = """
import os, sys
from pathlib import Path
from autocontinue import outfile
fd, temp = outfile._temporary_beside(Path(sys.argv[1]))
os.write(fd, b"half an output")
print(temp, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from autocontinue import outfile
    from autocontinue.journal.records import process_start
    from autocontinue.outfile import write_into

    outfile._temporaries_in.cache_clear()
    target = tmp_path / "out.jsonl"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_WRITE, str(target)], capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = Path(killed.stdout.strip())
    assert left.exists() and left.name.startswith(".out.jsonl.")
    assert left.name.startswith(f".out.jsonl.{outfile._host_tag()}.")
    host, pid_start = left.name.split(".")[3:5]
    dead_pid = pid_start.split("-")[0]
    parent = f"{os.getppid()}-{process_start(os.getppid())}"
    alive = tmp_path / f".out.jsonl.{host}.{parent}.abcd1234.tmp"  # a live writer's: kept
    reused = tmp_path / f".out.jsonl.{host}.{os.getppid()}-1.abcd1234.tmp"  # its pid, reused: gone
    remote = tmp_path / f".out.jsonl.otherhost.{pid_start}.abcd1234.tmp"  # another host's: kept
    other = tmp_path / f".other.jsonl.{host}.{pid_start}.abcd1234.tmp"  # another output's: kept
    older = tmp_path / f".out.jsonl.{dead_pid}.abcd1234.tmp"  # the older pattern: kept
    foreign = tmp_path / ".out.jsonl.tmp"  # not our pattern
    kept = (alive, remote, other, older, foreign)
    for path in (*kept, reused):
        path.write_text("x")

    write_into(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert not left.exists() and not reused.exists()
    assert [path.name for path in kept if not path.exists()] == []


# -- resume after -o /dev/fd/N ------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_emulator():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400, decode_rate=150) as url:
        yield url


def test_a_run_to_dev_fd_resumes_to_stdout(slow_emulator, tmp_path):
    read_end, write_end = os.pipe()
    args = _popen_args(
        slow_emulator, tmp_path, "Tell a long story", "-o", f"/dev/fd/{write_end}", "--model", MODEL,
        "--max-tokens-per-call", "60",
    )  # fmt: skip
    proc = subprocess.Popen(**args, pass_fds=(write_end,), stderr=subprocess.PIPE)  # type: ignore[call-overload]
    os.close(write_end)
    journal = Journal(tmp_path / "journal.sqlite3")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a round journaled: the run is worth resuming
        record = journal.latest_unfinished() if (tmp_path / "journal.sqlite3").exists() else None
        if record is not None and record.rounds:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    os.close(read_end)
    assert proc.returncode == 143, err
    record = journal.latest_unfinished()
    assert record is not None and record.output is None  # another process's pipe: not recorded

    resumed = _cli(slow_emulator, tmp_path, "resume", record.id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(record.text) and len(resumed.stdout) > len(record.text)
    assert "/proc/" not in resumed.stderr


def test_a_regular_output_is_recorded_as_given_made_absolute(emulator, tmp_path):
    (tmp_path / "real.md").write_text("")
    (tmp_path / "link.md").symlink_to(tmp_path / "real.md")
    done = _cli(emulator, tmp_path, "Tell a story", "-o", "link.md", "--model", MODEL, "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = Journal(tmp_path / "journal.sqlite3").list_runs(1)[0]
    assert record.output == str(tmp_path / "link.md")


def test_a_descriptor_an_older_version_recorded_is_not_written_again_by_resume(emulator, tmp_path):
    import sqlite3

    done = _cli(emulator, tmp_path, "Tell a story", "-o", str(tmp_path / "a.md"), "--model", MODEL, "-q")
    assert done.returncode == 0, done.stderr
    run_id = Journal(tmp_path / "journal.sqlite3").list_runs(1)[0].id
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:  # as recorded before the fix
        db.execute("UPDATE runs SET output = '/proc/999999999/fd/5' WHERE id = ?", (run_id,))
    resumed = _cli(emulator, tmp_path, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == (tmp_path / "a.md").read_text("utf-8")
