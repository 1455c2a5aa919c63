"""A small valid policy file the table-driven tests edit one line at a time."""

from __future__ import annotations

from federator.policy import LocatedError, PolicyFileError, parse_policy

# Line numbers matter: the invalid cases assert the exact line of each error.
BASE = """\
clusters:
  - name: onprem
    role: onprem
    connection: {kubeconfig: kube.yaml, context: onprem}
  - name: cloud-a
    role: cloud
    region: us-east-1
    connection: {kubeconfig: kube.yaml, context: cloud-a}
    pools:
      - name: a100-spot
        gpu_type: A100
        gpus_per_node: 8
        capacity_type: spot
        max_gpus: 16
        price: {source: fixed, usd_per_gpu_hour: 1.5}
queues:
  - kind: ClusterQueue
    name: onprem
"""


def edited(*replacements: tuple[str, str], append: str = "") -> str:
    """BASE with whole lines replaced (each `old` must occur exactly once) and text appended."""
    text = BASE
    for old, new in replacements:
        assert text.count(old + "\n") == 1, f"{old!r} is not exactly one line of BASE"
        text = text.replace(old + "\n", new + "\n")
    return text + append


def errors_of(text: str) -> list[LocatedError]:
    try:
        parse_policy(text, "policy.yaml")
    except PolicyFileError as error:
        return list(error.errors)
    raise AssertionError("expected the text to be rejected")
