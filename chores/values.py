"""Numbers read from JSON, tables and Ray's metrics: which are usable, and as plain Python."""

from __future__ import annotations

import contextlib
import math
from typing import Any


def finite(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plain(value: Any) -> Any:
    """numpy / pandas scalars -> Python; NaN -> None."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def finite_mean(values: Any) -> float:
    """The mean of the finite values among ``values``; NaN when there is none."""
    kept = [float(v) for v in values if finite(v)]
    return math.fsum(kept) / len(kept) if kept else math.nan
