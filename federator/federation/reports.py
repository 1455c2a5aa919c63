"""What one federation pass saw and did (`PassReport`), filled in by the loop and its parts.

Its own module so that the loop's collaborators (`data_problems`, `collection`) add to the
report they are handed without importing the loop; `federation.py` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from federator.core.decisions import Decision
from federator.core.models import Spend


@dataclass
class PassReport:
    """What one pass saw and did; returned to the caller (tests, `federator plan`, logs)."""

    now: float
    decisions: tuple[Decision, ...] = ()
    actions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: str = ""
    spend: Spend | None = None  # cloud spend as of this pass (budget warnings, metrics)
