"""The comparison of ``python -m bench analytics``: every metric of both sides must agree."""

from __future__ import annotations

from typing import Any

# --- comparison ----------------------------------------------------------------------------------------------
from bench.analytics.common import (
    RANKED,
    REL_TOL,
)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return False
        x, y = float(a), float(b)
        return x == y or abs(x - y) <= REL_TOL * max(abs(x), abs(y))
    return bool(a == b)


def _ranked_close(a: list[list[Any]], b: list[list[Any]]) -> bool:
    """Member lists ordered by score: same scores in order, and the same members within each run of tied scores."""
    if len(a) != len(b) or not all(_close(x[1], y[1]) for x, y in zip(a, b, strict=True)):
        return False
    i = 0
    while i < len(a):
        j = i + 1
        while j < len(a) and _close(a[j][1], a[i][1]):
            j += 1
        if {x[0] for x in a[i:j]} != {y[0] for y in b[i:j]}:
            return False
        i = j
    return True


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _first_difference(a: Any, b: Any) -> str:
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if not _close(x, y):
                return f"first at [{i}]: {_show(x)} vs {_show(y)}"
    return f"{_show(a)} vs {_show(b)}"


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """One line per metric that differs (both values), empty when everything agrees."""
    problems = []
    for name in sorted(ours.keys() | theirs.keys()):
        if name not in ours or name not in theirs:
            problems.append(f"{name}: only computed by {'cohortbot' if name in ours else 'duckdb'}")
            continue
        a, b = ours[name], theirs[name]
        same = _ranked_close(a, b) if name in RANKED else _close(a, b)
        if not same:
            problems.append(f"{name}: cohortbot {_first_difference(a, b)} (cohortbot vs duckdb)")
    return problems
