"""tests/invariants.py may not pass blind: a cluster that refuses the checker fails the check,
and a check none of whose samples read every cluster proved nothing and fails too. A
partition that blinds some samples, with clear samples around it, still passes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from federator.sandbox.kubeapi import KubeError
from tests import invariants

ON_PREM_JOB = {"metadata": {"uid": "u1", "namespace": "ns", "name": "j"}, "status": {"active": 1}}
CLOUD_COPY = {
    "metadata": {
        "uid": "x",
        "namespace": "ns",
        "name": "j-copy",
        "labels": {invariants.SOURCE_UID: "u1"},
    },
    "status": {"active": 1},
}


class Site:
    """A cluster's job list; `failures` are raised by the next lists, one each, in order."""

    def __init__(self, items: list[Any], *failures: BaseException | None) -> None:
        self.items = items
        self.failures = list(failures)

    async def request(self, method: str, path: str, timeout_s: float | None = None) -> Any:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return {"items": self.items}


def refused(status: int) -> KubeError:
    return KubeError(status, "GET", "/apis/batch/v1/namespaces/ns/jobs", "forbidden")


def sampler(onprem: Site, cloud: Site) -> invariants.Sampler:
    apis: Any = {"onprem": onprem, "cloud-a": cloud}
    return invariants.Sampler(apis, frozenset({"ns"}))


async def sampled(sampler: invariants.Sampler, count: int) -> invariants.Sampler:
    for at in range(count):
        sampler.samples.append(await sampler.sample(float(at)))
    return sampler


@pytest.mark.parametrize("status", [401, 403])
async def test_a_site_that_refuses_the_checker_fails_with_its_name(status: int) -> None:
    """Before: recorded as unreachable in every sample, and the check passed while on-prem
    and cloud-a both ran the job (sampler_blind.py)."""
    blind = sampler(Site([ON_PREM_JOB], *[refused(status)] * 9), Site([CLOUD_COPY]))
    with pytest.raises(invariants.CheckerRefused, match=f"cannot read onprem: HTTP {status}"):
        await blind.sample(0.0)


async def test_a_refusal_stops_the_sampling_task_and_fails_the_check() -> None:
    blind = sampler(Site([ON_PREM_JOB]), Site([CLOUD_COPY], None, refused(403)))
    blind.interval_s = 0.0
    await asyncio.wait_for(blind.run(), 10)  # returns by itself at the refusal
    assert len(blind.samples) == 1
    with pytest.raises(invariants.CheckerRefused, match="cannot read cloud-a: HTTP 403"):
        invariants.check_never_two_running(blind)


@pytest.mark.parametrize(
    "failure",
    [KubeError(500, "GET", "/x", "internal"), TimeoutError(), ConnectionRefusedError()],
    ids=["500", "timeout", "refused-connection"],
)
async def test_a_check_that_never_read_every_site_fails(failure: BaseException) -> None:
    blind = await sampled(sampler(Site([ON_PREM_JOB], *[failure] * 3), Site([CLOUD_COPY])), 3)
    assert blind.blind_samples() == 3
    with pytest.raises(AssertionError, match="no sample of 3 could read every site"):
        invariants.check_never_two_running(blind)


async def test_a_partition_between_clear_samples_passes_and_is_counted() -> None:
    """The fault tests cut a cluster off mid-scenario: samples before and after it see all."""
    cut = ConnectionRefusedError()
    partitioned = sampler(Site([ON_PREM_JOB]), Site([], None, cut, cut, None))
    await sampled(partitioned, 4)
    assert [s.unreachable for s in partitioned.samples] == [(), ("cloud-a",), ("cloud-a",), ()]
    assert partitioned.blind_samples() == 2
    invariants.check_never_two_running(partitioned)


async def test_two_running_copies_seen_by_a_clear_sample_still_fail() -> None:
    both = await sampled(sampler(Site([ON_PREM_JOB]), Site([CLOUD_COPY])), 1)
    with pytest.raises(AssertionError, match="two running copies"):
        invariants.check_never_two_running(both)
