"""Raw Kubernetes objects become the cost model's values, and cloud copies are built right."""

from __future__ import annotations

from typing import Any

import pytest

from federator.core.models import DatasetNeed, QuotaPool, RuntimeSource
from federator.federation.ports import CopyState, Terminal
from federator.federation.records import Phase, PlacementRecord, copy_name
from federator.kube import convert
from tests.unit.kube import objects as o


def test_pending_job_reads_gpus_priority_and_annotations() -> None:
    job = o.job(
        gpus_per_pod=4,
        parallelism=2,
        annotations={
            "federator.io/runtime-estimate": "15m",
            "federator.io/datasets": "imagenet=1000, coco",
            "federator.io/gpu-types": "A100,H100",
            "federator.io/checkpoint-interval": "600",
        },
    )
    pending = convert.pending_job(job, workload=o.workload(job, priority=5), default_runtime_s=60)
    assert pending.key == "team-a/train"
    assert pending.gpus == 8
    assert pending.priority == 5
    assert pending.runtime_estimate_s == 900
    assert pending.runtime_source is RuntimeSource.ANNOTATION
    assert pending.datasets == (DatasetNeed("imagenet", 1000), DatasetNeed("coco", 0))
    assert pending.gpu_types == frozenset({"A100", "H100"})
    assert pending.checkpoint_interval_s == 600
    assert pending.submitted_at == o.T0_S
    assert pending.gpus_per_pod == 4
    assert pending.queue == "team-a"
    assert pending.burst_allowed


@pytest.mark.parametrize(("text", "size"), [("40Gi", 40 * 1024**3), ("", 0), ("lots", 0)])
def test_the_output_size_annotation_is_the_bytes_priced_at_the_clouds_egress(
    text: str, size: int
) -> None:
    job = o.job(annotations={"federator.io/output-size": text})
    pending = convert.pending_job(job, workload=None, default_runtime_s=60)
    assert pending.output_bytes == size


def test_pending_job_without_estimate_uses_the_default() -> None:
    pending = convert.pending_job(o.job(), workload=None, default_runtime_s=1234)
    assert pending.runtime_estimate_s == 1234
    assert pending.runtime_source is RuntimeSource.DEFAULT


@pytest.mark.parametrize(
    ("labels", "namespace", "resident", "allowed"),
    [
        pytest.param({}, "team-a", frozenset(), True, id="plain job may burst"),
        pytest.param({"federator.io/burst": "never"}, "team-a", frozenset(), False, id="opt-out"),
        pytest.param(
            {"federator.io/residency": "onprem"}, "team-a", frozenset(), False, id="label"
        ),
        pytest.param({}, "secure", frozenset({"secure"}), False, id="resident namespace"),
    ],
)
def test_opt_out_and_residency_forbid_bursting(
    labels: dict[str, str], namespace: str, resident: frozenset[str], allowed: bool
) -> None:
    job = o.job(labels=labels, namespace=namespace)
    assert convert.burst_allowed(job, resident_namespaces=resident) is allowed


def test_workload_states() -> None:
    job = o.job()
    assert convert.workload_pending(o.workload(job))
    reserved = o.workload(job, conditions=[o.condition("QuotaReserved")])
    assert convert.workload_reserved(reserved)
    assert not convert.workload_pending(reserved)
    assert not convert.workload_pending(o.workload(job, active=False))
    finished = o.workload(job, conditions=[o.condition("Finished")])
    assert not convert.workload_pending(finished)
    not_reserved = o.workload(job, conditions=[o.condition("QuotaReserved", status="False")])
    assert convert.workload_pending(not_reserved)


def test_onprem_state_counts_quota_running_and_queue_order() -> None:
    running_job = o.job("running", uid="u-run", annotations={"federator.io/runtime-estimate": "1h"})
    old = o.job("old", uid="u-old")
    urgent = o.job("urgent", uid="u-urgent")
    workloads = [
        o.workload(running_job, conditions=[o.condition("QuotaReserved", at=o.T0)]),
        o.workload(old, created="2026-11-29T07:00:00Z"),
        o.workload(urgent, priority=10, created="2026-11-29T07:30:00Z"),
    ]
    jobs = {"u-run": running_job, "u-old": old, "u-urgent": urgent}
    state = convert.onprem_state(
        [o.cluster_queue(nominal=16, reserved=4)],
        workloads,
        jobs,
        now=o.T0_S + 600,
        default_runtime_s=60,
    )
    assert state.total_gpus == 16
    assert state.free_gpus == 12
    assert [(r.key, r.gpus, r.expected_remaining_s) for r in state.running] == [
        ("team-a/running", 4, 3000.0)
    ]
    assert state.queue_order == ("team-a/urgent", "team-a/old")


