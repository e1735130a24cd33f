"""Reading what the user gave: the prompt (argument, file or stdin), the prefill, the paths."""

from __future__ import annotations

import os
import select
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import MissingCredentialsError
from ..outfile import output_problem, same_file
from .errors import CommandFailed, warn

__all__ = [
    "read_prompt",
    "read_text_file",
    "clean_prefill",
    "check_output_path",
    "choose_backend",
    "check_endpoint",
    "check_url",
    "stdin_piped",
]

_PROMPT_HINT = "give it as an argument, with -f FILE, or on stdin with -"


def read_text_file(name: str) -> str:
    """The UTF-8 text of file ``name`` ("-" is stdin); CommandFailed if it cannot be read."""
    label = "stdin" if name == "-" else name
    try:
        if name == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        else:
            data = Path(name).read_bytes()
    except OSError as exc:
        raise CommandFailed(
            f"cannot read {label}: {exc.strerror or exc}", hint="check the path and its permissions"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandFailed(
            f"{label} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="convert it first, e.g. iconv -f latin1 -t utf-8",
        ) from None
    return text.removeprefix("\ufeff")


def stdin_piped(stream: Any = None) -> bool:
    """True if stdin is a pipe or a file (not a terminal, not /dev/null) or, without a file
    descriptor (a test harness), anything but a terminal."""
    stream = sys.stdin if stream is None else stream
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return stream is not None and not _isatty(stream)
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _stdin_has_data() -> bool:
    """True if piped stdin holds text right now (checked without waiting for more)."""
    try:
        ready, _, _ = select.select([sys.stdin], [], [], 0)
    except (OSError, ValueError, TypeError):
        ready = [sys.stdin]  # no descriptor to wait on: an in-memory stream, read it
    if not ready:
        return False
    try:
        buffer: Any = getattr(sys.stdin, "buffer", None)
        chunk = buffer.read1(1) if buffer is not None else sys.stdin.read(1)
    except (OSError, ValueError):
        return False
    return bool(chunk)


def read_prompt(prompt: str | None, prompt_file: str | None, *, quiet: bool = False) -> str:
    """The prompt from PROMPT, -f FILE, or stdin ("-" in either place, or piped with neither).

    When both PROMPT (or -f) and a piped stdin holding text are given, PROMPT wins, and a
    warning says the stdin text was ignored.
    """
    if prompt is not None and prompt_file is not None:
        raise CommandFailed("give the prompt either as PROMPT or with -f, not both", hint=_PROMPT_HINT)
    source = prompt_file if prompt_file is not None else prompt
    if source is None:
        if not stdin_piped():
            raise CommandFailed("no prompt given", hint=_PROMPT_HINT + "; see autocontinue --help")
        text = read_text_file("-")
        if not text.strip():
            raise CommandFailed("no prompt given (stdin was empty)", hint=_PROMPT_HINT)
        return text
    if source != "-" and stdin_piped() and _stdin_has_data():
        given = "the -f file" if prompt_file is not None else "the PROMPT argument"
        if not quiet:
            warn(f"stdin is ignored: {given} is the prompt (to use stdin, give - as the prompt)")
    if prompt_file is not None:
        text = read_text_file(prompt_file)
    elif prompt == "-":
        text = read_text_file("-")
    else:
        text = prompt or ""
    if not text.strip():
        raise CommandFailed("the prompt is empty", hint=_PROMPT_HINT)
    return text


def clean_prefill(prefill: str | None, *, quiet: bool) -> str | None:
    """The prefill without trailing whitespace (the API refuses it), warning when stripped."""
    if prefill is None:
        return None
    stripped = prefill.rstrip()
    if stripped != prefill and not quiet:
        warn("--prefill ended in whitespace, which the API refuses; stripped it")
    return stripped or None


def check_output_path(path: str | None, *, reads: str | None = None) -> Path | None:
    """Refuse, before any tokens are spent, an -o FILE that cannot be written, or that is the
    file ``reads`` (the prompt is read from it: the answer would replace it)."""
    if path is None:
        return None
    target = Path(path).expanduser()
    problem = output_problem(target)
    if problem is not None:
        raise CommandFailed(f"-o {path} {problem[0]}", hint=problem[1])
    if reads not in (None, "-") and same_file(target, reads):
        raise CommandFailed(
            f"-o {path} is the prompt file: the answer would replace it",
            hint="write the answer to another file",
        )
    return target


def check_endpoint(backend: str, base_url: str | None) -> str | None:
    """The endpoint a run goes to (--base-url, else ANTHROPIC_BASE_URL for anthropic), refused
    at once when it cannot be parsed; a missing Anthropic key is reported here too, before the
    SDK is even imported."""
    url = base_url
    source = "--base-url"
    if url is None and backend == "anthropic":
        url, source = os.environ.get("ANTHROPIC_BASE_URL") or None, "ANTHROPIC_BASE_URL"
    if url is not None:
        check_url(url, source)
    has_key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    if backend == "anthropic" and not has_key:
        raise MissingCredentialsError(
            "no Anthropic API key", hint="export ANTHROPIC_API_KEY=sk-ant-... (or use --backend local)"
        )
    return url


def check_url(url: str, source: str) -> None:
    """Refuse a URL (from SOURCE, e.g. --base-url) that is not http(s) in one line."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CommandFailed(
            f"{source} is not a valid URL: {exc}", hint="e.g. https://api.example.com"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandFailed(
            f"{source} is not an http(s) URL: {url.split('@')[-1]!r}",
            hint="give it as http://HOST[:PORT][/PATH] or https://...",
        )


def choose_backend(backend: str | None, base_url: str | None = None) -> str:
    """The backend name: given, else as ``backends.select.infer_backend`` says (anthropic when
    its environment is set, else openai for a base URL or OPENAI_BASE_URL, else local)."""
    if backend:
        return backend
    from ..backends.select import infer_backend

    return infer_backend(None, base_url)
