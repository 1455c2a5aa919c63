from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from federator import errors
from federator.sim.traces import (
    TraceJob,
    jittered,
    parse_trace,
    read_trace,
    synthetic_trace,
    write_trace,
)

from .helpers import TRACE_A


def parse(text: str) -> tuple[TraceJob, ...]:
    return parse_trace(io.StringIO(text), "t.csv")


def test_a_good_trace_is_read_with_optional_columns() -> None:
    jobs = parse(
        "job_id,submit_time_s,num_gpus,duration_s,queue,deadline_s,gpu_type\n"
        "b,10,2,60,q1,500,A100\n"
        "a,5,1,30,,,\n"
    )
    assert [job.job_id for job in jobs] == ["a", "b"]
    second = jobs[1]
    assert second.queue == "q1"
    assert second.deadline_s == 500.0
    assert second.gpu_type == "A100"


def refusal(*rows: str) -> str:
    """The message a trace of these rows under the four required columns is refused with."""
    with pytest.raises(errors.UserError) as caught:
        parse("\n".join(("job_id,submit_time_s,num_gpus,duration_s", *rows)) + "\n")
    return str(caught.value)


def test_every_bad_row_is_reported_with_its_line_number() -> None:
    message = refusal("1,0,1,10", "2,x,1,10", "3,5,0,10", "4,5,1,-3", "1,6,1,10", "5,7,1")
    assert "5 bad row(s)" in message
    assert "t.csv:3: submit_time_s must be a number, got 'x'" in message
    assert "t.csv:4: num_gpus must be >= 1" in message
    assert "t.csv:5: duration_s must be" in message
    assert "t.csv:6: job_id '1' repeats line 2" in message
    assert "t.csv:7: expected 4 fields, found 3" in message


def test_numbers_python_reads_but_a_csv_would_not_mean_are_refused() -> None:
    """float() and int() take underscores and other scripts' digits: likely typos here."""
    message = refusal("1,1_000,1,10", "2,5,1_0,10", "3,5,1,\u0661\u0660\u0660", "4,1e3,+2,.5")
    assert "3 bad row(s)" in message
    assert "t.csv:2: submit_time_s must be a number, got '1_000'" in message
    assert "t.csv:3: num_gpus must be a whole number, got '1_0'" in message
    assert "t.csv:4: duration_s must be a number" in message


def test_a_missing_column_names_the_header_line() -> None:
    with pytest.raises(errors.UserError, match=r"t.csv:1: missing column\(s\) duration_s"):
        parse("job_id,submit_time_s,num_gpus\n1,0,1\n")


def test_an_empty_or_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(errors.UserError, match="empty"):
        parse("")
    with pytest.raises(errors.UserError, match="cannot read"):
        read_trace(tmp_path / "nope.csv")


def test_a_deadline_before_submission_is_refused() -> None:
    with pytest.raises(errors.UserError, match="deadline_s 5 is before submit_time_s"):
        parse("job_id,submit_time_s,num_gpus,duration_s,deadline_s\n1,10,1,5,5\n")


def test_trace_a_reads_completely() -> None:
    jobs = read_trace(TRACE_A)
    assert len(jobs) == 21_672
    assert sum(job.gpus * job.duration_s for job in jobs) / 3600 == pytest.approx(226_056, rel=1e-3)


def test_synthetic_traces_are_reproducible_and_round_trip(tmp_path: Path) -> None:
    first = synthetic_trace(500, seed=3, cluster_gpus=64)
    assert first == synthetic_trace(500, seed=3, cluster_gpus=64)
    assert first != synthetic_trace(500, seed=4, cluster_gpus=64)
    path = tmp_path / "s.csv"
    write_trace(path, first)
    assert read_trace(path) == first


def test_a_written_trace_reads_back_exactly_with_every_column(tmp_path: Path) -> None:
    """Times past a million seconds, fractions of a second, deadlines and GPU types survive
    (write_trace once wrote 6 significant digits and only the required columns and queue)."""
    long = synthetic_trace(2000, seed=1, cluster_gpus=8, load=1.1)
    assert long[-1].submit_s > 1e6
    jobs = jittered(
        [
            replace(job, deadline_s=job.submit_s + 7200.0, gpu_type="A100") if i % 3 else job
            for i, job in enumerate(long)
        ],
        seed=4,
    )
    path = tmp_path / "exact.csv"
    write_trace(path, jobs)
    assert read_trace(path) == jobs


def test_a_trace_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("job_id,submit_time_s,num_gpus,duration_s\n1,0,1,10\n", encoding="utf-8-sig")
    assert [job.job_id for job in read_trace(path)] == ["1"]


def test_a_byte_that_is_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"job_id,submit_time_s,num_gpus,duration_s\n1,0,1,10\nj\xe9,5,1,10\n")
    with pytest.raises(errors.UserError, match=r"latin.csv:3: the trace is not UTF-8 text"):
        read_trace(path)


@pytest.mark.parametrize("duration", ["-5", "0"])
def test_a_duration_not_above_zero_is_refused_with_the_real_rule(duration: str) -> None:
    with pytest.raises(errors.UserError) as caught:
        parse(f"job_id,submit_time_s,num_gpus,duration_s\n1,0,1,{duration}\n")
    assert f"t.csv:2: duration_s must be a finite number > 0, got '{duration}'" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "job_id,submit_time_s,num_gpus,duration_s,deadline",
            "t.csv:1: unknown column 'deadline' (field 5) (did you mean 'deadline_s'?)",
        ),
        ("job_id,submit_time_s,num_gpus,duration_s,owner", "t.csv:1: unknown column 'owner'"),
        (
            "job_id,submit_time_s,num_gpus,duration_s,duration_s",
            "t.csv:1: column 'duration_s' appears twice (fields 4 and 5)",
        ),
    ],
)
def test_an_unknown_or_repeated_column_is_refused_not_ignored(header: str, message: str) -> None:
    """A misspelt `deadline` used to drop every deadline without a word."""
    with pytest.raises(errors.UserError) as caught:
        parse(f"{header}\n1,0,8,3600,100\n")
    assert message in str(caught.value)


def test_a_field_too_long_for_the_csv_reader_names_its_line() -> None:
    text = "job_id,submit_time_s,num_gpus,duration_s\n1,0,1,10\n" + "x" * 200_000 + ",0,8,100\n"
    with pytest.raises(errors.UserError, match=r"t.csv:3: cannot read the row: field larger"):
        parse(text)


@pytest.mark.parametrize(
    ("row", "column"), [("1,0,8,1e308", "duration_s"), ("1,1e300,8,100", "submit_time_s")]
)
def test_a_time_past_a_century_is_refused(row: str, column: str) -> None:
    """1e300 + 100 == 1e300: such a trace ran, with every JCT 0 and utilization nan."""
    with pytest.raises(errors.UserError, match=f"{column} .* is past 3153600000"):
        parse(f"job_id,submit_time_s,num_gpus,duration_s\n{row}\n")