def test_quota_held_by_a_workload_of_an_unwatched_job_is_released_after_the_default_runtime() -> (
    None
):
    """Another namespace shares the ClusterQueue: its admitted Workload's GPUs come back after
    the default runtime (from its admission), not never; a finished one holds nothing."""
    other = o.job("theirs", uid="u-theirs", namespace="team-z", gpus_per_pod=8)
    gone = o.job("done", uid="u-done", namespace="team-z", gpus_per_pod=8)
    workloads = [
        o.workload(other, conditions=[o.condition("QuotaReserved", at=o.T0)]),
        o.workload(gone, conditions=[o.condition("QuotaReserved"), o.condition("Finished")]),
    ]
    state = convert.onprem_state(
        [o.cluster_queue(nominal=16, reserved=8)],
        workloads,
        {},  # neither Job is watched
        now=o.T0_S + 20,
        default_runtime_s=60,
    )
    assert state.free_gpus == 8
    assert [(r.key, r.gpus, r.expected_remaining_s) for r in state.running] == [
        ("team-z/job-theirs-1a2b3 (unwatched)", 8, 40.0)
    ]
    assert state.queue_order == ()


def test_a_job_past_its_runtime_estimate_keeps_its_gpus_half_as_long_again() -> None:
    """Found on the sandbox (default_runtime 1m, 5-minute jobs): a job past its estimate was
    taken to end now (0 s left), so the replay started the queue on GPUs still taken and every
    waiting job read 'starts on-prem now, 0s' for the whole overrun, never priced for the
    cloud. It now has half of what it has run left, as in the simulator."""
    running_job = o.job("long", uid="u-long", annotations={"federator.io/runtime-estimate": "1m"})
    other = o.job("theirs", uid="u-theirs", namespace="team-z")
    workloads = [
        o.workload(running_job, conditions=[o.condition("QuotaReserved", at=o.T0)]),
        o.workload(other, conditions=[o.condition("QuotaReserved", at=o.T0)]),
    ]
    state = convert.onprem_state(
        [o.cluster_queue(nominal=16, reserved=8)],
        workloads,
        {"u-long": running_job},
        now=o.T0_S + 240,  # 4 minutes in: 3 past the estimate and the default runtime
        default_runtime_s=60,
    )
    assert [(r.key, r.expected_remaining_s) for r in state.running] == [
        ("team-a/long", 120.0),
        ("team-z/job-theirs-1a2b3 (unwatched)", 120.0),
    ]


def test_pool_views_count_allocatable_requested_and_pending() -> None:
    nodes = [o.node("a1", pool="a100-spot"), o.node("a2", pool="a100-spot"), o.node("x", pool="")]
    pods = [
        o.pod("p1", job_name="j", node_name="a1", gpus=4),
        o.pod("p2", job_name="j", node_name="a2", gpus=8, phase="Succeeded"),
        o.pod("p3", job_name="k", node_name=None, pool="a100-spot"),
    ]
    views = convert.pool_views("cloud-a", nodes, pods)
    assert list(views) == ["a100-spot"]
    pool = views["a100-spot"]
    assert (pool.nodes, pool.allocatable_gpus, pool.requested_gpus, pool.pending_pods) == (
        2,
        16,
        4,
        1,
    )
    assert pool.free_gpus == 12


def copy_job(**status: object) -> dict[str, object]:
    copy = o.job(
        "train-6f1c2d3e00-1",
        suspend=False,
        labels={
            "federator.io/origin": "federator",
            "federator.io/source-uid": "u1",
            "federator.io/attempt": "2",
            "federator.io/pool": "a100-spot",
        },
        status=dict(status),
    )
    return copy


