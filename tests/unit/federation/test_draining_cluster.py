"""A draining cloud cluster (`clusters[].draining: true`) takes no new job, and only that.

Its pools are offered to no decision (a decision that could have used one says the cluster
is draining), while the copies already there are mirrored, finished and collected as before,
and a preempted one is placed again elsewhere, never there. It is a setting read at every pass,
so the settings a reload builds apply at the next one.
"""

from __future__ import annotations

from dataclasses import replace

from federator.core.decisions import DecisionKind
from federator.core.policy import DecisionPolicy
from federator.daemon.assembly import federation_settings
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyState
from federator.federation.records import Phase
from federator.policy import parse_policy
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer

SETTINGS = FederationSettings(interval_s=10, replace_backoff_s=5, gc_grace_s=0)
DRAINING_B = replace(SETTINGS, draining_clusters=frozenset({"cloud-b"}))


def federation(
    onprem: FakeOnPrem, *clouds: FakeCloud, settings: FederationSettings = DRAINING_B
) -> tuple[Federation, Scripted]:
    decide = Scripted()
    fed = Federation(
        onprem=onprem,
        clouds={c.name: c for c in clouds},
        policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a", price=2.0), offer("cloud-b", price=1.0)]),
        settings=settings,
        decide=decide,
    )
    return fed, decide


async def test_a_new_job_goes_to_another_cloud_though_the_draining_one_is_cheaper() -> None:
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    fed, decide = federation(onprem, cloud_a, cloud_b)
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.placement == "cloud-a/spot"
    assert cloud_b.created == []
    (_, offers), *_ = decide.calls
    assert {o.name: o.free_gpus for o in offers} == {"cloud-a/spot": 32, "cloud-b/spot": 0}


async def test_a_job_with_no_other_cloud_is_told_the_cluster_is_draining() -> None:
    onprem, cloud_b = FakeOnPrem(), FakeCloud("cloud-b")
    onprem.add("j1", 8)
    fed, _ = federation(onprem, cloud_b)
    report = await fed.run_once(100.0)
    (decision,) = report.decisions
    assert decision.kind is DecisionKind.STAY
    assert decision.reason == "stay; cloud-b/spot takes no new job: cloud-b is draining"
    assert cloud_b.created == []


async def test_its_running_job_is_mirrored_finished_and_collected() -> None:
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    fed, _ = federation(onprem, cloud_a, cloud_b, settings=SETTINGS)
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.placement == "cloud-b/spot"
    fed.settings = DRAINING_B  # as a reload that sets `draining: true`
    cloud_b.set_state("uid-j1", CopyState.RUNNING)
    await fed.run_once(110.0)
    assert job.remote_state == "Running"
    cloud_b.set_state("uid-j1", CopyState.SUCCEEDED)
    await fed.run_once(120.0)
    await fed.run_once(130.0)
    assert job.terminal is not None
    assert job.terminal.succeeded
    assert job.record.phase is Phase.DONE
    assert cloud_b.copies == {}, "collected as usual"
    assert cloud_a.created == [], "it ran once"


