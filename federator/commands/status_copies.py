"""`federator status --clouds`: the copies federator keeps on each cloud cluster, and their fate.

Without `--clouds`, status reads only the on-prem cluster, so it works while a cloud is down;
but a finished copy stays on its cloud until `garbage_collection.grace_period` has passed and,
with a model registry, until its outputs are home, and only the gauge `federator_bursted_jobs`
showed such copies (docs/operations.md, "Retiring a cloud cluster"). With `--clouds`, each cloud
of the policy is asked for the Jobs labelled as this instance's copies, and each copy is told
what the daemon's collection will do with it: the rule is `planning.why_collected`, the one the
daemon collects by, so the two cannot disagree. A cloud that does not answer is shown as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from federator.commands.status_fleet import CloudCopy

if TYPE_CHECKING:
    from federator import policy
    from federator.federation.ports import CopyView
    from federator.federation.records import PlacementRecord
    from federator.kube.clients import Cluster

# A copy's on-prem side: its Job's "namespace/name" and own placement record, by source uid.
OnPremSide = Mapping[str, tuple[str, "PlacementRecord | None"]]


# ---- reading (I/O) --------------------------------------------------------------------------


async def read_copies(
    config: policy.FederatorConfig, onprem: Cluster
) -> tuple[dict[str, list[CopyView]], dict[str, str]]:
    """Each configured cloud's copies of this instance, and why each cloud that could not be
    read was not (its name: the reason). One cloud's failure never hides the others."""
    from federator import daemon, errors

    found: dict[str, list[CopyView]] = {}
    unreachable: dict[str, str] = {}
    for cloud in config.cloud_clusters:
        try:
            cluster = await daemon.connect_cluster(config, cloud.name, onprem)
        except errors.FederatorError as e:
            unreachable[cloud.name] = str(e)
            continue
        try:
            found[cloud.name] = await _copies_on(config, cluster)
        except errors.FederatorError as e:
            unreachable[cloud.name] = str(e)
        finally:
            await cluster.close()
    return found, unreachable


async def _copies_on(config: policy.FederatorConfig, cluster: Cluster) -> list[CopyView]:
    """The copies as the daemon sees them (`convert.copy_views`), from their Jobs, pods, nodes."""
    from federator.kube import convert

    origin = {"labelSelector": f"{convert.LABEL_ORIGIN}={config.instance}"}
    jobs = await cluster.request("GET", "/apis/batch/v1/jobs", params=origin)
    ours = {"labelSelector": convert.LABEL_SOURCE_UID}  # the copies' pods carry their source
    pods = await cluster.request("GET", "/api/v1/pods", params=ours)
    # A pod on a node that is gone reads as preempted, so the nodes are needed too: without
    # them every scheduled pod would (the daemon's snapshot passes them the same way).
    listed = await cluster.request("GET", "/api/v1/nodes")
    nodes = frozenset(str(convert.meta(node).get("name")) for node in listed.get("items") or [])
    return convert.copy_views(cluster.name, jobs.get("items") or [], pods.get("items") or [], nodes)


# ---- what becomes of each copy (pure) -------------------------------------------------------


def cloud_copies(
    copies: Mapping[str, Sequence[CopyView]],
    onprem: OnPremSide,
    *,
    watched: frozenset[str] | None,
    now: float,
    grace_s: float,
    outputs_checked: bool,
) -> tuple[CloudCopy, ...]:
    """Every copy read, with its on-prem Job and its fate, sorted by cloud and name.

    `onprem` holds every Job of the watched namespaces (with or without a record); `watched`
    is None when every namespace is watched; `outputs_checked`: the policy has a registry,
    so a finished copy also waits for its outputs to be home.
    """
    from federator.federation import planning

    lines = []
    for cluster, found in copies.items():
        for copy in found:
            job, record = onprem.get(copy.source_uid, ("", None))
            if planning.namespace_watched(copy.namespace, watched):
                fate = _fate(copy, record, bool(job), now, grace_s, outputs_checked)
            else:
                fate = "never collected: its namespace is not watched on-prem (delete it by hand)"
            state = copy.state.value
            lines.append(CloudCopy(cluster, copy.namespace, copy.name, job, state, fate))
    return tuple(sorted(lines, key=lambda c: (c.cluster, c.namespace, c.name)))


def _fate(
    copy: CopyView,
    record: PlacementRecord | None,
    source_exists: bool,
    now: float,
    grace_s: float,
    outputs_checked: bool,
) -> str:
    from federator.federation import planning
    from federator.federation.records import Phase

    why = planning.why_collected(
        copy, record, source_exists=source_exists, now=now, grace_s=grace_s
    )
    if why == "finished":
        if outputs_checked:
            return "finished: collected once its outputs are home"
        return "finished: collected by the next pass"
    if why:
        return f"{why}: collected by the next pass"
    if not source_exists:  # young: created less than a grace period ago
        created = copy.created_at if copy.created_at is not None else now
        return f"its on-prem Job is not seen: collected in {_left(created + grace_s - now)}"
    assert record is not None  # why_collected: a copy with no record is collected
    if record.phase is Phase.DONE:
        finished = copy.finished_at or record.finished_at or now
        then = ", then once its outputs are home" if outputs_checked else ""
        return f"finished: kept {_left(finished + grace_s - now)} more (grace period){then}"
    return f"the job's copy (record {record.phase.value})"


def _left(seconds: float) -> str:
    """Whole minutes, rounded up (a copy is never collected before the time shown)."""
    minutes = max(1, -int(-max(0.0, seconds) // 60))
    return f"{minutes} min"
