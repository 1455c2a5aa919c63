"""Cluster gauges: the metrics of what each pass observes, set before it decides anything.

Per on-prem queue, its waiting workloads, GPUs and oldest wait; per on-prem quota pool, its total
and free GPUs; per cloud cluster, its bursted jobs by state. Set at every pass, by every replica
(leader or not), from the same views the pass decides on, so that the dashboards show what the
federation saw.

The federation loop creates one `ClusterGauges`.
"""

from __future__ import annotations

from collections.abc import Mapping

from federator import metrics
from federator.federation.ports import CloudView, CopyState, OnPremView


class ClusterGauges:
    """The queue and bursted-job gauges, and the queues this process has set them for."""

    def __init__(self) -> None:
        self._queues_shown: set[str] = set()  # queues whose gauges this process has set

    def publish(self, onprem: OnPremView, clouds: Mapping[str, CloudView]) -> None:
        """Set the gauges from the pass's first views, whether or not the pass goes on to act."""
        for queue in onprem.queues:
            metrics.QUEUE_PENDING_WORKLOADS.labels(queue=queue.queue).set(queue.pending_workloads)
            metrics.QUEUE_PENDING_GPUS.labels(queue=queue.queue).set(queue.pending_gpus)
            metrics.QUEUE_OLDEST_PENDING_SECONDS.labels(queue=queue.queue).set(
                queue.oldest_pending_s
            )
        # The view lists only queues with waiting jobs: one that emptied must read 0 (an alert on
        # its oldest pending age would never clear on the last value).
        shown = {queue.queue for queue in onprem.queues}
        if onprem.synced:
            for emptied in self._queues_shown - shown:
                for gauge in _QUEUE_GAUGES:
                    gauge.labels(queue=emptied).set(0)
            self._queues_shown = shown
        else:
            self._queues_shown |= shown
        for pool in onprem.state.quota_pools:
            metrics.ONPREM_QUOTA_GPUS.labels(pool=pool.name, state="total").set(pool.total_gpus)
            metrics.ONPREM_QUOTA_GPUS.labels(pool=pool.name, state="free").set(pool.free_gpus)
        for view in clouds.values():
            counts = dict.fromkeys(metrics.BURST_STATES, 0)
            for copy in view.copies:
                state = _BURST_STATE.get(copy.state)
                if state is not None:
                    counts[state] += 1
            for state, count in counts.items():
                metrics.BURSTED_JOBS.labels(cluster=view.cluster, state=state).set(count)


_QUEUE_GAUGES = (
    metrics.QUEUE_PENDING_WORKLOADS,
    metrics.QUEUE_PENDING_GPUS,
    metrics.QUEUE_OLDEST_PENDING_SECONDS,
)

_BURST_STATE = {
    CopyState.SUSPENDED: "syncing",
    CopyState.PENDING: "pending",
    CopyState.RUNNING: "running",
    CopyState.SUCCEEDED: "succeeded",
    CopyState.FAILED: "failed",
    CopyState.PREEMPTED: "preempted",
}
