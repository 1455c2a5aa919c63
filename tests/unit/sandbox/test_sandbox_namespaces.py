"""The sandbox makes every namespace config/sandbox.yaml names, so the README's tour works as
written: `sandbox up`, then `federator run --config config/sandbox.yaml` leads at once."""

from __future__ import annotations

from pathlib import Path

from federator.policy import load_policy
from federator.sandbox.kueue import queue_objects

REPO = Path(__file__).resolve().parents[3]


def namespaces_made() -> set[str]:
    return {o["metadata"]["name"] for o in queue_objects() if o["kind"] == "Namespace"}


def test_the_state_namespace_of_the_sandbox_policy_is_created() -> None:
    """Before, it was not: run decided but never led (leader_lease_not_created every 2 s)."""
    config = load_policy(REPO / "config" / "sandbox.yaml")
    assert config.state_namespace in namespaces_made()


def test_every_queue_namespace_of_the_sandbox_policy_is_created() -> None:
    config = load_policy(REPO / "config" / "sandbox.yaml")
    named = {queue.namespace for queue in config.queues if getattr(queue, "namespace", None)}
    assert named, "the sandbox policy maps its LocalQueues to namespaces"
    assert named <= namespaces_made()
