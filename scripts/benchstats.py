"""Shared by the bench scripts: one percentile definition, so their numbers are comparable."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, `q` between 0 and 1 (0.95 = p95)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
