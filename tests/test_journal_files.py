"""The journal file's safety (issue 15 item 6): symlinks refused, directories private whatever
the umask, the home directory tightened, files autocontinue did not make left alone.

Each case runs the real CLI in a subprocess (the umask is per process).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autocontinue.errors import JournalError
from autocontinue.journal import Journal


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _cli(*args: str, home: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["AUTOCONTINUE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args],
        capture_output=True,
        env=env,
        timeout=240,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], result.stderr
    return lines[0]


def test_a_symlinked_journal_is_refused_and_its_target_left_alone(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    target.chmod(0o644)
    link = tmp_path / "journal.sqlite3"
    link.symlink_to(target)
    result = _cli("runs", "--journal", str(link), home=tmp_path / "home")
    assert result.returncode == 2
    line = _one_line(result)
    assert "symbolic link" in line and str(target) in line and "hint:" in line
    assert _mode(target) == 0o644 and target.read_text() == "not yours"


def test_a_symlinked_default_journal_is_refused_too(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "target.sqlite3"
    Journal(target).close()
    target.chmod(0o640)
    (home / "journal.sqlite3").symlink_to(target)
    result = _cli("runs", home=home)
    assert result.returncode == 2 and "symbolic link" in _one_line(result)
    assert _mode(target) == 0o640


def test_with_umask_000_the_directories_it_creates_are_private(tmp_path):
    home = tmp_path / "a" / "b" / "home"
    result = _cli("runs", home=home, umask=0)
    assert result.returncode == 0, result.stderr
    for directory in (tmp_path / "a", tmp_path / "a" / "b", home):
        assert _mode(directory) == 0o700, directory
    for file in home.iterdir():
        assert _mode(file) == 0o600, file


def test_an_open_home_directory_it_owns_is_tightened(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    assert _cli("runs", home=home).returncode == 0
    assert _mode(home) == 0o700


def test_the_directory_of_an_explicit_journal_path_is_the_users_and_left_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    path = shared / "j.sqlite3"
    Journal(path).close()
    assert _cli("runs", "--journal", str(path), home=tmp_path / "home").returncode == 0
    assert _mode(shared) == 0o775 and _mode(path) == 0o600


def test_a_file_that_is_not_an_autocontinue_journal_keeps_its_mode(tmp_path):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    path.chmod(0o644)
    result = _cli("runs", "--journal", str(path), home=tmp_path / "home")
    assert result.returncode == 2 and "not an autocontinue journal" in _one_line(result)
    assert _mode(path) == 0o644


def test_an_old_journal_of_its_own_is_tightened(tmp_path):
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    path.chmod(0o644)
    assert _cli("runs", "--journal", str(path), home=tmp_path / "home").returncode == 0
    assert _mode(path) == 0o600


def test_a_symlink_in_the_library_is_a_journal_error(tmp_path):
    (tmp_path / "j.sqlite3").symlink_to(tmp_path / "missing-target")
    with pytest.raises(JournalError, match="symbolic link"):
        Journal(tmp_path / "j.sqlite3")
    assert not (tmp_path / "missing-target").exists()
