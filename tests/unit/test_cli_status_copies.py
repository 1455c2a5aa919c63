"""`federator status --clouds`: every copy on a cloud, with what the daemon's collection will
do with it. Before, status read only on-prem records, so a finished copy still held for its
outputs (or its grace period) was visible only in the `federator_bursted_jobs` gauge.

The fates come from `planning.why_collected`, the rule the daemon collects by; these tests pin
the words a person reads for each case, at a fixed `now`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from federator import policy
from federator.commands import status, status_view
from federator.commands.status_copies import cloud_copies
from federator.federation.ports import CopyState, CopyView
from tests.unit import test_cli_status as onprem
from tests.unit.test_cli_status import NOW, config, placed  # noqa: F401 (config: the fixture)

GRACE_S = 600.0
COPY = CopyView(
    cluster="cloud-a",
    namespace="team-a",
    name="train-abc-1",
    source_uid="uid-train",
    attempt=1,
    pool="a100-spot",
    state=CopyState.RUNNING,
    created_at=NOW - 3600,
)


def fate(
    copy: CopyView = COPY,
    *,
    record: object = "placed",
    job: str = "team-a/train",
    watched: frozenset[str] | None = None,
    outputs_checked: bool = True,
) -> str:
    live = placed() if record == "placed" else record
    side = {} if not job else {"uid-train": (job, live)}
    (line,) = cloud_copies(
        {"cloud-a": [copy]},
        side,  # type: ignore[arg-type]
        watched=watched,
        now=NOW,
        grace_s=GRACE_S,
        outputs_checked=outputs_checked,
    )
    assert (line.cluster, line.namespace, line.name) == ("cloud-a", "team-a", "train-abc-1")
    assert line.job == job
    return line.fate


def test_a_running_copy_of_a_live_placement_is_the_jobs_copy() -> None:
    assert fate() == "the job's copy (record placed)"


def test_a_finished_copy_waits_out_the_grace_period_then_its_outputs() -> None:
    done = placed(phase="done", finished_at=NOW - 120)
    ended = replace(COPY, state=CopyState.SUCCEEDED, finished_at=NOW - 120)
    assert fate(ended, record=done) == (
        "finished: kept 8 min more (grace period), then once its outputs are home"
    )
    assert fate(ended, record=done, outputs_checked=False) == (
        "finished: kept 8 min more (grace period)"
    )


def test_a_finished_copy_past_its_grace_period_waits_only_for_its_outputs() -> None:
    done = placed(phase="done", finished_at=NOW - 3600)
    ended = replace(COPY, state=CopyState.SUCCEEDED, finished_at=NOW - 3600)
    assert fate(ended, record=done) == "finished: collected once its outputs are home"
    assert fate(ended, record=done, outputs_checked=False) == (
        "finished: collected by the next pass"
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, "no placement record: collected by the next pass"),
        (placed(attempt=2), "stale: the job was re-placed: collected by the next pass"),
        (placed(cluster="cloud-b"), "stale: the job was re-placed: collected by the next pass"),
        (placed(phase="requeued"), "stale: the job is being re-placed: collected by the next pass"),
    ],
)
def test_a_copy_no_record_vouches_for_is_collected(record: object, expected: str) -> None:
    assert fate(record=record) == expected


def test_a_copy_whose_job_is_gone_is_collected_once_it_is_older_than_the_grace_period() -> None:
    assert fate(job="") == "source deleted: collected by the next pass"
    young = replace(COPY, created_at=NOW - 30)
    assert fate(young, job="") == "its on-prem Job is not seen: collected in 10 min"


def test_a_copy_in_a_namespace_not_watched_is_never_collected() -> None:
    assert fate(watched=frozenset({"team-b"})) == (
        "never collected: its namespace is not watched on-prem (delete it by hand)"
    )
    assert fate(watched=frozenset({"team-a"})) == "the job's copy (record placed)"


def test_copies_are_listed_by_cloud_then_name() -> None:
    other = replace(COPY, cluster="cloud-b", name="a-1")
    second = replace(COPY, name="a-2")
    lines = cloud_copies(
        {"cloud-b": [other], "cloud-a": [COPY, second]},
        {},
        watched=None,
        now=NOW,
        grace_s=GRACE_S,
        outputs_checked=False,
    )
    assert [(c.cluster, c.name) for c in lines] == [
        ("cloud-a", "a-2"),
        ("cloud-a", "train-abc-1"),
        ("cloud-b", "a-1"),
    ]
    assert {c.state for c in lines} == {"Running"}


def test_the_tables_and_json_show_each_clouds_copies_or_why_it_was_not_read(
    config: policy.FederatorConfig,  # noqa: F811
) -> None:
    """The sandbox policy: a 1-minute grace period and a model registry."""
    done = placed(phase="done", finished_at=NOW - 120)
    fleet = onprem.fleet_of(config, {onprem.JOBS: {"items": [onprem.job("train", "team-a", done)]}})
    before = status_view.as_json(fleet)
    assert "copies" not in before, "only with --clouds"
    assert "copies" not in before["clouds"][0]
    ended = replace(COPY, state=CopyState.SUCCEEDED, finished_at=NOW - 120)
    watched = [onprem.job("train", "team-a", done)]
    unreachable = {"cloud-b": "cluster cloud-b did not answer: connection refused"}
    asked = status.with_copies(config, fleet, watched, None, {"cloud-a": [ended]}, unreachable)
    clouds_part, copies_part = onprem.shown(asked).split("cloud copies: 1")
    table = onprem.rows(clouds_part)
    assert table["cloud-a"] == ["cloud-a", "active", "0", "1"]
    assert table["cloud-b"][3].startswith("not read: cluster cloud-b did not answer")
    copy_row = onprem.rows(copies_part)["cloud-a"]
    assert copy_row[1:4] == ["team-a/train-abc-1", "team-a/train", "Succeeded"]
    assert copy_row[4] == "finished: collected once its outputs are home"
    printed = status_view.as_json(asked)
    assert printed["copies"] == [
        {
            "cluster": "cloud-a",
            "namespace": "team-a",
            "name": "train-abc-1",
            "job": "team-a/train",
            "state": "Succeeded",
            "fate": "finished: collected once its outputs are home",
        }
    ]
    assert printed["clouds"][0] == {
        "cluster": "cloud-a", "state": "active", "jobs": 0, "copies": 1, "unreachable": None
    }  # fmt: skip
    assert printed["clouds"][1]["copies"] is None
    assert printed["clouds"][1]["unreachable"].endswith("connection refused")


class CloudAnswers:
    """A cloud's answers to the three lists `status --clouds` reads."""

    name = "cloud-a"

    def __init__(self, pod_node: str, nodes: list[str]) -> None:
        job = {
            "metadata": {
                "name": "train-abc-1",
                "namespace": "team-a",
                "labels": {"federator.io/source-uid": "uid-train", "federator.io/attempt": "1"},
            },
            "status": {"active": 1},
        }
        pod = {
            "metadata": {
                "name": "train-abc-1-x",
                "namespace": "team-a",
                "labels": {"job-name": "train-abc-1", "federator.io/source-uid": "uid-train"},
            },
            "spec": {"nodeName": pod_node},
            "status": {"phase": "Running"},
        }
        self.answers = {
            "/apis/batch/v1/jobs": {"items": [job]},
            "/api/v1/pods": {"items": [pod]},
            "/api/v1/nodes": {"items": [{"metadata": {"name": n}} for n in nodes]},
        }

    async def request(self, method: str, path: str, **_: object) -> dict[str, object]:
        assert method == "GET", "status writes nothing"
        return self.answers[path]


