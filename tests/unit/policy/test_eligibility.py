"""Which jobs may leave on-prem: the opt-out label, rules, queue modes and tenants, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.policy import JobFacts, load_policy, may_burst

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = load_policy(REPO / "config" / "federator.example.yaml")

CASES = [
    (
        "an ordinary job of an allowed queue",
        JobFacts("vision", queue="training"),
        True,
        "LocalQueue vision/training allows",
    ),
    (
        "the opt-out label wins over everything",
        JobFacts("vision", queue="training", labels={"federator.io/burst": "never"}),
        False,
        "labelled federator.io/burst: never",
    ),
    (
        "a deny rule by namespace and label",
        JobFacts("vision", queue="training", labels={"app.kubernetes.io/part-of": "evaluation"}),
        False,
        ") denies it",
    ),
    (
        "a deny rule names itself",
        JobFacts("vision", queue="training", labels={"app.kubernetes.io/part-of": "evaluation"}),
        False,
        "burst_rules[0] (evaluation jobs read",
    ),
    ("an opt-in queue without the label", JobFacts("nlp", queue="training"), False, "is opt-in"),
    (
        "an opt-in queue with the label",
        JobFacts("nlp", queue="training", labels={"federator.io/burst": "allow"}),
        True,
        "allows",
    ),
    (
        "an allow rule needs every condition",
        JobFacts("nlp", queue="training", priority_class="urgent"),
        False,
        "is opt-in",
    ),
    (
        "an allow rule lets an urgent job out of an opt-in queue",
        JobFacts(
            "nlp",
            queue="training",
            priority_class="urgent",
            annotations={"example.com/cloud-ok": "true"},
        ),
        True,
        "burst_rules[1]",
    ),
    (
        "an allow rule says it allows",
        JobFacts(
            "nlp",
            queue="training",
            priority_class="urgent",
            annotations={"example.com/cloud-ok": "true"},
        ),
        True,
        ") allows it",
    ),
    (
        "a namespace queue that never bursts",
        JobFacts("batch-legacy"),
        False,
        "Namespace batch-legacy never bursts",
    ),
    (
        "a job through a watched ClusterQueue",
        JobFacts("physics", queue="default", cluster_queue="gpu-research"),
        True,
        "ClusterQueue gpu-research allows",
    ),
    (
        "a job in no watched queue",
        JobFacts("physics", queue="default", cluster_queue="cpu"),
        False,
        "no watched queue",
    ),
]


@pytest.mark.parametrize(
    ("job", "allowed", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_may_burst(job: JobFacts, allowed: bool, reason: str) -> None:
    answer = may_burst(EXAMPLE, job)
    assert answer.allowed is allowed
    assert reason in answer.reason


def test_a_tenant_allowed_nowhere_never_bursts() -> None:
    from federator.policy import parse_policy
    from tests.unit.policy.helpers import edited

    config = parse_policy(
        edited(append="tenants:\n  - {name: t, namespaces: [team-a], allowed_clusters: []}\n")
    )
    answer = may_burst(config, JobFacts("team-a", queue="q", cluster_queue="onprem"))
    assert (answer.allowed, answer.reason) == (False, "tenant t may not burst anywhere")