def test_copy_view_states() -> None:
    nodes = frozenset({"a1"})
    running = o.pod("p", job_name="train-6f1c2d3e00-1", node_name="a1")
    view = convert.copy_view("cloud-a", copy_job(active=1), [running], nodes)
    assert (view.state, view.attempt, view.source_uid, view.pool) == (
        CopyState.RUNNING,
        2,
        "u1",
        "a100-spot",
    )
    lost_node = o.pod("p", job_name="x", node_name="gone")
    assert convert.copy_view("c", copy_job(), [lost_node], nodes).state is CopyState.PREEMPTED
    disrupted = o.pod(
        "p", job_name="x", node_name="a1", conditions=[o.condition("DisruptionTarget")]
    )
    assert convert.copy_view("c", copy_job(), [disrupted], nodes).state is CopyState.PREEMPTED
    done = copy_job(
        conditions=[o.condition("Complete")],
        startTime="2026-11-29T08:00:00Z",
        completionTime="2026-11-29T08:01:00Z",
        succeeded=1,
    )
    view = convert.copy_view("c", done, [], nodes)
    assert view.state is CopyState.SUCCEEDED
    assert view.finished_at == o.T0_S + 60
    assert view.started_at == o.T0_S
    assert convert.copy_view("c", copy_job(), [], nodes).state is CopyState.PENDING
    ended = o.pod("p", job_name="x", node_name="a1", phase="Succeeded")
    assert convert.copy_view("c", copy_job(), [ended], nodes).state is CopyState.RUNNING


def test_cloud_job_pins_the_pool_rewrites_data_and_labels_the_copy() -> None:
    source = o.job(annotations={"federator.io/record": "{}", "team": "vision"})
    body = convert.cloud_job(
        source,
        name="train-x-1",
        instance="fed",
        source_cluster="onprem",
        pool="a100-spot",
        attempt=1,
        suspended=True,
        rewrites=(
            ("s3://onprem-datasets/", "s3://cloud-a-datasets/"),
            ("registry.onprem/", "r.a/"),
        ),
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists"},),
    )
    meta = body["metadata"]
    assert meta["name"] == "train-x-1"
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["federator.io/origin"] == "fed"
    assert meta["labels"]["federator.io/source-uid"] == source["metadata"]["uid"]
    assert "kueue.x-k8s.io/queue-name" not in meta["labels"]
    assert meta["annotations"]["federator.io/source"] == "onprem/team-a/train"
    assert "federator.io/record" not in meta["annotations"]
    assert meta["annotations"]["team"] == "vision"
    spec = body["spec"]
    assert spec["suspend"] is True
    assert "selector" not in spec
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"federator.io/pool": "a100-spot"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in pod["tolerations"]
    container = pod["containers"][0]
    assert container["image"] == "r.a/ml/train:1.0"
    assert container["args"] == ["--data", "s3://cloud-a-datasets/imagenet/"]
    assert container["env"][0]["value"] == "s3://cloud-a-datasets/imagenet/"
    template_labels = spec["template"]["metadata"]["labels"]
    assert "batch.kubernetes.io/controller-uid" not in template_labels
    assert template_labels["federator.io/attempt"] == "1"
    assert source["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.onprem"
    )


def cloud_copy(source: dict[str, Any]) -> dict[str, Any]:
    return convert.cloud_job(
        source,
        name="train-x-1",
        instance="fed",
        source_cluster="onprem",
        pool="a100-spot",
        attempt=1,
        suspended=False,
    )


def test_the_copy_has_no_ttl_so_only_federators_gc_deletes_it() -> None:
    """A cloud TTL controller deleting a finished copy before a pass reads it would make the
    next pass recreate the copy: the job would run again and never finish on-prem."""
    source = o.job()
    source["spec"]["ttlSecondsAfterFinished"] = 0
    body = cloud_copy(source)
    assert "ttlSecondsAfterFinished" not in body["spec"]
    assert source["spec"]["ttlSecondsAfterFinished"] == 0, "the on-prem Job keeps its own"


