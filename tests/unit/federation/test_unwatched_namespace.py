"""A cloud copy whose on-prem namespace is not watched is never collected.

Before, a namespace removed from the watched ones (then a restart) hid its Jobs from the
on-prem view, so `garbage` called their running copies "source deleted" and deleted them after
the grace period, while the on-prem Jobs stayed suspended with a record nobody acted on. A copy
lives in its source's namespace (`kube.convert.cloud_job`); in one the observer does not watch,
the source's absence proves nothing, so the copy is left alone, logged once and counted in
`federator_unwatched_copies{cluster}`. In a watched namespace, "source deleted" still collects.
"""

from __future__ import annotations

from dataclasses import replace

import structlog.testing

from federator import metrics
from federator.core.models import OnPremState
from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings, planning
from federator.federation.ports import CloudView, CopyState, CopyView, OnPremView
from tests.unit.kube.fakes import FakeCloud, FakeCopy, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer

WATCHING_TEAM_A = FederationSettings(
    interval_s=10, gc_grace_s=60, watched_namespaces=frozenset({"team-a"})
)


class Sweeping(FakeCloud):
    """The cloud fake that keeps which source uids each config sweep kept."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.kept: list[frozenset[str]] = []

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        self.kept.append(keep_uids)
        return 0


def orphan(cloud: FakeCloud, namespace: str, name: str) -> None:
    """A running copy whose source the on-prem view does not show."""
    cloud.copies[f"{namespace}/{name}"] = FakeCopy(
        "spot", f"uid-{name}", 1, namespace, name, CopyState.RUNNING, suspended=False
    )


def federation(onprem: FakeOnPrem, cloud: FakeCloud) -> Federation:
    fed = Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a")]),
        settings=WATCHING_TEAM_A,
        decide=Scripted(),
    )
    return fed


def unwatched_gauge() -> float | None:
    return metrics.REGISTRY.get_sample_value("federator_unwatched_copies", {"cluster": "cloud-a"})


async def test_a_copy_in_an_unwatched_namespace_runs_on_past_the_grace_period() -> None:
    onprem, cloud = FakeOnPrem(), Sweeping("cloud-a")
    orphan(cloud, "team-b", "train-1")  # team-b was watched when it was placed
    fed = federation(onprem, cloud)
    with structlog.testing.capture_logs() as logged:
        await fed.run_once(1_000.0)
        await fed.run_once(2_000.0)  # far past the 60 s grace
    assert cloud.deleted == []
    assert list(cloud.copies) == ["team-b/train-1"]
    (line,) = [e for e in logged if e["event"] == "copy_in_unwatched_namespace"]
    assert (line["cluster"], line["copy"]) == ("cloud-a", "team-b/train-1")
    assert unwatched_gauge() == 1.0
    assert all("uid-train-1" in kept for kept in cloud.kept), "its configs are kept too"


async def test_a_copy_whose_watched_source_is_deleted_is_still_collected() -> None:
    onprem, cloud = FakeOnPrem(), Sweeping("cloud-a")
    orphan(cloud, "team-a", "gone-1")
    fed = federation(onprem, cloud)
    report = await fed.run_once(1_000.0)
    assert cloud.deleted == ["team-a/gone-1"]
    assert "gc cloud-a/team-a/gone-1: source deleted" in report.actions


async def test_every_namespace_watched_collects_as_before() -> None:
    onprem, cloud = FakeOnPrem(), Sweeping("cloud-a")
    orphan(cloud, "team-b", "gone-2")
    fed = federation(onprem, cloud)
    fed.settings = replace(WATCHING_TEAM_A, watched_namespaces=None)
    await fed.run_once(1_000.0)
    assert cloud.deleted == ["team-b/gone-2"]


def test_garbage_leaves_only_the_unwatched_namespace_alone() -> None:
    copies = (
        CopyView("cloud-a", "team-b", "x-1", "uid-x", 1, "spot", CopyState.SUCCEEDED),
        CopyView("cloud-a", "team-a", "y-1", "uid-y", 1, "spot", CopyState.SUCCEEDED),
    )
    onprem = OnPremView(up=True, synced=True, state=OnPremState(16, 0))
    clouds = {"cloud-a": CloudView("cloud-a", up=True, synced=True, copies=copies)}
    found = planning.garbage(
        onprem, clouds, now=1e6, grace_s=60.0, watched_namespaces=frozenset({"team-a"})
    )
    assert [(g.copy.name, g.why) for g in found] == [("y-1", "source deleted")]
    assert planning.unwatched_copies(clouds, frozenset({"team-a"})) == [copies[0]]
    assert planning.unwatched_copies(clouds, None) == []
