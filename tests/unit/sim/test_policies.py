"""How the simulator shapes the running jobs it passes to the decision core."""

from __future__ import annotations

from federator.sim.policies import _group_running


def _entries(ends: list[float]) -> list[tuple[float, float, int, int]]:
    """(expected end, start, GPUs, job) in expected-end order, job i holding i + 1 GPUs."""
    return [(end, 0.0, job + 1, job) for job, end in enumerate(sorted(ends))]


def test_a_small_running_set_is_passed_as_it_is() -> None:
    entries = _entries([60.0 * i for i in range(1, 9)])
    grouped = _group_running(entries, groups=4)
    assert [(key, gpus, end) for key, gpus, end, _ in grouped] == [
        (f"running-{job}", gpus, end) for end, _, gpus, job in entries
    ]


def test_the_soonest_releases_stay_exact_and_the_later_ones_are_merged() -> None:
    # 1 minute to 100 hours out: merging from the start would free nothing before a median.
    entries = _entries([60.0 * 1.5**i for i in range(100)])
    grouped = _group_running(entries, groups=8)
    assert [end for _, _, end, _ in grouped[:8]] == [end for end, *_ in entries[:8]]
    assert grouped[0][2] == 60.0  # the first GPUs come back when the first job ends
    assert len(grouped) <= 16
    assert all(key.startswith("running-group-") for key, *_ in grouped[8:])
    assert sum(gpus for _, gpus, _, _ in grouped) == sum(gpus for _, _, gpus, _ in entries)
    ends = [end for _, _, end, _ in grouped]
    assert ends == sorted(ends)


def test_no_groups_means_every_job_on_its_own() -> None:
    entries = _entries([10.0, 20.0, 30.0])
    assert len(_group_running(entries, groups=0)) == 3
