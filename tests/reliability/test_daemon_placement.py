"""The real daemon (`federator run`) placing an overflow while it is killed, or while a second
replica without leader election does the same work (anchors R1, R9; issue 9 "federator killed
with SIGKILL repeatedly while placing", "two replicas with leader election disabled").

The federation engineer's tests/integration/test_federation_restart.py kills their in-process
harness; these scenarios kill the production composition root, with the policy file, the price
sources and the data gate it builds. Leader election is off in both (it is broken, see
test_daemon_faults.LEADER_ELECTION_BUG), which is also exactly the "idempotency alone" case.

Invariants (tests/invariants.py): never two running copies of a job at a sampled instant;
every job ends in exactly one terminal state; nothing federator created is left after GC.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator import sandbox as sandbox_api
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants
from tests.reliability import checks
from tests.support import configs
from tests.support.configs import free_port
from tests.support.daemon import Daemon

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]

JOBS = 6
SANDBOX_USD_PER_DAY = configs.sandbox_config()["budgets"]["usd_per_day"]


def policy_copy(
    tmp_path: Path, namespace: str, *, usd_per_day: float | None = None
) -> tuple[Path, str]:
    instance = f"rel-place-{namespace[-8:]}"

    def fast(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace
        config["leader_election"]["enabled"] = False
        config["garbage_collection"] = {"interval": "5s", "grace_period": "5s"}
        if usd_per_day is not None:
            config["budgets"]["usd_per_day"] = usd_per_day

    return configs.scenario_config(
        tmp_path, instance=instance, namespaces=[namespace], edit=fast
    ), instance


async def submit_overflow(sandbox: SandboxEnv, namespace: str) -> None:
    onprem = harness.apis(sandbox)["onprem"]
    # Long enough that every job's on-prem wait stays worth a burst through three daemon
    # restarts on a loaded machine: with 60 s, the last jobs' waits had shrunk to seconds by
    # the time the daemon came back, and it rightly kept them on-prem (the scenario then
    # waited for placements that could not come).
    await harness.fill_onprem(onprem, namespace, queue="q", seconds=150)
    for i in range(JOBS):
        await onprem.apply(harness.gpu_job(f"job-{i}", namespace, gpus=4, seconds=20, queue="q"))


async def records(sandbox: SandboxEnv, namespace: str) -> int:
    jobs = await harness.onprem_jobs(harness.apis(sandbox)["onprem"], [namespace])
    return sum(1 for j in jobs if invariants.record_of(j))


async def finish_and_check(
    sandbox: SandboxEnv,
    namespace: str,
    instance: str,
    sampler: invariants.Sampler,
    *,
    usd_per_day: float = SANDBOX_USD_PER_DAY,
) -> list[dict[str, Any]]:
    apis = harness.apis(sandbox)

    async def all_done() -> bool:
        jobs = await harness.onprem_jobs(apis["onprem"], [namespace])
        return len(jobs) == JOBS + 2 and all(harness.finished(j) for j in jobs)

    await harness.wait_for(all_done, timeout_s=420, what="every job to finish")
    await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=120)
    jobs = await harness.onprem_jobs(apis["onprem"], [namespace])
    invariants.check_one_terminal_state(jobs)
    invariants.check_never_two_running(sampler)
    invariants.check_budget_never_exceeded(jobs, usd_per_day=usd_per_day)
    return jobs


async def test_the_daemon_killed_with_sigkill_while_placing_converges_without_duplicates(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R1 on the daemon: each time it has just recorded a new placement, stop it - SIGKILL twice,
    then SIGTERM (R2: it must exit within 25 s mid-placement) - and restart it at once; it
    finishes the overflow with every invariant holding."""
    namespace = namespace_factory("onprem", prefix="relkill", local_queue="q")
    config, instance = policy_copy(tmp_path, namespace)
    apis = harness.apis(sandbox)
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=0.5)
    sampling = asyncio.create_task(sampler.run())
    daemon = Daemon(config, tmp_path / "d.log").start()
    kills, term_exit_s = 0, None
    try:
        await submit_overflow(sandbox, namespace)
        for round_ in range(3):
            seen = await records(sandbox, namespace)
            if seen == JOBS:
                break

            async def a_new_record(before: int = seen) -> bool:
                return await records(sandbox, namespace) > before

            await harness.wait_for(
                a_new_record, timeout_s=120, interval_s=0.3, what="a new placement"
            )
            if round_ < 2:
                daemon.kill()
            else:
                daemon.signal(signal.SIGTERM)
                assert daemon.process is not None
                term_exit_s = checks.wait_exit(daemon.process, within_s=25.0)
            kills += 1
            daemon = Daemon(config, tmp_path / "d.log").start()
        jobs = await finish_and_check(sandbox, namespace, instance, sampler)
    finally:
        daemon.stop()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    bursted = [j for j in jobs if invariants.record_of(j)]
    print(
        f"\n{kills} stops (SIGTERM exit in {term_exit_s} s); {len(bursted)} of {JOBS} jobs "
        f"bursted; {len(sampler.samples)} samples"
    )
    assert kills >= 1, "the scenario must kill the daemon while it places"
    assert bursted, "the scenario must exercise placement"