def test_the_copy_keeps_the_users_annotations_but_not_federators_bookkeeping() -> None:
    users = {
        "team": "vision",
        "federator.io/runtime-estimate": "3h",
        "federator.io/datasets": "imagenet-1k",
        "federator.io/checkpoint-interval": "20m",
        "federator.io/deadline": "2026-03-01T18:00:00Z",
        "federator.io/gpu-types": "A100,H100",
        "federator.io/trace-job": "42",  # one federator does not know (scripts/demo.py sets it)
    }
    federators = {
        "federator.io/record": "{}",
        "federator.io/placement": "cloud-b/h100-spot",
        "federator.io/remote-state": "Running",
        "federator.io/returned-on-prem": "2026-11-29T07:47:10Z pulled back",
        "federator.io/source": "elsewhere/team-a/train",  # the on-prem Job was itself a copy
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    body = cloud_copy(o.job(annotations={**users, **federators}))
    assert body["metadata"]["annotations"] == {
        **users,
        "federator.io/source": "onprem/team-a/train",
    }


def test_referenced_configs_finds_volumes_env_and_env_from() -> None:
    pod_spec = {
        "volumes": [
            {"name": "a", "configMap": {"name": "cm-vol"}},
            {"name": "b", "secret": {"secretName": "s-vol"}},
            {"name": "c", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}]}},
        ],
        "containers": [
            {
                "name": "m",
                "envFrom": [
                    {"configMapRef": {"name": "cm-from"}},
                    {"secretRef": {"name": "s-from"}},
                ],
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s-key", "key": "k"}}}
                ],
            }
        ],
    }
    config_maps, secrets = convert.referenced_configs(pod_spec)
    assert config_maps == {"cm-vol", "cm-proj", "cm-from"}
    assert secrets == {"s-vol", "s-from", "s-key"}


def test_terminal_status_satisfies_the_apiserver_rules_for_success_and_failure() -> None:
    job = o.job(status={"conditions": [o.condition("Suspended")]})
    ok = convert.terminal_status(job, Terminal(True, o.T0_S, o.T0_S + 30, 1, "ran on cloud-a"))
    kinds = [c["type"] for c in ok["conditions"]]
    assert kinds == ["Suspended", "SuccessCriteriaMet", "Complete"]
    assert ok["completionTime"] == "2026-11-29T08:00:30Z"
    assert ok["startTime"] == "2026-11-29T08:00:00Z"
    assert ok["active"] == 0
    assert ok["succeeded"] == 1
    failed = convert.terminal_status(job, Terminal(False, o.T0_S, o.T0_S + 30, 1, "boom"))
    assert [c["type"] for c in failed["conditions"]][-2:] == ["FailureTarget", "Failed"]
    assert "completionTime" not in failed
    assert failed["failed"] >= 1


def test_record_round_trips_and_bad_records_count_as_none() -> None:
    record = PlacementRecord("cloud-a", "a100-spot", 2, Phase.PLACED, o.T0_S, 8, 1.5, stale=("x",))
    assert PlacementRecord.from_json(record.to_json()) == record
    job = o.job(annotations={"federator.io/record": record.to_json()})
    assert convert.record_of(job) == record
    assert convert.record_of(o.job(annotations={"federator.io/record": "{oops"})) is None


def test_copy_names_are_deterministic_short_and_distinct_per_attempt() -> None:
    long_name = "a-very-long-training-job-name-that-goes-on-and-on-and-on"
    first = copy_name(long_name, "6f1c2d3e-0000-4000", 1)
    assert first == copy_name(long_name, "6f1c2d3e-0000-4000", 1)
    assert first != copy_name(long_name, "6f1c2d3e-0000-4000", 2)
    assert len(first) <= 52
    assert first.endswith("-6f1c2d3e00-1")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("x", None)]
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert convert.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("quantity", "count"),
    [
        ("8", 8),
        (8, 8),
        ("1k", 1000),  # how the apiserver writes back a request of 1000 GPUs
        ("2Ki", 2048),
        ("1e3", 1000),
        ("1500m", 2),  # rounded up, never smaller than asked
        ("0", 0),
        ("eight", 0),
        ("", 0),
    ],
)
def test_quantity_count_reads_canonical_kubernetes_quantities(quantity: object, count: int) -> None:
    assert convert.quantity_count(quantity) == count


