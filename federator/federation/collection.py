"""Collection: deleting the cloud copies that no placement record vouches for any more.

At the end of each pass the loop looks at the clusters again and hands them here: a copy
whose record is gone, requeued away or done (once the job's outputs are back home, when a
data gate checks them) is deleted after a grace period (`planning.garbage` says which), and
each cloud cluster's leftover configs of jobs that are gone are swept. A failure on one copy
is recorded in the pass's failures and never stops the others.

What a shrunk policy leaves behind is never collected, and is said once: a copy in a namespace
the on-prem observer no longer watches (its source is unseen, not gone), and a job whose record
names a cloud cluster the policy no longer configures (its copy may still run there; a warning
Event on the on-prem Job tells the operator the two ways out). Both are counted in gauges.

The federation loop creates one `Collection`; its deletes go through the loop's write fence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from prometheus_client import Gauge

from federator import errors, metrics
from federator.federation import fencing, planning
from federator.federation.ports import (
    CloudPort,
    CloudView,
    CopyView,
    DataGate,
    OnPremPort,
    OnPremView,
)
from federator.federation.records import Phase
from federator.federation.reports import PassReport

log = structlog.get_logger(__name__)


class Collection:
    """The garbage collection of cloud copies and configs, once a pass has acted."""

    def __init__(
        self,
        clouds: Mapping[str, CloudPort],
        *,
        data: Callable[[], DataGate | None],
        grace_s: Callable[[], float],
        watched_namespaces: Callable[[], frozenset[str] | None] = lambda: None,
        onprem: OnPremPort | None = None,
    ) -> None:
        self._clouds = clouds  # fenced by the federation, like every write
        self._data = data  # the federation's `data` (None: outputs are not checked)
        self._grace_s = grace_s  # the settings' `gc_grace_s` (reloadable)
        # The settings' `watched_namespaces` (None: every namespace is watched).
        self.watched_namespaces: Callable[[], frozenset[str] | None] = watched_namespaces
        self.onprem = onprem  # fenced; None: the unmanaged placements are logged, not told
        self._told_unmanaged: set[tuple[str, str]] = set()  # (job uid, cluster) told this run
        self._told_unwatched: set[tuple[str, str, str]] = set()  # (cluster, namespace, name)
        self._gauged: dict[str, set[str]] = {"unmanaged": set(), "unwatched": set()}

    async def collect(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        """Delete the cloud copies and configs no record vouches for (`planning.garbage`)."""
        synced = await self._synced_outputs(onprem, clouds, report)
        watched = self.watched_namespaces()
        found = planning.garbage(
            onprem,
            clouds,
            now=now,
            grace_s=self._grace_s(),
            outputs_synced=synced,
            check_outputs=self._data() is not None,
            watched_namespaces=watched,
        )
        for item in found:
            try:
                await self._clouds[item.cluster].delete_copy(item.copy.namespace, item.copy.name)
            except errors.FederatorError as e:
                report.failures.append(f"gc {item.cluster}/{item.copy.name}: {e}")
                continue
            report.actions.append(
                f"gc {item.cluster}/{item.copy.namespace}/{item.copy.name}: {item.why}"
            )
            log.info("copy_collected", cluster=item.cluster, copy=item.copy.name, why=item.why)
        unwatched = planning.unwatched_copies(clouds, watched)
        self._note_unwatched(unwatched)
        if onprem.synced:
            await self._note_unmanaged(onprem, clouds, report)
        # The configs of a copy left alone stay with it: its pods may start again and read them.
        keep = frozenset(c.source_uid for v in clouds.values() for c in v.copies) & (
            onprem.source_uids | {c.source_uid for c in unwatched}
        )
        for name, view in clouds.items():
            if view.up and view.synced and onprem.synced:
                try:
                    await self._clouds[name].sweep_configs(keep)
                except errors.FederatorError as e:
                    report.failures.append(f"gc configs on {name}: {e}")

    def _note_unwatched(self, copies: list[CopyView]) -> None:
        """Count the copies left alone in unwatched namespaces; log each once per process."""
        for copy in copies:
            told = (copy.cluster, copy.namespace, copy.name)
            if told not in self._told_unwatched:
                self._told_unwatched.add(told)
                log.warning(
                    "copy_in_unwatched_namespace",
                    cluster=copy.cluster,
                    copy=f"{copy.namespace}/{copy.name}",
                    hint="its on-prem namespace is not watched, so federator cannot tell "
                    "whether its source Job still exists: the copy is never collected; watch "
                    "the namespace again (and restart) or delete the copy by hand",
                )
        self._gauge("unwatched", metrics.UNWATCHED_COPIES, [c.cluster for c in copies])

    async def _note_unmanaged(
        self, onprem: OnPremView, clouds: Mapping[str, CloudView], report: PassReport
    ) -> None:
        """Count the jobs placed on clusters the policy no longer names, and tell each once
        per process: a log line and a warning Event (whose name its text fixes, so a restart
        posts no second one)."""
        found = planning.unmanaged_placements(onprem, clouds)
        self._gauge("unmanaged", metrics.UNMANAGED_PLACEMENTS, [c for c, _ in found])
        live = {(job.uid, cluster) for cluster, job in found}
        self._told_unmanaged &= live  # a job back under management is told again if it leaves
        for cluster, job in found:
            if (job.uid, cluster) in self._told_unmanaged:
                continue
            reason = planning.unmanaged_reason(cluster)
            log.warning("placement_unmanaged", cluster=cluster, job=job.key, hint=reason)
            if self.onprem is not None:
                try:
                    await self.onprem.event(
                        job, reason="FederatorClusterNotConfigured", message=reason, warning=True
                    )
                except errors.FederatorError as e:  # told again next pass
                    report.failures.append(f"{job.key}: unmanaged placement not told: {e}")
                    continue
            self._told_unmanaged.add((job.uid, cluster))

    def _gauge(self, name: str, gauge: Gauge, clusters: list[str]) -> None:
        """One series per cluster with a count; a cluster's series goes once it has none."""
        counts = {cluster: clusters.count(cluster) for cluster in set(clusters)}
        for gone in self._gauged[name] - counts.keys():
            gauge.remove(gone)
        for cluster, count in counts.items():
            gauge.labels(cluster=cluster).set(count)
        self._gauged[name] = set(counts)

    async def _synced_outputs(
        self, onprem: OnPremView, clouds: Mapping[str, CloudView], report: PassReport
    ) -> frozenset[str]:
        """Keys of finished jobs whose outputs are home, asked only while their copy is still
        there to hold them: a DONE record stays on the Job for as long as the Job exists, and
        asking about all of them would list the stores for every job ever bursted, each pass."""
        data = self._data()
        if data is None:
            return frozenset()
        held = {copy.source_uid for view in clouds.values() for copy in view.copies}
        synced = set()
        for job in onprem.jobs:
            record = job.record
            if record is None or record.phase is not Phase.DONE or job.uid not in held:
                continue
            try:
                if await data.outputs_synced(job.key, record.cluster):
                    synced.add(job.key)
            except errors.FederatorError as e:  # the copy waits for a later pass; GC goes on
                report.failures.append(f"{job.key}: outputs not synced back: {e}")
                log.warning("outputs_not_synced", job=job.key, error=str(e))
            except fencing.FenceClosed:
                raise
            except Exception as e:  # a bug or an untranslated store error: the same, loudly
                report.failures.append(f"{job.key}: outputs not synced back: {e!r}")
                log.exception("outputs_sync_crashed", job=job.key)
        return frozenset(synced)