async def test_a_preempted_copy_is_placed_again_elsewhere_never_there() -> None:
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    fed, _ = federation(onprem, cloud_a, cloud_b, settings=SETTINGS)
    await fed.run_once(100.0)
    # No pool block after the preemption: only the draining keeps the job off cloud-b.
    fed.settings = replace(DRAINING_B, block_pool_for_s=0)
    cloud_b.set_state("uid-j1", CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    await fed.run_once(120.0)  # past the 5 s backoff
    assert (job.record.placement, job.record.attempt) == ("cloud-a/spot", 2)
    assert cloud_b.copies == {}
    assert len(cloud_a.copies) == 1


def test_the_policy_file_sets_it_per_cloud_and_a_reload_rebuilds_it() -> None:
    config = parse_policy(POLICY.format(draining="true"), "policy.yaml")
    assert federation_settings(config).draining_clusters == frozenset({"cloud-b"})
    reloaded = parse_policy(POLICY.format(draining="false"), "policy.yaml")
    assert federation_settings(reloaded).draining_clusters == frozenset()


def test_an_on_prem_cluster_cannot_drain() -> None:
    import pytest

    from federator import errors

    text = POLICY.format(draining="false").replace(
        "    role: onprem\n", "    role: onprem\n    draining: true\n"
    )
    with pytest.raises(errors.UserError, match="only a cloud cluster can drain"):
        parse_policy(text, "policy.yaml")


POLICY = """\
clusters:
  - name: onprem
    role: onprem
    connection: {{kubeconfig: /dev/null}}
  - name: cloud-a
    role: cloud
    connection: {{kubeconfig: /dev/null}}
    pools:
      - {{name: spot, gpu_type: A100, gpus_per_node: 8, capacity_type: spot, max_gpus: 32,
          price: {{source: fixed, usd_per_gpu_hour: 2}}}}
  - name: cloud-b
    role: cloud
    draining: {draining}
    connection: {{kubeconfig: /dev/null}}
    pools:
      - {{name: spot, gpu_type: A100, gpus_per_node: 8, capacity_type: spot, max_gpus: 32,
          price: {{source: fixed, usd_per_gpu_hour: 1}}}}
queues:
  - {{kind: LocalQueue, namespace: team-a, name: team-a}}
"""


async def test_a_job_that_may_not_burst_is_not_told_of_the_draining_cloud() -> None:
    """Review finding 9: the note went on every stay, an opted-out job's too, whose reason
    has nothing to do with the pools (the same held for blocked pools' notes)."""
    onprem, cloud_b = FakeOnPrem(), FakeCloud("cloud-b")
    onprem.add("stays-home", 8, burst_allowed=False)
    onprem.add("may-go", 8)
    fed, _ = federation(onprem, cloud_b)
    report = await fed.run_once(100.0)
    reasons = {d.job_key: d.reason for d in report.decisions}
    assert "draining" not in reasons["team-a/stays-home"]
    assert reasons["team-a/may-go"].endswith("cloud-b/spot takes no new job: cloud-b is draining")


async def test_a_copy_gone_from_a_draining_cloud_is_placed_elsewhere_not_recreated() -> None:
    """Review finding 5: a copy deleted from a draining cloud (someone cleaning it up) was
    recreated there, the one place no new copy may go."""
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    fed, _ = federation(onprem, cloud_a, cloud_b, settings=SETTINGS)
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.placement == "cloud-b/spot"
    fed.settings = DRAINING_B
    cloud_b.copies.clear()  # deleted by hand
    report = await fed.run_once(110.0)
    assert not [a for a in report.actions if a.startswith("recreate")], report.actions
    assert job.record.phase is Phase.REQUEUED
    await fed.run_once(120.0)  # no backoff after a copy gone: it was no loss
    assert (job.record.placement, job.record.attempt) == ("cloud-a/spot", 2)
    assert cloud_b.copies == {}


async def test_copies_gone_from_draining_clouds_are_no_loss_and_never_end_in_give_up() -> None:
    """Each draining cloud whose copy is deleted (the way a cloud is emptied by hand) sends the
    job on at once, with its count of losses as it was. Before, each one counted as a loss,
    with the backoff, and the fourth (past `max_replacements`, 3) ended a plain Job in
    `give_up`."""
    clouds = [FakeCloud(f"cloud-{name}") for name in "abcde"]
    onprem = FakeOnPrem()
    job = onprem.add("j1", 8, plain=True)
    offers = Offers([offer(c.name, price=1.0 + i) for i, c in enumerate(clouds)])
    fed = Federation(
        onprem=onprem,
        clouds={c.name: c for c in clouds},
        policy=DecisionPolicy(),
        offers=offers,
        settings=replace(SETTINGS, replace_backoff_s=3600),
        decide=Scripted(),
    )
    assert fed.settings.max_replacements == 3
    now = 100.0
    await fed.run_once(now)
    for step, cloud in enumerate(clouds[:4]):
        assert job.record is not None
        assert job.record.placement == f"{cloud.name}/spot"
        drained = frozenset(c.name for c in clouds[: step + 1])
        fed.settings = replace(fed.settings, draining_clusters=drained)
        cloud.copies.clear()  # deleted by whoever drains it
        now += 10
        await fed.run_once(now)  # seen gone: requeued, no loss
        assert job.record.phase is Phase.REQUEUED
        assert job.record.losses == 0
        now += 10
        await fed.run_once(now)  # placed again at once, an hour's backoff or not
    assert job.record is not None
    assert (job.record.placement, job.record.attempt) == ("cloud-e/spot", 5)
    assert job.record.phase is Phase.PLACED
    assert job.terminal is None
