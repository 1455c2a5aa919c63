"""Scaling a trace slice keeps the load per GPU and compresses time uniformly."""

from __future__ import annotations

from federator.replay import (
    ReplayJob,
    SliceSpec,
    TraceRow,
    busiest_window,
    kueue_gpu_job,
    scale_slice,
)

ROWS = [TraceRow(str(i), float(i * 100), 1 + (i % 3) * 4, 600.0 * (i + 1)) for i in range(12)]


def spec(**overrides: object) -> SliceSpec:
    values: dict[str, object] = {
        "start_s": 0.0,
        "length_s": 1200.0,
        "trace_cluster_gpus": 64,
        "target_cluster_gpus": 16,
        "time_compression": 60.0,
    }
    values.update(overrides)
    return SliceSpec(**values)  # type: ignore[arg-type]


def test_every_kth_job_of_the_window_is_kept_where_k_is_the_cluster_ratio() -> None:
    jobs = scale_slice(ROWS, spec())
    assert [j.trace_job_id for j in jobs] == ["0", "4", "8"]


def test_submit_times_and_durations_are_compressed_by_the_same_factor() -> None:
    jobs = scale_slice(ROWS, spec(trace_cluster_gpus=16))
    assert jobs[1] == ReplayJob(
        name="trace-1",
        queue="team-b",
        submit_after_s=100 / 60,
        gpus=5,
        duration_s=20.0,
        trace_job_id="1",
    )


def test_wide_jobs_are_clipped_to_a_node_and_say_so() -> None:
    jobs = scale_slice(ROWS, spec(trace_cluster_gpus=16, max_gpus_per_job=4))
    clipped = [j for j in jobs if j.clipped_from_gpus is not None]
    assert clipped
    assert all(j.gpus == 4 and j.clipped_from_gpus in (5, 9) for j in clipped)


def test_durations_stay_within_what_the_sandbox_can_show() -> None:
    jobs = scale_slice(ROWS, spec(trace_cluster_gpus=16, time_compression=1000.0))
    assert min(j.duration_s for j in jobs) == 5.0
    jobs = scale_slice(ROWS, spec(trace_cluster_gpus=16, time_compression=1.0))
    assert max(j.duration_s for j in jobs) == 120.0


def test_the_busiest_window_is_where_most_gpu_seconds_are_submitted() -> None:
    rows = [TraceRow("a", 10.0, 1, 10.0), TraceRow("b", 7300.0, 8, 1000.0)]
    assert busiest_window(rows, length_s=3600.0) == 7200.0
    assert busiest_window([], length_s=3600.0) == 0.0


def test_gpu_counts_scale_up_before_they_are_clipped_to_a_node() -> None:
    jobs = scale_slice(ROWS, spec(trace_cluster_gpus=16, gpu_scale=4))
    assert [j.gpus for j in jobs[:3]] == [4, 8, 8]
    assert [j.clipped_from_gpus for j in jobs[:3]] == [None, 20, 36]


def test_an_explicit_thinning_step_wins_over_the_cluster_ratio() -> None:
    assert [j.trace_job_id for j in scale_slice(ROWS, spec(keep_every=5))] == ["0", "5", "10"]


def test_a_kueue_gpu_job_is_suspended_and_completes_under_kwok_after_its_duration() -> None:
    job = kueue_gpu_job(name="j", namespace="ns", queue="q", gpus=4, duration_s=36.5)
    pod = job["spec"]["template"]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert job["metadata"]["annotations"]["federator.io/runtime-estimate"] == "36.5s"
    assert pod["metadata"]["annotations"]["pod-complete.stage.kwok.x-k8s.io/delay"] == "36.5s"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