async def test_two_replicas_without_leader_election_never_run_a_job_twice(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R9: two daemons with the same instance and leader election off act on the same jobs at
    the same time; only preconditions and deterministic names keep them apart."""
    namespace = namespace_factory("onprem", prefix="reltwo", local_queue="q")
    config, instance = policy_copy(tmp_path, namespace)
    second_config = tmp_path / "second.yaml"
    data = yaml.safe_load(config.read_text())
    data["server"]["port"] = free_port()
    second_config.write_text(yaml.safe_dump(data))
    apis = harness.apis(sandbox)
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=0.5)
    sampling = asyncio.create_task(sampler.run())
    first = Daemon(config, tmp_path / "a.log").start()
    second = Daemon(second_config, tmp_path / "b.log").start()
    try:
        await submit_overflow(sandbox, namespace)
        jobs = await finish_and_check(sandbox, namespace, instance, sampler)
        alive = first.alive() and second.alive()
    finally:
        first.stop()
        second.stop()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    conflicts = sum(("Conflict" in d.log_text() or "409" in d.log_text()) for d in (first, second))
    bursted = [j for j in jobs if invariants.record_of(j)]
    print(f"\n{len(bursted)} of {JOBS} bursted; replicas logging conflicts: {conflicts}")
    assert alive, "both replicas must survive the races"
    assert bursted, "the scenario must exercise placement"


async def test_a_cloud_apiserver_stopped_briefly_moves_nothing(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R4: the cloud running a copy loses its apiserver for 15 s, well under the policy's
    `unreachable_timeout` (1 m): the placement record is unchanged (same cluster, attempt 1),
    nothing is re-placed, and the job still finishes exactly once."""
    namespace = namespace_factory("onprem", prefix="relblip", local_queue="q")
    config, instance = policy_copy(tmp_path, namespace)
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=1.0)
    sampling = asyncio.create_task(sampler.run())
    daemon = Daemon(config, tmp_path / "d.log").start()
    stopped: str | None = None

    async def victim() -> dict[str, Any]:
        job: dict[str, Any] | None = await onprem.get("Job", "victim", namespace)
        assert job is not None, "the victim job disappeared"
        return job

    try:
        await harness.fill_onprem(onprem, namespace, queue="q", seconds=60)
        await onprem.apply(harness.gpu_job("victim", namespace, gpus=8, seconds=40, queue="q"))
        uid = (await victim())["metadata"]["uid"]

        async def running_in_a_cloud() -> bool:
            record = await harness.job_record(onprem, namespace, "victim")
            if not record or record["phase"] != "placed":
                return False
            pods = await harness.copy_pods(apis[record["cluster"]], namespace, uid)
            return any(p["status"].get("phase") == "Running" for p in pods)

        await harness.wait_for(running_in_a_cloud, timeout_s=150, what="a running cloud copy")
        before = await harness.job_record(onprem, namespace, "victim")
        assert before is not None
        stopped = before["cluster"]
        await asyncio.to_thread(sandbox_api.stop_component, stopped, "apiserver", kill=True)
        await asyncio.sleep(15)  # the fault's length: shorter than unreachable_timeout (1 m)
        await asyncio.to_thread(sandbox_api.start_component, stopped, "apiserver")
        stopped = None

        async def victim_done() -> bool:
            return harness.finished(await victim())

        await harness.wait_for(victim_done, timeout_s=240, what="the job to finish")
        after = await harness.job_record(onprem, namespace, "victim")
        await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=120)
    finally:
        if stopped is not None:
            await asyncio.to_thread(sandbox_api.start_component, stopped, "apiserver")
        daemon.stop()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    print(f"\nbefore: {before}\nafter: {after}")
    assert after is not None
    assert (after["cluster"], after["attempt"]) == (before["cluster"], before["attempt"])
    assert not after["stale"], "nothing may be re-placed for a brief outage"
    invariants.check_one_terminal_state([await victim()])
    invariants.check_never_two_running(sampler)


