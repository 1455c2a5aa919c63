"""A cloud copy whose pod the cluster takes away fails at once and reads as preempted, even
after its pods are gone.

Before, a disrupted pod counted against the Job's own backoffLimit: with 0 (common for
training jobs) the copy ended Failed with reason BackoffLimitExceeded, and once the pod GC had
removed the pod (a pass that came late: the daemon restarting, on-prem unreachable) nothing
said it was a preemption, so the job was failed on-prem instead of re-placed.
"""

from __future__ import annotations

from typing import Any

from federator.federation.ports import CopyState
from federator.kube import convert
from tests.unit.kube import objects as o
from tests.unit.kube.test_convert import cloud_copy, copy_job

DISRUPTION_RULE = {
    "action": "FailJob",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}


def failed(reason: str, message: str) -> list[dict[str, Any]]:
    return [{**o.condition("Failed"), "reason": reason, "message": message}]


def test_the_copy_fails_at_once_when_the_cluster_takes_a_pod_away() -> None:
    source = o.job()
    # What the apiserver defaults on a Job without a podFailurePolicy: with one it refuses it.
    source["spec"]["podReplacementPolicy"] = "TerminatingOrFailed"
    body = cloud_copy(source)
    assert body["spec"]["podFailurePolicy"] == {"rules": [DISRUPTION_RULE]}
    assert body["spec"]["podReplacementPolicy"] == "Failed"


def test_the_jobs_own_rules_follow_ours() -> None:
    source = o.job()
    own = {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}}
    source["spec"]["podFailurePolicy"] = {"rules": [own]}
    assert cloud_copy(source)["spec"]["podFailurePolicy"]["rules"] == [DISRUPTION_RULE, own]
    assert source["spec"]["podFailurePolicy"]["rules"] == [own], "the on-prem Job is untouched"


def test_no_rule_where_the_api_allows_none() -> None:
    """podFailurePolicy needs restartPolicy Never, and takes at most 20 rules."""
    restarting = o.job(pod_spec_extra={"restartPolicy": "OnFailure"})
    assert "podFailurePolicy" not in cloud_copy(restarting)["spec"]
    full = o.job()
    rules = [
        {"action": "Count", "onExitCodes": {"operator": "In", "values": [i]}} for i in range(20)
    ]
    full["spec"]["podFailurePolicy"] = {"rules": rules}
    assert cloud_copy(full)["spec"]["podFailurePolicy"]["rules"] == rules


def test_a_copy_failed_by_a_disruption_reads_preempted_with_its_pods_gone() -> None:
    message = (
        "Pod team-a/train-x-1-abcde has condition DisruptionTarget matching FailJob rule at index 0"
    )
    gone = copy_job(conditions=failed("PodFailurePolicy", message), failed=1)
    assert convert.copy_view("c", gone, [], frozenset()).state is CopyState.PREEMPTED


def test_a_copy_that_failed_by_itself_still_reads_failed() -> None:
    own = copy_job(conditions=failed("BackoffLimitExceeded", "Job has reached the limit"))
    assert convert.copy_view("c", own, [], frozenset()).state is CopyState.FAILED
    exit_code = (
        "Container main for pod team-a/x failed with exit code 42 matching FailJob rule at index 1"
    )
    by_code = copy_job(conditions=failed("PodFailurePolicy", exit_code))
    assert convert.copy_view("c", by_code, [], frozenset()).state is CopyState.FAILED