@pytest.mark.parametrize(
    ("pod_node", "nodes", "state"),
    [("n1", ["n1", "n2"], "Running"), ("gone", ["n1"], "Preempted")],
)
def test_a_copy_reads_as_the_daemon_reads_it_from_its_pods_and_nodes(
    config: policy.FederatorConfig,  # noqa: F811
    pod_node: str,
    nodes: list[str],
    state: str,
) -> None:
    """Without the node list every scheduled pod looked like one on a vanished node, and every
    running copy read Preempted (review of 789c8ea)."""
    import asyncio

    from federator.commands.status_copies import _copies_on

    cluster: object = CloudAnswers(pod_node, nodes)
    (copy,) = asyncio.run(_copies_on(config, cluster))  # type: ignore[arg-type]
    assert (copy.name, copy.source_uid, copy.state.value) == ("train-abc-1", "uid-train", state)


def test_a_cloud_only_a_record_names_says_why_its_copies_were_not_read(
    config: policy.FederatorConfig,  # noqa: F811
) -> None:
    """It read a bare "not read", and the JSON's `unreachable` was null."""
    record = placed(cluster="cloud-z", pool="spot")
    fleet = onprem.fleet_of(config, {onprem.JOBS: {"items": [onprem.job("a", "team-a", record)]}})
    asked = status.with_copies(config, fleet, [], None, {"cloud-a": [], "cloud-b": []}, {})
    lines = {line["cluster"]: line for line in status_view.as_json(asked)["clouds"]}
    assert lines["cloud-z"]["copies"] is None
    assert lines["cloud-z"]["unreachable"] == (
        "not in the policy, so federator has no connection to read it"
    )
    assert lines["cloud-a"]["unreachable"] is None