async def test_the_onprem_apiserver_restarted_under_a_live_daemon_loses_and_doubles_nothing(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """Issue 9: while the daemon is placing an overflow, the on-prem apiserver is killed and
    started again 10 s later (Kueue and the controllers lose it too and are brought back).
    The daemon lives through it, reconnects, and every job still ends exactly once."""
    namespace = namespace_factory("onprem", prefix="relonprem", local_queue="q")
    config, instance = policy_copy(tmp_path, namespace)
    apis = harness.apis(sandbox)
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=1.0)
    sampling = asyncio.create_task(sampler.run())
    daemon = Daemon(config, tmp_path / "d.log").start()
    stopped = False
    try:
        await submit_overflow(sandbox, namespace)

        async def some_placed() -> bool:
            return await records(sandbox, namespace) >= 2

        await harness.wait_for(some_placed, timeout_s=150, what="two placements")
        await asyncio.to_thread(sandbox_api.stop_component, "onprem", "apiserver", kill=True)
        stopped = True
        await asyncio.sleep(10)
        await asyncio.to_thread(sandbox_api.start_component, "onprem", "apiserver")
        stopped = False
        await asyncio.to_thread(sandbox_api.up, sandbox.root, build=False)  # Kueue and all
        jobs = await finish_and_check(sandbox, namespace, instance, sampler)
        alive = daemon.alive()
        events = [e.get("event") for e in daemon.log_events() if e.get("cluster") == "onprem"]
    finally:
        if stopped:
            await asyncio.to_thread(sandbox_api.start_component, "onprem", "apiserver")
            await asyncio.to_thread(sandbox_api.up, sandbox.root, build=False)
        daemon.stop()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    bursted = [j for j in jobs if invariants.record_of(j)]
    print(f"\n{len(bursted)} of {JOBS} bursted; on-prem health events: {events}")
    assert alive, daemon.log_text()[-2000:]
    assert "cluster_down" in events, "the outage must be seen"
    assert "cluster_up" in events


async def test_a_daily_budget_binds_across_a_sigkill_and_is_never_exceeded(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """Issue 9 "budgets never exceeded": a day budget that covers two or three of the six
    bursts ($0.12; one costs $0.03-0.05 expected). The daemon is SIGKILLed after its first
    placement and restarted; the new process rebuilds spend from the placement records. At
    every placement the day's charge stays within the budget (a live burst counts the larger
    of its expected and accrued cost, a finished one what it cost), so does the final spend,
    the budget is seen to bind, and every job still ends exactly once."""
    cap = 0.12
    namespace = namespace_factory("onprem", prefix="relbudget", local_queue="q")
    config, instance = policy_copy(tmp_path, namespace, usd_per_day=cap)
    apis = harness.apis(sandbox)
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=1.0)
    sampling = asyncio.create_task(sampler.run())
    daemon = Daemon(config, tmp_path / "d.log").start()
    try:
        await submit_overflow(sandbox, namespace)

        async def one_placed() -> bool:
            return await records(sandbox, namespace) >= 1

        await harness.wait_for(one_placed, timeout_s=150, interval_s=0.3, what="a placement")
        daemon.kill()
        daemon = Daemon(config, tmp_path / "d.log").start()
        jobs = await finish_and_check(sandbox, namespace, instance, sampler, usd_per_day=cap)
        reasons = [
            str(e.get("reason")) for e in daemon.log_events() if e.get("event") == "decision"
        ]
    finally:
        daemon.stop()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    placed = [r for j in jobs if (r := invariants.record_of(j))]
    held = [r for r in reasons if "budget" in r]
    at_each_burst = invariants.day_charge_at_each_burst(jobs)
    spent = invariants.recorded_spend_usd(jobs, now=time.time())
    print(f"\n{len(placed)} of {JOBS} bursted; charged to the day when each was placed: "
          f"{[round(c, 3) for c in at_each_burst]} of ${cap}; spent ${spent:.3f}; "
          f"{len(held)} decisions held back by the budget, e.g. {held[:1]}")  # fmt: skip
    assert placed, "the scenario must burst"
    invariants.check_budget_never_exceeded(jobs, usd_per_day=cap)
    assert held, "the budget must bind in this scenario"
