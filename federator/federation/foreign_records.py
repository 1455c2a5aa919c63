"""A placement record of another Job: dropped once, and said on the Job.

`kubectl get job X -o json | kubectl replace --force -f -` (a common way to run a Job again)
re-creates the Job, with a new uid, and with all its annotations: the old placement's
`federator.io/record`, `placement` and `remote-state`. The record names the uid of the Job it
was written on, so the new Job's view has no record (`OnPremJob.foreign_record_uid` says whose
it is) and the job is decided afresh like any new one; this drops the stale annotations, so
that they mislead no one, with one Warning Event.
"""

from __future__ import annotations

import structlog

from federator.federation.ports import UNKNOWN_UID, OnPremJob, OnPremPort
from federator.federation.reports import PassReport

log = structlog.get_logger(__name__)

REASON = "FederatorRecordIgnored"


def message(record_uid: str) -> str:
    whose = (
        "was placed before this Job was created"
        if record_uid == UNKNOWN_UID
        else f"names Job uid {record_uid}, not this Job"
    )
    return (
        f"the placement record {whose} (re-created from an export?); it is ignored and the "
        "job is decided afresh"
    )


async def drop(onprem: OnPremPort, job: OnPremJob, report: PassReport) -> None:
    """Drop the Job's record of another uid with its `placement` and `remote-state` (one
    patch, preconditioned on the version the pass read; nothing is kept as the Job's
    `returned-record`), then tell the Job. A conflict leaves both to the next pass."""
    record_uid = job.foreign_record_uid
    if record_uid is None:
        return
    await onprem.write_record(job, None)  # job.record is None: nothing kept
    log.warning("placement_record_ignored", job=job.key, uid=job.uid, record_uid=record_uid)
    report.actions.append(f"drop {job.key}'s record of Job uid {record_uid}")
    await onprem.event(job, reason=REASON, message=message(record_uid), warning=True)
