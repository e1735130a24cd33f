"""Writing into the file the user named (``-o``): that file itself, never a new one in its place.

A regular file (a symlink is followed to it) is rewritten atomically: a temporary file in the
target's own directory, then a rename over the target, so no reader sees half an output.
Anything else is written into as it is, with no temporary file and no rename (which would put
a regular file where the device was): a character device (``/dev/null``, a terminal), a FIFO,
or an open descriptor (``/dev/fd/N``, ``/dev/stdout``, a shell's ``>(...)``), opened to append
so it never truncates what the shell gave. ``output_problem`` says in one line why a path
cannot take the output, before anything is spent; ``same_file`` tells the caller when the
output would overwrite a file it must keep (the input, the journal). A write that fails later
(disk full, an I/O error, a FIFO whose reader went away) is an ``OutputError`` naming the file
and the OS error (``cannot_write``).

A temporary file is named ``.<target>.<host>.<pid>-<start>.<random>.tmp`` (``<host>`` this
machine's name made safe, ``<start>`` when the process started, ``x`` if unknown): one left by
a process killed mid-write (kill -9) is removed by the next write of the same target on the
same host once that process is gone (``journal.records.owner_alive``: a reused pid with another
start time is gone too). Another host's temporary files are never removed (a shared directory:
its pids are not ours to check), nor are names of the older ``.<target>.<pid>.<random>.tmp``
pattern.

EPIPE on a path that is this process's stdout (``/dev/stdout``, ``/dev/fd/1``, or the same
file as descriptor 1) is the closed stdout it is: ``stdout_closed`` tells the caller to let the
``BrokenPipeError`` through, so the CLI ends as for plain stdout (exit 141).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import socket
import stat
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import IO

from .errors import OutputError
from .journal.records import owner_alive, process_start

__all__ = [
    "in_place",
    "real_target",
    "output_problem",
    "same_file",
    "write_into",
    "open_into",
    "cannot_write",
    "stdout_closed",
]

#: A directory of open descriptors: /dev/fd and /dev/stdout lead here.
_FD_DIR = re.compile(r"^/proc/(self|thread-self|\d+)(/task/\d+)?/fd$")
_LINK_HOPS = 40
#: Our temporary files: ``.<target>.<host>.<pid>-<start>.<8 random characters of mkstemp>.tmp``.
_TEMPORARY = re.compile(
    r"\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)-(?P<start>\d+|x)\.[a-z0-9_]{8}\.tmp"
)
_UNSAFE_HOST = re.compile(r"[^A-Za-z0-9-]")
#: The paths that name this process's stdout whatever it is.
_STDOUT_NAMES = ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")
#: What to do first, for the errors a write of the output meets.
_FIRST_STEP = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (the disk quota is full)",
    errno.EFBIG: "free some space or raise the file size limit",
    errno.EPIPE: "keep a reader on it until the end",
    errno.EIO: "check the disk or device",
}


def _descriptor(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` (following its symlinks) is an entry of a /proc/.../fd directory."""
    current = os.path.abspath(path)
    for _ in range(_LINK_HOPS):
        directory = os.path.realpath(os.path.dirname(current))
        if _FD_DIR.match(directory):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.join(directory, os.readlink(current))
    return False


