"""Reading what the user gave: the prompt (argument, file or stdin), the prefill, the paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import CommandFailed, warn

__all__ = ["read_prompt", "read_text_file", "clean_prefill", "check_output_path", "choose_backend"]

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


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    """The prompt from PROMPT, -f FILE, or stdin ("-" in either place)."""
    if prompt is not None and prompt_file is not None:
        raise CommandFailed("give the prompt either as PROMPT or with -f, not both", hint=_PROMPT_HINT)
    if prompt_file is not None:
        text = read_text_file(prompt_file)
    elif prompt == "-":
        text = read_text_file("-")
    elif prompt is not None:
        text = prompt
    else:
        raise CommandFailed("no prompt given", hint=_PROMPT_HINT + "; see autocontinue --help")
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


def check_output_path(path: str | None) -> Path | None:
    """Refuse an -o FILE that cannot be written, before any tokens are spent."""
    if path is None:
        return None
    target = Path(path).expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CommandFailed(f"-o {path} is a directory", hint="give a file name")
    if not parent.is_dir():
        raise CommandFailed(f"-o {path}: directory {parent} does not exist", hint="create it first")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandFailed(f"-o {path} is not writable", hint="choose another file")
    return target


def choose_backend(backend: str | None) -> str:
    """The backend name: given, or anthropic when its environment is set, else local."""
    if backend:
        return backend
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL"):
        return "anthropic"
    return "local"
