"""Collection: deleting the cloud copies that no placement record vouches for any more.

At the end of each pass the loop looks at the clusters again and hands them here: a copy
whose record is gone, requeued away or done (once the job's outputs are back home, when a
data gate checks them) is deleted after a grace period (`planning.garbage` says which), and
each cloud cluster's leftover configs of jobs that are gone are swept. A failure on one copy
is recorded in the pass's failures and never stops the others.

The federation loop creates one `Collection`; its deletes go through the loop's write fence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from federator import errors
from federator.federation import fencing, planning
from federator.federation.ports import CloudPort, CloudView, DataGate, OnPremView
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
    ) -> None:
        self._clouds = clouds  # fenced by the federation, like every write
        self._data = data  # the federation's `data` (None: outputs are not checked)
        self._grace_s = grace_s  # the settings' `gc_grace_s` (reloadable)

    async def collect(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        """Delete the cloud copies and configs no record vouches for (`planning.garbage`)."""
        synced = await self._synced_outputs(onprem, clouds, report)
        found = planning.garbage(
            onprem,
            clouds,
            now=now,
            grace_s=self._grace_s(),
            outputs_synced=synced,
            check_outputs=self._data() is not None,
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
        keep = (
            frozenset(c.source_uid for v in clouds.values() for c in v.copies) & onprem.source_uids
        )
        for name, view in clouds.items():
            if view.up and view.synced and onprem.synced:
                try:
                    await self._clouds[name].sweep_configs(keep)
                except errors.FederatorError as e:
                    report.failures.append(f"gc configs on {name}: {e}")

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
