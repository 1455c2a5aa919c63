"""How long a running job keeps its GPUs, the rule the daemon and the simulator share."""

from __future__ import annotations

import pytest

from federator.core.models import expected_remaining_s


@pytest.mark.parametrize(
    ("started_at", "expected_end", "now", "left"),
    [
        (0.0, 3600.0, 600.0, 3000.0),  # on time: until the expected end
        (0.0, 3600.0, 3599.0, 1.0),
        (0.0, 3600.0, 3600.0, 1800.0),  # at the end and still running: half its run again
        (0.0, 60.0, 240.0, 120.0),  # 3 minutes over a 1-minute estimate
        (100.0, 100.0, 100.0, 0.0),  # no estimate and just started: nothing to go on
    ],
)
def test_a_job_keeps_its_gpus_until_its_end_then_half_as_long_again_as_it_ran(
    started_at: float, expected_end: float, now: float, left: float
) -> None:
    assert expected_remaining_s(started_at, expected_end, now) == left


def test_an_overrunning_job_is_never_taken_to_end_now() -> None:
    """The daemon's old rule, max(0, end - now), said 0 for every job past its estimate."""
    assert all(expected_remaining_s(0.0, 60.0, now) > 0 for now in (61.0, 600.0, 86_400.0))