def test_a_copy_waits_to_start_since_its_start_time_else_since_its_creation() -> None:
    """`burst.replacement.start_timeout` counts from here. Before, CopyView had no such time,
    and a copy waiting for its data (suspended) would have been timed from its creation."""
    nodes = frozenset({"a1"})
    created = copy_job()
    created["metadata"]["creationTimestamp"] = "2026-11-29T07:00:00Z"  # type: ignore[index]
    assert convert.copy_view("c", created, [], nodes).pending_since == o.T0_S - 3600
    resumed = copy_job(
        startTime="2026-11-29T08:00:00Z",
        conditions=[o.condition("Suspended", status="False", at="2026-11-29T07:59:59Z")],
    )
    resumed["metadata"]["creationTimestamp"] = "2026-11-29T06:00:00Z"  # type: ignore[index]
    view = convert.copy_view("c", resumed, [], nodes)
    assert (view.state, view.pending_since) == (CopyState.PENDING, o.T0_S)
    # Resumed, the controller set no startTime yet: the resume's own time.
    resuming = copy_job(
        conditions=[o.condition("Suspended", status="False", at="2026-11-29T08:00:00Z")]
    )
    resuming["metadata"]["creationTimestamp"] = "2026-11-29T06:00:00Z"  # type: ignore[index]
    assert convert.copy_view("c", resuming, [], nodes).pending_since == o.T0_S
    # spec.suspend cleared, the controller has not seen it: not waiting to start yet.
    unseen = copy_job(conditions=[o.condition("Suspended")])
    assert convert.copy_view("c", unseen, [], nodes).pending_since is None
    waiting_for_data = copy_job()
    waiting_for_data["spec"]["suspend"] = True  # type: ignore[index]
    view = convert.copy_view("c", waiting_for_data, [], nodes)
    assert (view.state, view.pending_since) == (CopyState.SUSPENDED, None)


def named_queue(
    name: str, nominal: int, reserved: int, cohort: str | None = None
) -> dict[str, Any]:
    queue = o.cluster_queue(nominal=nominal, reserved=reserved)
    queue = {**queue, "metadata": {**queue["metadata"], "name": name}}
    if cohort is not None:
        queue = {**queue, "spec": {**queue["spec"], "cohortName": cohort}}
    return queue


def admitted_to(workload: dict[str, Any], cluster_queue: str) -> dict[str, Any]:
    status = {**workload.get("status", {}), "admission": {"clusterQueue": cluster_queue}}
    return {**workload, "status": status}


def test_cluster_queues_become_quota_pools_a_cohort_pooled_a_lone_queue_apart() -> None:
    """Two queues of one cohort share their unused quota (one borrows beyond its own); a third
    stands alone. The cluster-wide figures stay the sums."""
    queues = [
        named_queue("vision", nominal=16, reserved=20, cohort="research"),  # borrows 4
        named_queue("nlp", nominal=16, reserved=4, cohort="research"),
        named_queue("batch", nominal=8, reserved=8),
    ]
    state = convert.onprem_state(queues, [], {}, now=o.T0_S, default_runtime_s=60)
    assert state.quota_pools == (
        QuotaPool("clusterqueue/batch", 8, 0),
        QuotaPool("cohort/research", 32, 8),
    )
    assert (state.total_gpus, state.free_gpus) == (40, 8)
    # v1beta1's field name is read too.
    old_style = {**queues[2], "spec": {**queues[2]["spec"], "cohort": "legacy"}}
    assert convert.quota_pool_of(old_style) == "cohort/legacy"


def test_a_running_job_gives_its_gpus_back_to_the_pool_it_was_admitted_in() -> None:
    mine = o.job("mine", uid="u-mine", annotations={"federator.io/runtime-estimate": "1h"})
    theirs = o.job("theirs", uid="u-theirs", namespace="team-z")
    reserved = [o.condition("QuotaReserved", at=o.T0)]
    workloads = [
        admitted_to(o.workload(mine, conditions=reserved), "vision"),
        admitted_to(o.workload(theirs, conditions=reserved), "batch"),
    ]
    state = convert.onprem_state(
        [named_queue("vision", 16, 4, cohort="research"), named_queue("batch", 8, 4)],
        workloads,
        {"u-mine": mine},
        now=o.T0_S,
        default_runtime_s=60,
    )
    assert [(r.key, r.quota_pool) for r in state.running] == [
        ("team-a/mine", "cohort/research"),
        ("team-z/job-theirs-1a2b3 (unwatched)", "clusterqueue/batch"),
    ]
