"""Reading a batch's input: one item a line (JSON objects, or plain prompts), bad lines named.

Pure: text in, items and bad lines out. A JSON line is ``{"id", "prompt"}`` or
``{"id", "messages", "system"}`` plus any recordable option of
``autocontinue.options.Options`` (``max_rounds``, ``min_words``, ``model`` ...); a file whose
first non-blank line is not a JSON object is plain text, one prompt a line. A line that cannot
be read is a ``BadLine`` with its 1-based number and why; nothing is dropped silently.

An item without an id is named by its line number ("3"), unless an item of the input gives
that id itself: the id the user wrote always wins, and the unnamed item becomes "line-3" (then
"line-3-2" ...). So an explicit id is never lost to a generated one, and the ids of inputs
without such a clash (and with them their batch keys in the journal) stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigurationError
from ..options import OPTION_FIELDS, Options

__all__ = [
    "BatchItem",
    "BadLine",
    "ITEM_OPTION_NAMES",
    "parse_lines",
    "items_from_objects",
    "no_items_error",
]

#: Options an item may set: every recordable field except the live objects.
ITEM_OPTION_NAMES = tuple(
    name for name in OPTION_FIELDS if name not in ("backend", "client", "resume", "retry", "system")
)
_CONTENT_KEYS = ("id", "prompt", "messages", "system")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class BatchItem:
    """One prompt of a batch and the options it sets."""

    id: str
    #: A string prompt or a list of Messages API messages.
    prompt: Any
    system: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    #: 1-based line of the input it came from (0: given from Python).
    line: int = 0

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "system": self.system, "options": self.options}

    @property
    def key(self) -> str:
        """The id as a Message Batches ``custom_id`` stem (letters, digits, - and _)."""
        if _SAFE_ID.match(self.id):
            return self.id
        return "i" + hashlib.sha1(self.id.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def parse_lines(text: str) -> tuple[list[BatchItem], list[BadLine]]:
    """The items of a JSONL or plain-text input, and the lines that could not be read."""
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first.startswith("{"):
        return _plain_lines(lines)
    objects: list[tuple[int, Any]] = []
    bad: list[BadLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            objects.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append(BadLine(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
        except ValueError as exc:  # e.g. a number too long to convert
            bad.append(BadLine(number, f"not valid JSON ({exc})"))
    items, more_bad = items_from_objects(objects)
    return items, sorted(bad + more_bad, key=lambda b: b.line)


def _plain_lines(lines: list[str]) -> tuple[list[BatchItem], list[BadLine]]:
    items = [
        BatchItem(id=str(number), prompt=line.strip(), line=number)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    return items, []


def items_from_objects(objects: list[tuple[int, Any]]) -> tuple[list[BatchItem], list[BadLine]]:
    """Check each (line, object) pair; duplicate ids are bad lines after the first (an id made
    from a line number steps aside for the same id given explicitly, see the module)."""
    items: list[BatchItem] = []
    bad: list[BadLine] = []
    explicit = {_id_text(obj["id"]) for _, obj in objects if isinstance(obj, dict) and "id" in obj}
    seen: set[str] = set()
    for number, obj in objects:
        try:
            item = _item(number, obj)
        except ValueError as exc:
            bad.append(BadLine(number, str(exc)))
            continue
        if _unnamed(obj):
            item = replace(item, id=_free_id(number, explicit | seen))
        if item.id in seen:
            bad.append(BadLine(number, f"id {item.id!r} appears twice (the first one is kept)"))
            continue
        seen.add(item.id)
        items.append(item)
    return items, bad


def no_items_error(bad: list[BadLine]) -> ConfigurationError:
    """The error for an input with no item to run, naming the first bad line's reason."""
    if not bad:
        return ConfigurationError("the input holds no items", hint="one JSON object or one prompt a line")
    lines = f"{len(bad)} bad line{'s' if len(bad) != 1 else ''}"
    return ConfigurationError(
        f"the input holds no items ({lines}, the first: {bad[0]})",
        hint='one JSON object or one prompt a line, e.g. {"id": "a", "prompt": "..."}',
    )


def _id_text(ident: Any) -> str:
    return str(ident) if isinstance(ident, (str, int)) and not isinstance(ident, bool) else ""


def _unnamed(obj: Any) -> bool:
    return isinstance(obj, str) or (isinstance(obj, dict) and "id" not in obj)


def _free_id(number: int, taken: set[str]) -> str:
    """The id of the unnamed item at line ``number``: the number, or "line-N" if that is taken."""
    if str(number) not in taken:
        return str(number)
    candidate, count = f"line-{number}", 2
    while candidate in taken:
        candidate, count = f"line-{number}-{count}", count + 1
    return candidate


def _item(number: int, obj: Any) -> BatchItem:
    if isinstance(obj, str):
        obj = {"prompt": obj}
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_CONTENT_KEYS) - set(ITEM_OPTION_NAMES))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (keys: id, prompt or messages, system, or an option)")
    ident = obj.get("id", number)
    if not isinstance(ident, (str, int)) or isinstance(ident, bool) or not str(ident).strip():
        raise ValueError("id must be a non-empty string or a number")
    prompt = _prompt(obj)
    system = obj.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise ValueError("system must be a string or a list of text blocks")
    options = {k: v for k, v in obj.items() if k in ITEM_OPTION_NAMES}
    try:
        Options.from_record(options).validate()
    except (ConfigurationError, TypeError, ValueError) as exc:
        raise ValueError(getattr(exc, "message", None) or str(exc)) from None
    return BatchItem(id=str(ident), prompt=prompt, system=system, options=options, line=number)


def _prompt(obj: dict[str, Any]) -> Any:
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if has_prompt == has_messages:
        raise ValueError("give exactly one of prompt or messages")
    if has_prompt:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise ValueError("prompt must be a non-empty string")
        return obj["prompt"]
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("user", "assistant")
            or "content" not in message
        ):
            raise ValueError(f"messages[{i}] must be an object with role user or assistant and content")
    return messages