def in_place(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is written into as it is: it exists and is not a regular file (a device,
    a FIFO), or it is an open descriptor (``/dev/fd/N``, ``/dev/stdout``)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return _descriptor(path)
    return not stat.S_ISREG(mode) or _descriptor(path)


def real_target(path: str | os.PathLike[str]) -> Path:
    """The regular file a write to ``path`` replaces: its symlinks followed (a dangling one to
    the file it names)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def output_problem(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """Why ``path`` cannot take the output, as (what is wrong, hint), or None if it can.

    The first part follows the path in a sentence: "``-o X`` is a directory".
    """
    target = Path(path).expanduser()
    if target.is_dir():
        return "is a directory", "give a file name"
    if in_place(target):
        try:
            mode = os.stat(target).st_mode
        except OSError as exc:
            return f"cannot be written ({exc.strerror or exc})", "check the path"
        if stat.S_ISSOCK(mode):
            return "is a socket", "give a file, a FIFO or a device"
        if not os.access(target, os.W_OK):
            return "is not writable", "choose another file"
        return None
    real = real_target(target)
    if not real.parent.is_dir():
        return f"cannot be written: directory {real.parent} does not exist", "create it first"
    if real.exists() and not os.access(real, os.W_OK):
        return "is not writable", "choose another file"
    try:  # the rename needs a new file beside the target (root passes os.access even on /proc)
        fd, probe = _temporary_beside(real)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return (
            f"cannot be written: no file can be made in {real.parent} ({exc.strerror or exc})",
            "choose a file in a directory you can write to",
        )
    return None


def same_file(path: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """True if writing ``path`` would overwrite the regular file ``other`` (the same inode, or,
    for files not made yet, the same path once symlinks are followed)."""
    try:
        return os.path.samefile(path, other) and stat.S_ISREG(os.stat(other).st_mode)
    except OSError:
        return real_target(path) == real_target(other)


def open_into(path: str | os.PathLike[str]) -> IO[str]:
    """``path`` opened to append, for output written into it as it is (``in_place``)."""
    return open(Path(path).expanduser(), "a", encoding="utf-8", newline="")  # noqa: SIM115 - the caller closes it


def write_into(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as the whole output at ``path``: appended into a device, FIFO or
    descriptor; else a new regular file renamed over the target. OSError if it cannot."""
    if in_place(path):
        with open_into(path) as out:
            out.write(text)
        return
    _replace(real_target(path), text)


def cannot_write(path: str | os.PathLike[str], exc: OSError, then: str) -> OutputError:
    """``exc``, met writing the output ``path``, as one line naming the file and the OS error;
    the hint says what to do first, ``then`` how the text is had again."""
    reason = exc.strerror or str(exc)
    code = errno.errorcode.get(exc.errno or 0)
    if code:
        reason += f" ({code})"
    first = _FIRST_STEP.get(exc.errno or 0, "check the output")
    return OutputError(
        f"cannot write the output {path}: {reason}", path=str(path), hint=f"{first}, then {then}"
    )


def stdout_closed(path: str | os.PathLike[str], exc: BaseException) -> bool:
    """True if ``exc``, met writing ``path``, is EPIPE on this process's own stdout (the caller
    lets the ``BrokenPipeError`` through, as for plain stdout)."""
    return isinstance(exc, BrokenPipeError) and _is_stdout(path)


def _is_stdout(path: str | os.PathLike[str]) -> bool:
    target = Path(path).expanduser()
    if os.path.abspath(target) in _STDOUT_NAMES:
        return True
    try:
        return os.path.samestat(os.fstat(1), os.stat(target))
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    """This host's name as a part of a file name: letters, digits and ``-``, at most 40
    characters; a name changed to fit gets a short hash of the whole so two hosts stay apart."""
    host = socket.gethostname() or "localhost"
    tag = _UNSAFE_HOST.sub("_", host)
    if tag != host or len(tag) > 40:
        tag = f"{tag[:31]}_{hashlib.sha1(host.encode()).hexdigest()[:8]}"
    return tag


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A new temporary file beside ``target`` (its descriptor and path), named with our host,
    pid and start time; ours left by gone processes for the same target are removed first."""
    _remove_stale_temporaries(target)
    started = process_start(os.getpid()) or "x"
    prefix = f".{target.name}.{_host_tag()}.{os.getpid()}-{started}."
    return tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")


def _remove_stale_temporaries(target: Path) -> None:
    for name, pid, started in _temporaries_in(str(target.parent)).pop(target.name, []):
        if not owner_alive(socket.gethostname(), pid, started, 0.0):
            with suppress(OSError):
                os.unlink(target.parent / name)


@functools.lru_cache(maxsize=16)
def _temporaries_in(directory: str) -> dict[str, list[tuple[str, int, str | None]]]:
    """This host's temporary files in ``directory`` by the target they were for, read once a
    process (a batch's output directory is not listed again for each item)."""
    found: dict[str, list[tuple[str, int, str | None]]] = {}
    with suppress(OSError):
        for name in os.listdir(directory):
            match = _TEMPORARY.fullmatch(name)
            if match and match["host"] == _host_tag():
                started = None if match["start"] == "x" else match["start"]
                found.setdefault(match["target"], []).append((name, int(match["pid"]), started))
    return found


def _replace(target: Path, text: str) -> None:
    """``target`` holds ``text`` (its mode kept if it existed), or is left as it was."""
    fd, temp = _temporary_beside(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _mode_for(target))
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
