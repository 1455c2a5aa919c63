"""Job traces: reading a trace CSV strictly, and generating synthetic traces for scale tests.

A trace is the simulator's only source of truth about jobs. A broken row silently skipped would
change every figure, so reading is all-or-nothing: the bad rows are counted, the first
`MAX_REPORTED_ERRORS` reported with their line numbers, and the run does not start
(`UserError`, exit 2).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from federator import errors
from federator.textfiles import numbered_rows, read_utf8

REQUIRED_COLUMNS = ("job_id", "submit_time_s", "num_gpus", "duration_s")
OPTIONAL_COLUMNS = ("queue", "deadline_s", "gpu_type")
MAX_REPORTED_ERRORS = 20
# Times past a century are typos, and would lose the precision that second-level waits need
# (1e300 + 100 == 1e300): the policy file's durations have the same bound.
MAX_TIME_S = 36500 * 86400.0
MAX_TIME_TEXT = "3153600000 (100 years in seconds)"


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace: what it asks for and how long it truly runs."""

    job_id: str
    submit_s: float
    gpus: int
    duration_s: float  # true run time; only the oracle's estimator may read it
    queue: str = "default"
    deadline_s: float | None = None  # absolute, on the trace clock
    gpu_type: str = ""  # empty: any GPU type


def read_trace(path: Path) -> tuple[TraceJob, ...]:
    """Read and validate a trace CSV; raise one `UserError` counting the bad rows (the first
    `MAX_REPORTED_ERRORS` listed).

    UTF-8, with or without the byte-order mark spreadsheets write at the start.
    """
    text = read_utf8(path, "trace")
    return parse_trace(io.StringIO(text, newline=""), str(path))


def parse_trace(lines: Iterable[str], where: str) -> tuple[TraceJob, ...]:
    """Parse trace rows from `lines` (header first); `where` names the source in messages."""
    rows = numbered_rows(csv.reader(lines), where, "the row")
    _, header = next(rows, (1, None))
    if header is None:
        raise errors.UserError(f"{where}: the trace is empty; expected a header line")
    columns = _column_index(header, where)
    jobs: list[TraceJob] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for line_number, row in rows:
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            job = _parse_row(row, columns, len(header))
        except ValueError as error:
            problems.append(f"{where}:{line_number}: {error}")
            continue
        if job.job_id in seen:
            problems.append(
                f"{where}:{line_number}: job_id {job.job_id!r} repeats line {seen[job.job_id]}"
            )
            continue
        seen[job.job_id] = line_number
        jobs.append(job)
    if problems:
        raise errors.UserError(_problem_report(where, problems))
    if not jobs:
        raise errors.UserError(f"{where}: the trace has a header but no jobs")
    jobs.sort(key=lambda job: job.submit_s)  # stable: ties keep file order
    return tuple(jobs)


def _column_index(header: list[str], where: str) -> dict[str, int]:
    """Where each known column is. A missing required column, an unknown one (a misspelt
    `deadline` would drop every deadline without a word) and a repeated one are refused."""
    names = [name.strip() for name in header]
    known = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
    expected = f"{','.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})"
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise errors.UserError(
            f"{where}:1: missing column(s) {', '.join(missing)}; a trace needs {expected}"
        )
    for field, name in enumerate(names, start=1):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise errors.UserError(
                f"{where}:1: unknown column {name!r} (field {field}){hint}; a trace has "
                f"{expected}: rename the column or remove it"
            )
        if name in names[: field - 1]:
            raise errors.UserError(
                f"{where}:1: column {name!r} appears twice (fields {names.index(name) + 1} "
                f"and {field}); keep one"
            )
    return {name: names.index(name) for name in known if name in names}


def _parse_row(row: list[str], columns: dict[str, int], width: int) -> TraceJob:
    if len(row) != width:
        raise ValueError(f"expected {width} fields, found {len(row)}")

    def cell(name: str) -> str:
        return row[columns[name]].strip() if name in columns else ""

    job_id = cell("job_id")
    if not job_id:
        raise ValueError("job_id is empty")
    submit = _number(cell("submit_time_s"), "submit_time_s", minimum=0.0)
    gpus = _whole(cell("num_gpus"), "num_gpus")
    duration = _number(cell("duration_s"), "duration_s", minimum=0.0, above=True)
    deadline_text = cell("deadline_s")
    deadline = _number(deadline_text, "deadline_s", minimum=0.0) if deadline_text else None
    if deadline is not None and deadline < submit:
        raise ValueError(f"deadline_s {deadline_text} is before submit_time_s")
    return TraceJob(
        job_id=job_id,
        submit_s=submit,
        gpus=gpus,
        duration_s=duration,
        queue=cell("queue") or "default",
        deadline_s=deadline,
        gpu_type=cell("gpu_type"),
    )


# What a CSV number may look like: Python's float() and int() also take "1_000" and digits of
# other scripts ("١٠٠"), which in a trace are far likelier typos than meant.
_DECIMAL = re.compile(
    r"[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|nan|inf|infinity)", re.ASCII | re.IGNORECASE
)
_WHOLE = re.compile(r"[+]?\d+", re.ASCII)


