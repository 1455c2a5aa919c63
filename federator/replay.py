"""Scale a slice of a real GPU trace down to a small cluster, for the demo and its comparison.

The demo replays trace A against the sandbox's 16 on-prem GPUs in a few minutes. A slice is
made comparable to the full cluster by thinning, not by shrinking jobs: every k-th job of the
window is kept, with k = trace cluster GPUs / sandbox GPUs, so the offered load per GPU stays
what the trace had. Time is compressed by one factor for submit times and durations alike, so
the queueing the slice produces is the trace's queueing, only faster. Jobs wider than one node
are clipped to a node (the sandbox's nodes have 8 GPUs) and said to be clipped.

Pure: it takes rows and returns rows; the demo script does the I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceRow:
    job_id: str
    submit_time_s: float
    num_gpus: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """One job of the scaled slice: when to submit it (seconds from the start) and its shape."""

    name: str
    queue: str
    submit_after_s: float
    gpus: int
    duration_s: float
    trace_job_id: str
    clipped_from_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class SliceSpec:
    start_s: float  # trace time where the slice starts
    length_s: float  # trace seconds in the slice
    trace_cluster_gpus: int  # GPUs of the cluster the trace ran on (e.g. 576)
    target_cluster_gpus: int  # GPUs of the cluster we replay on (the sandbox: 16)
    time_compression: float  # trace seconds per replay second
    max_gpus_per_job: int = 8
    # The sandbox's nodes hold 8 GPUs while most trace jobs ask for 1: the demo scales GPU
    # counts up (then clips to a node) so that gang placement on nodes matters as it would.
    gpu_scale: int = 1
    keep_every: int | None = None  # thinning step; None: from the cluster sizes
    min_duration_s: float = 5.0  # KWOK and Kueue need a few seconds to be observable
    max_duration_s: float = 120.0
    queues: Sequence[str] = ("team-a", "team-b")


def thinning_step(spec: SliceSpec) -> int:
    """Keep every k-th job so the offered load per GPU matches the trace's."""
    if spec.keep_every is not None:
        return max(1, spec.keep_every)
    return max(1, round(spec.trace_cluster_gpus / spec.target_cluster_gpus))


def scale_slice(rows: Iterable[TraceRow], spec: SliceSpec) -> list[ReplayJob]:
    window = [r for r in rows if spec.start_s <= r.submit_time_s < spec.start_s + spec.length_s]
    window.sort(key=lambda r: (r.submit_time_s, r.job_id))
    kept = window[:: thinning_step(spec)]
    return [_scale_row(index, row, spec) for index, row in enumerate(kept)]


def _scale_row(index: int, row: TraceRow, spec: SliceSpec) -> ReplayJob:
    wanted = row.num_gpus * spec.gpu_scale
    gpus = min(wanted, spec.max_gpus_per_job)
    duration = row.duration_s / spec.time_compression
    duration = min(max(duration, spec.min_duration_s), spec.max_duration_s)
    return ReplayJob(
        name=f"trace-{row.job_id}",
        queue=spec.queues[index % len(spec.queues)],
        submit_after_s=(row.submit_time_s - spec.start_s) / spec.time_compression,
        gpus=gpus,
        duration_s=round(duration, 1),
        trace_job_id=row.job_id,
        clipped_from_gpus=wanted if gpus != wanted else None,
    )


def busiest_window(rows: Sequence[TraceRow], length_s: float, step_s: float = 3600.0) -> float:
    """The start of the window with the most GPU-seconds submitted: the demo's best show."""
    ordered = sorted(rows, key=lambda r: r.submit_time_s)
    if not ordered:
        return 0.0
    times = [r.submit_time_s for r in ordered]
    prefix = [0.0]
    for r in ordered:
        prefix.append(prefix[-1] + r.num_gpus * r.duration_s)
    best_start, best_load, start = 0.0, -1.0, 0.0
    while start <= times[-1]:
        load = (
            prefix[bisect.bisect_left(times, start + length_s)]
            - prefix[bisect.bisect_left(times, start)]
        )
        if load > best_load:
            best_start, best_load = start, load
        start += step_s
    return best_start


def kueue_gpu_job(
    *,
    name: str,
    namespace: str,
    queue: str,
    gpus: int,
    duration_s: float,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A suspended Kueue Job whose one pod asks for `gpus` GPUs and, under KWOK, completes after
    `duration_s` (the sandbox's fake nodes run nothing; the pod annotations set its run time).

    Its runtime estimate annotation is the true duration, as a user who knows the job sets it.
    """
    delay = f"{duration_s:g}s"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/queue-name": queue, **(labels or {})},
            "annotations": {"federator.io/runtime-estimate": delay, **(annotations or {})},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "annotations": {
                        "pod-complete.stage.kwok.x-k8s.io/delay": delay,
                        "pod-complete.stage.kwok.x-k8s.io/jitter-delay": delay,
                    }
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.invalid/trainer:1",
                            "resources": {
                                "requests": {"cpu": "1", "nvidia.com/gpu": str(gpus)},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }
