"""The promises federation makes, checked from outside against the real clusters.

Reusable by every scenario (federation tests, issue 9's fault suite): a `Sampler` polls every
reachable cluster while a scenario runs and records, per submitted job, how many copies were
running at each instant; the `check_*` functions are asserted at the end.

The checker reads the clusters with the sandbox's own small REST client, never through
federator's adapters, so a bug in `federator.kube` cannot hide itself from the checks.

* never two running copies of one job at a sampled instant (on-prem pods count as a copy),
  seen by samples that could read every cluster at least once (a checker that never saw a
  cluster proved nothing about it; one the cluster refuses, HTTP 401/403, fails at once);
* every submitted job ends in exactly one terminal state (Complete xor Failed, on-prem);
* no orphan: after GC, no object labelled `federator.io/origin=<instance>` is left whose job
  is finished or gone;
* budgets: the day's charge at each placement, and the spend, stay within the day budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from federator.sandbox.kubeapi import KubeApi, KubeError

ORIGIN = "federator.io/origin"
SOURCE_UID = "federator.io/source-uid"
RECORD = "federator.io/record"
TRANSPORT = (KubeError, OSError, asyncio.TimeoutError)
REFUSED = (401, 403)  # the checker's own credentials: no scenario makes these come and go


class CheckerRefused(AssertionError):
    """A cluster refused the checker's credentials: every sample of it would be blind."""


@dataclass
class Sample:
    at: float
    running: dict[str, list[str]]  # source uid -> where a copy runs ("onprem", "cloud-a/ns/name")
    unreachable: tuple[str, ...] = ()


@dataclass
class Sampler:
    """Polls every cluster every `interval_s` while `run` is awaited (cancel it to stop)."""

    apis: Mapping[str, KubeApi]  # "onprem", "cloud-a", "cloud-b"
    namespaces: frozenset[str]
    interval_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    refused: CheckerRefused | None = None  # why `run` stopped sampling, if it did

    async def run(self) -> None:
        """Sample until cancelled; a refusal stops it and is reported by the checks (raising
        here would surface only where the task is awaited, in a test's cleanup)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.samples.append(await self.sample(loop.time()))
            except CheckerRefused as refusal:
                self.refused = refusal
                return
            await asyncio.sleep(self.interval_s)

    async def sample(self, at: float) -> Sample:
        """Who runs what at `at`. A site that does not answer (down, partitioned, too slow, an
        error status) is recorded as unreachable; one that refuses the checker raises."""
        running: dict[str, list[str]] = {}
        unreachable: list[str] = []
        for site, api in self.apis.items():
            try:
                jobs = await _jobs(api, self.namespaces, timeout_s=3.0)
            except KubeError as error:
                if error.status in REFUSED:
                    raise CheckerRefused(
                        f"the invariant checker cannot read {site}: HTTP {error.status} for "
                        f"its own credentials ({error}); no sample of {site} would be valid"
                    ) from error
                unreachable.append(site)
                continue
            except TRANSPORT:
                unreachable.append(site)
                continue
            for job in jobs:
                if not _running(job):
                    continue
                meta = job["metadata"]
                if site == "onprem":
                    uid, where = meta["uid"], "onprem"
                else:
                    uid = (meta.get("labels") or {}).get(SOURCE_UID, "")
                    where = f"{site}/{meta['namespace']}/{meta['name']}"
                if uid:
                    running.setdefault(uid, []).append(where)
        return Sample(at, running, tuple(unreachable))

    def blind_samples(self) -> int:
        """How many samples missed at least one site."""
        return sum(1 for s in self.samples if s.unreachable)

    def double_runs(self) -> list[tuple[float, str, list[str]]]:
        return [
            (s.at, uid, where)
            for s in self.samples
            for uid, where in s.running.items()
            if len(where) > 1
        ]


async def _jobs(api: KubeApi, namespaces: Iterable[str], *, timeout_s: float) -> list[Any]:
    found: list[Any] = []
    for namespace in namespaces:
        try:
            listed = await api.request(
                "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", timeout_s=timeout_s
            )
        except KubeError as error:
            if error.status == 404:
                continue
            raise
        found += listed.get("items", [])
    return found


def _running(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return int(status.get("active") or 0) > 0 and not _terminal_conditions(job)


def _terminal_conditions(job: Mapping[str, Any]) -> list[str]:
    return [
        c["type"]
        for c in (job.get("status") or {}).get("conditions") or ()
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
    ]


def record_of(job: Mapping[str, Any]) -> dict[str, Any] | None:
    text = ((job.get("metadata") or {}).get("annotations") or {}).get(RECORD)
    return json.loads(text) if text else None


# ---- end-of-scenario checks -------------------------------------------------------------------


def check_never_two_running(sampler: Sampler) -> None:
    """No sampled instant had two running copies of a job, and the sampling could see: it was
    not refused, and at least one sample read every site. Partitions and cluster kills make
    some samples blind; the ones before and after the fault see everything."""
    if sampler.refused is not None:
        raise sampler.refused
    doubles = sampler.double_runs()
    assert not doubles, f"jobs with two running copies at a sampled instant: {doubles[:5]}"
    assert sampler.samples, "the sampler took no sample"
    sites = ", ".join(sampler.apis)
    assert any(not s.unreachable for s in sampler.samples), (
        f"no sample of {len(sampler.samples)} could read every site ({sites}): the check "
        f"proved nothing; unreachable in the first: {sampler.samples[0].unreachable}"
    )


def check_one_terminal_state(onprem_jobs: Iterable[Mapping[str, Any]]) -> None:
    bad = {}
    for job in onprem_jobs:
        states = _terminal_conditions(job)
        if len(states) != 1:
            bad[job["metadata"]["name"]] = states
    assert not bad, f"jobs without exactly one terminal state: {bad}"


async def leftover_objects(
    apis: Mapping[str, KubeApi], namespaces: Iterable[str], instance: str
) -> list[str]:
    """Objects federator created (by label) that are still there, on every reachable cloud."""
    left: list[str] = []
    selector = {"labelSelector": f"{ORIGIN}={instance}"}
    for site, api in apis.items():
        if site == "onprem":
            continue
        for namespace in namespaces:
            for plural, group in (
                ("jobs", "apis/batch/v1"),
                ("configmaps", "api/v1"),
                ("secrets", "api/v1"),
            ):
                try:
                    listed = await api.request(
                        "GET", f"/{group}/namespaces/{namespace}/{plural}", params=selector
                    )
                except KubeError as error:
                    if error.status == 404:
                        continue
                    raise
                left += [
                    f"{site}/{namespace}/{plural}/{i['metadata']['name']}" for i in listed["items"]
                ]
    return left


async def wait_no_orphans(
    apis: Mapping[str, KubeApi], namespaces: Iterable[str], instance: str, *, timeout_s: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    left: list[str] = []
    while loop.time() < deadline:
        left = await leftover_objects(apis, namespaces, instance)
        if not left:
            return
        await asyncio.sleep(2.0)
    raise AssertionError(f"orphans left after GC: {left}")


def recorded_spend_usd(onprem_jobs: Iterable[Mapping[str, Any]], *, now: float) -> float:
    """Spend implied by the placement records: price × GPUs × time placed, summed."""
    total = 0.0
    for job in onprem_jobs:
        record = record_of(job)
        if record is None:
            continue
        end = record.get("finished_at") or now
        hours = max(0.0, end - record["placed_at"]) / 3600.0
        total += record["price_per_gpu_hour_usd"] * record["gpus"] * hours
    return total


def day_charge_at_each_burst(onprem_jobs: Iterable[Mapping[str, Any]]) -> list[float]:
    """The day's budget charge at the moment each burst was placed, from the placement records,
    by the budget's own rule: a finished burst counts what it cost, a live one the larger of its
    expected and accrued cost. (Finished bursts give back what they were expected to cost beyond
    what they did, so the sum of every burst's *expected* cost may end above a cap; the charge
    at each placement may not.) Bursts of one scenario are assumed to fall on one UTC day."""
    records = [r for job in onprem_jobs if (r := record_of(job))]
    return [_charged_at(records, burst["placed_at"]) for burst in records]


def _charged_at(records: list[dict[str, Any]], at: float) -> float:
    charged = 0.0
    for record in records:
        if record["placed_at"] > at:
            continue
        charged += record.get("earlier_usd") or 0.0  # attempts lost before this one
        if record.get("phase") == "requeued":  # back on-prem: this attempt's cost is earlier
            continue
        finished = record.get("finished_at")
        live = finished is None or finished > at
        end = at if live else finished
        hours = (end - record["placed_at"]) / 3600.0
        accrued = record["price_per_gpu_hour_usd"] * record["gpus"] * hours
        charged += max(record["expected_cost_usd"], accrued) if live else accrued
    return charged


def check_budget_never_exceeded(
    onprem_jobs: Iterable[Mapping[str, Any]], *, usd_per_day: float
) -> None:
    jobs = list(onprem_jobs)
    charges = day_charge_at_each_burst(jobs)
    worst = max(charges, default=0.0)
    assert worst <= usd_per_day + 1e-9, f"a burst took the day's charge to ${worst:.4f}"
    spent = recorded_spend_usd(jobs, now=time.time())
    assert spent <= usd_per_day + 1e-9, f"spent ${spent:.4f} of ${usd_per_day} a day"


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
