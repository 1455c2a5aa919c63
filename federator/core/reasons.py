"""How decisions say money, durations and sizes to a person: "$41", "6h10m", "120 GB".

Kept apart so that every reason line reads the same way and tests can rely on the format.
"""

from __future__ import annotations

import math


def usd(amount: float) -> str:
    """Whole dollars from $10 up, cents below, so small amounts do not read as $0."""
    if math.isinf(amount):
        return "$∞"
    if abs(amount) >= 10:
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"


def duration(seconds: float) -> str:
    """Two units at most: 45s, 12m, 6h10m, 3d4h."""
    if math.isinf(seconds):
        return "forever"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def size(num_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:,.1f} {unit}"
    return f"{num_bytes:,.0f} B"
