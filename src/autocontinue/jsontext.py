"""JSON text with no control character left raw: inert on a terminal, one line to any reader.

``json.dumps(..., ensure_ascii=False)`` keeps the answer's letters readable and escapes the C0
controls, but leaves DEL, the C1 controls (U+0080-U+009F, e.g. U+009B, an 8-bit CSI that a
terminal may obey) and the line separators U+2028 / U+2029 (which JavaScript and some line
readers split on) raw. ``dumps`` writes those as ``\\uXXXX`` too: still valid JSON, decoding to
the same value. Every JSON the user is shown (batch lines, ``--json``) goes through it.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps", "inert"]

#: What ``json.dumps(ensure_ascii=False)`` leaves raw that must not be: DEL, C1, U+2028/2029.
_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")


def inert(text: str) -> str:
    """A JSON document from ``json.dumps(ensure_ascii=False)`` with DEL, C1 and U+2028/2029
    escaped (outside strings such a document holds only ASCII, so every match is in a string)."""
    return _RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **options)`` with no control character raw."""
    return inert(json.dumps(value, ensure_ascii=False, **options))