def _number(text: str, column: str, minimum: float, above: bool = False) -> float:
    """A finite number >= `minimum` (> `minimum` if `above`), at most `MAX_TIME_S`."""
    if not _DECIMAL.fullmatch(text.strip()):
        raise ValueError(f"{column} must be a number, got {text!r}")
    value = float(text)
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        rule = ">" if above else ">="
        raise ValueError(f"{column} must be a finite number {rule} {minimum:g}, got {text!r}")
    if value > MAX_TIME_S:
        raise ValueError(f"{column} {text} is past {MAX_TIME_TEXT}; is it in seconds?")
    return value


def _whole(text: str, column: str) -> int:
    if not _WHOLE.fullmatch(text.strip()):
        raise ValueError(f"{column} must be a whole number, got {text!r}")
    value = int(text)
    if value < 1:
        raise ValueError(f"{column} must be >= 1, got {text!r}")
    return value


def _problem_report(where: str, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED_ERRORS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more bad row(s)" if more else ""
    return (
        f"{where}: {len(problems)} bad row(s); fix them before simulating:\n  "
        + "\n  ".join(shown)
        + tail
    )


# The mix below is a generic "shared research cluster" shape: mostly single-GPU jobs,
# log-normal run times with a heavy tail, bursty Poisson arrivals. It exists to exercise scale
# and to check that the policy is not tuned to trace A; it is not fitted to any trace.
_SYNTHETIC_SIZES = ((1, 0.80), (2, 0.08), (4, 0.07), (8, 0.04), (16, 0.01))


def synthetic_trace(
    jobs: int, seed: int, cluster_gpus: int, load: float = 1.0, queues: int = 4
) -> tuple[TraceJob, ...]:
    """A reproducible synthetic trace offering about `load` x `cluster_gpus` of demand."""
    rng = random.Random(seed)
    sizes = [size for size, _ in _SYNTHETIC_SIZES]
    weights = [weight for _, weight in _SYNTHETIC_SIZES]
    mean_gpus = sum(size * weight for size, weight in _SYNTHETIC_SIZES)
    median_s, sigma = 1200.0, 1.8
    mean_duration = median_s * math.exp(sigma * sigma / 2)
    rate = load * cluster_gpus / (mean_gpus * mean_duration)  # jobs per second
    return tuple(_synthetic_jobs(rng, jobs, rate, sizes, weights, median_s, sigma, queues))


def _synthetic_jobs(
    rng: random.Random,
    count: int,
    rate: float,
    sizes: list[int],
    weights: list[float],
    median_s: float,
    sigma: float,
    queues: int,
) -> Iterator[TraceJob]:
    now = 0.0
    for index in range(count):
        now += rng.expovariate(rate)
        duration = max(1.0, round(rng.lognormvariate(math.log(median_s), sigma)))
        yield TraceJob(
            job_id=str(index),
            submit_s=round(now),
            gpus=rng.choices(sizes, weights)[0],
            duration_s=min(duration, 30 * 86400.0),
            queue=f"q{rng.randrange(queues)}",
        )


def jittered(jobs: Iterable[TraceJob], seed: int, spread_s: float = 1.0) -> tuple[TraceJob, ...]:
    """The same jobs, each submitted up to `spread_s` later (uniform, reproducible by `seed`),
    deadlines moved by the same delay.

    A perturbation no policy should care about: a second's delay changes no job's value, but a
    busy queue is chaotic, and the order of near-simultaneous arrivals changes every later
    schedule. Replaying a trace under several seeds shows how far a policy's curve moves from
    one replay to the next (scripts/bench/simulate.py --jitter, simulate --replays).

    The result is in submission order, as `read_trace` returns a trace (the engine admits jobs
    in trace order): jobs less than `spread_s` apart may swap (on a trace of whole seconds, the
    jobs of one second come out in the jitter's order). The delays are drawn in the given
    order, so a seed gives the same replay of the same trace.
    """
    rng = random.Random(seed)
    moved = [_delayed(job, rng.uniform(0.0, spread_s)) for job in jobs]
    moved.sort(key=lambda job: job.submit_s)
    return tuple(moved)


def _delayed(job: TraceJob, delay_s: float) -> TraceJob:
    """The job submitted `delay_s` later, its deadline (absolute) moved with it: same slack."""
    deadline = None if job.deadline_s is None else job.deadline_s + delay_s
    return replace(job, submit_s=job.submit_s + delay_s, deadline_s=deadline)


def write_trace(path: Path, jobs: Iterable[TraceJob]) -> None:
    """Write jobs in the trace CSV format, every column, so that `read_trace` gives them back
    exactly (used to save synthetic and jittered traces)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
        for job in jobs:
            deadline = "" if job.deadline_s is None else _exact(job.deadline_s)
            writer.writerow(
                (
                    job.job_id,
                    _exact(job.submit_s),
                    job.gpus,
                    _exact(job.duration_s),
                    job.queue,
                    deadline,
                    job.gpu_type,
                )
            )


def _exact(seconds: float) -> str:
    """Whole seconds as an integer, others as the shortest text that reads back the same float
    (`:g` kept six digits: 1000682 s was written 1.00068e+06)."""
    value = float(seconds)  # synthetic traces hold whole seconds as ints
    return str(int(value)) if value.is_integer() else repr(value)
