"""Where the journal lives and how its file is made private.

Rules (issue 15 item 6): a journal path that is a symlink is refused (the link and its target
are left as they are); directories the journal creates are 0700 whatever the umask; the
autocontinue home directory (``$AUTOCONTINUE_HOME`` or the user data directory) is tightened
to 0700 when it is the current user's, since autocontinue owns it, while the directory of an
explicit ``--journal PATH`` is the user's and is left alone; the journal file is made 0600
when autocontinue creates it, and an existing file is tightened only once it is known to be
an autocontinue journal owned by the current user (``tighten_journal_file``), never a file
autocontinue did not make.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import JournalError

__all__ = ["home_directory", "default_journal_path", "prepare_journal_file", "tighten_journal_file"]

_OPEN_HINT = "check the directory's permissions, set AUTOCONTINUE_HOME, or pass --journal PATH / --no-journal"


def home_directory() -> Path:
    """``$AUTOCONTINUE_HOME``, else the platform's user data directory for autocontinue."""
    home = os.environ.get("AUTOCONTINUE_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("autocontinue"))


def default_journal_path() -> Path:
    """``$AUTOCONTINUE_HOME/journal.sqlite3``, else the platform's user data directory."""
    return home_directory() / "journal.sqlite3"


def prepare_journal_file(path: Path) -> bool:
    """Make the directories and the file if missing; True if this call created the file.

    Raises JournalError (one line, with a hint) for a symlinked path or an OS failure.
    """
    if path.is_symlink():
        target = os.readlink(path)
        raise JournalError(
            f"the journal path {path} is a symbolic link (to {target}); it is not followed",
            hint=f"pass the real file with --journal {os.path.realpath(path)}, or remove the link",
        )
    try:
        _make_private_dirs(path.parent)
        if path.parent == home_directory():
            _tighten_owned_dir(path.parent)
        return _create_file(path)
    except OSError as exc:
        raise JournalError(
            f"cannot open the journal {path}: {exc.strerror or exc}", hint=_OPEN_HINT
        ) from None


def tighten_journal_file(path: Path) -> None:
    """Make an existing autocontinue journal owned by this user 0600 (not following links)."""
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700 regardless of the umask."""
    missing = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(created, 0o700)


def _tighten_owned_dir(directory: Path) -> None:
    info = os.lstat(directory)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(directory, 0o700)


def _create_file(path: Path) -> bool:
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.close(os.open(path, flags))
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True
