"""Injected faults: by seeded probability, or scripted onto exact request numbers.

``--faults 529:0.1,429:0.05,500:0.02,drop:0.05,stream-error:0.02`` gives each request (of
``POST /v1/messages``) that chance of each fault, rolled from the seed and the request's number
since start or reset (so a retry of the same request can succeed). The script form
``529@1,drop@3`` puts a fault on an exact request number (1-based): here the 1st request gets
529 and the 3rd is dropped mid-stream. Both forms mix. A dict works too:
``{"529": 0.1, "drop@3": True}``.

``529``
    ``overloaded_error`` ``Overloaded``.
``429``
    ``rate_limit_error`` with ``retry-after: 1``; write ``429/5`` (``429/5:0.1``, ``429/5@2``)
    for ``retry-after: 5``.
``500``
    ``api_error`` ``Internal server error``.
``drop``
    The connection is closed mid-response after about a third of the deltas, without the
    terminating chunk, as a lost network or a dying proxy leaves it: the SDK raises
    ``httpx.RemoteProtocolError`` (``incomplete chunked read``) while iterating. A non-streaming
    response is cut inside its JSON body (the SDK's ``APIConnectionError``).
``stream-error``
    A 200 stream gets ``event: error`` (``overloaded_error``) after about a third of the
    deltas, then ends. On a non-streaming request it is a 529.
``malformed``
    A 200 stream gets an event whose data is not JSON (``MALFORMED_EVENT``, with an escape
    sequence in it, as a hostile or broken server might send) after about a third of the deltas,
    then ends. On a non-streaming request the 200 body is that text instead of JSON.
``no-stop``
    A 200 stream ends cleanly (terminating chunk sent, nothing raised) after about a third of
    the deltas, with no ``message_stop`` and no error event, as a gateway or load balancer that
    lost its upstream, or timed out, can end it. On a non-streaming request it is a ``drop``.

Faults are rolled after the request passed every check: an invalid request still gets its 400.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .quirks import parse_probabilities

__all__ = ["FAULT_NAMES", "CUT_FAULTS", "MALFORMED_DATA", "MALFORMED_EVENT", "FaultPlan", "parse_faults"]

#: New faults go at the end: each request's seeded roll takes one draw per name in this order,
#: so the faults a seed gave before stay the same.
FAULT_NAMES = ("529", "429", "500", "drop", "stream-error", "malformed", "no-stop")
#: The faults that cut a stream after about a third of its deltas.
CUT_FAULTS = ("drop", "stream-error", "malformed", "no-stop")
#: Not JSON, and it would set the terminal's window title if echoed raw.
MALFORMED_DATA = '{garbage \x1b]0;owned\x07 "text": "'
MALFORMED_EVENT = f"event: content_block_delta\ndata: {MALFORMED_DATA}\n\n"


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities per fault and scripted faults per request number."""

    probabilities: dict[str, float] = field(default_factory=dict)
    script: dict[int, str] = field(default_factory=dict)
    #: Seconds in the ``retry-after`` header of injected 429s.
    retry_after: int = 1

    def fault_for(self, seed: int, request_number: int) -> str | None:
        """The fault for the ``request_number``-th request, or None."""
        if request_number in self.script:
            return self.script[request_number]
        if not self.probabilities:
            return None
        digest = hashlib.sha256(f"{seed}\x1ffaults\x1f{request_number}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        for name in FAULT_NAMES:
            if rng.random() < self.probabilities.get(name, 0.0):
                return name
        return None


def parse_faults(spec: str | Mapping[str, object] | None) -> FaultPlan:
    """Read ``--faults``; raises ValueError naming the bad item."""
    if not spec:
        return FaultPlan()
    if isinstance(spec, Mapping):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, text = item.partition(":")
            items.append((key.strip(), text if sep else "1"))
    # values are checked (and turned into floats) by parse_probabilities
    probabilities: dict[str, Any] = {}
    script: dict[int, str] = {}
    retry_after = 1
    for name, value in items:
        name, retry_after = _retry_suffix(name, retry_after)
        if "@" in name:
            kind, _, number = name.partition("@")
            if kind not in FAULT_NAMES:
                raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(FAULT_NAMES)}")
            if not number.isdigit() or int(number) < 1:
                raise ValueError(f"fault {name!r}: the request number after @ must be a positive integer")
            script[int(number)] = kind
        else:
            probabilities[name] = value
    return FaultPlan(parse_probabilities(probabilities, FAULT_NAMES, "fault"), script, retry_after)


def _retry_suffix(name: str, current: int) -> tuple[str, int]:
    """``429/5@2`` -> (``429@2``, 5)."""
    if not name.startswith("429/"):
        return name, current
    seconds, at, number = name[4:].partition("@")
    if not seconds.isdigit():
        raise ValueError(f"fault {name!r}: the seconds after 429/ must be a whole number")
    return "429" + at + number, int(seconds)
