"""The length of the longest common prefix of two sequences (texts or token lists)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["common_prefix_length"]


def common_prefix_length(a: Sequence, b: Sequence) -> int:
    """How many leading items ``a`` and ``b`` share.

    A binary search over slice comparisons: each comparison runs at C speed, so a
    megabyte-long text costs a few dozen memcmp calls rather than a Python loop per item.
    """
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
