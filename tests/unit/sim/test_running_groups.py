"""How the simulator shapes the running jobs it passes to the decision core."""

from __future__ import annotations

from federator.sim.policies import _group_running


def _entries(ends: list[float]) -> list[tuple[float, float, int, int]]:
    """(expected end, start, GPUs, job) in expected-end order, job i holding i + 1 GPUs."""
    return [(end, 0.0, job + 1, job) for job, end in enumerate(sorted(ends))]


def _placements(count: int) -> dict[int, tuple[tuple[int, int], ...]]:
    """Job i holds its i + 1 GPUs on node i."""
    return {job: ((job, job + 1),) for job in range(count)}


def test_a_small_running_set_is_passed_as_it_is() -> None:
    entries = _entries([60.0 * i for i in range(1, 9)])
    grouped = _group_running(entries, _placements(8), groups=4)
    assert [(key, gpus, end, nodes) for key, gpus, end, _, nodes in grouped] == [
        (f"running-{job}", gpus, end, ((job, gpus),)) for end, _, gpus, job in entries
    ]


def test_the_soonest_releases_stay_exact_and_the_later_ones_are_merged_with_their_nodes() -> None:
    # 1 minute to 100 hours out: merging from the start would free nothing before a median.
    entries = _entries([60.0 * 1.5**i for i in range(100)])
    grouped = _group_running(entries, _placements(100), groups=8)
    assert [end for _, _, end, _, _ in grouped[:8]] == [end for end, *_ in entries[:8]]
    assert grouped[0][2] == 60.0  # the first GPUs come back when the first job ends
    assert len(grouped) <= 16
    assert all(key.startswith("running-group-") for key, *_ in grouped[8:])
    assert sum(gpus for _, gpus, *_ in grouped) == sum(gpus for _, _, gpus, _ in entries)
    ends = [end for _, _, end, _, _ in grouped]
    assert ends == sorted(ends)
    # Every job's GPUs go back to its own node, exactly once, whether alone or in a group.
    returned = sorted(part for *_, nodes in grouped for part in nodes)
    assert returned == sorted(part for nodes in _placements(100).values() for part in nodes)
    for _, gpus, _, _, nodes in grouped:
        assert gpus == sum(taken for _, taken in nodes)


def test_no_groups_means_every_job_on_its_own() -> None:
    entries = _entries([10.0, 20.0, 30.0])
    assert len(_group_running(entries, _placements(3), groups=0)) == 3
