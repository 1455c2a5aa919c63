"""`federator simulate` end to end on small traces: output files, and refusing broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator import cli
from federator.sim.traces import synthetic_trace, write_trace

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"


def test_a_broken_trace_is_refused_with_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time_s,num_gpus,duration_s\n1,0,1,10\n2,5,two,10\n")
    code = cli.main(["simulate", "--config", str(POLICY), "--trace", str(trace)])
    assert code == 2
    assert f"{trace}:3: num_gpus must be a whole number, got 'two'" in capsys.readouterr().err


def test_an_unknown_policy_is_a_user_error(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    write_trace(trace, synthetic_trace(20, seed=1, cluster_gpus=16))
    args = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--policy", "magic"]
    assert cli.main(args) == 2


def test_a_small_run_writes_json_rows_and_a_plot(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    write_trace(trace, synthetic_trace(400, seed=2, cluster_gpus=32, load=1.2))
    out, plot = tmp_path / "runs.json", tmp_path / "curves.png"
    args = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--onprem-gpus", "32",
            "--policy", "never", "--policy", "starburst", "--policy", "federator",
            "--json", str(out), "--plot", str(plot), "--output-gb", "1"]  # fmt: skip
    assert cli.main(args) == 0
    rows = json.loads(out.read_text())
    assert [row["policy"] for row in rows] == ["never", "starburst", "federator"]
    for key in ("policy", "knob", "cloud_cost_usd", "mean_jct_s", "p95_jct_s", "mean_wait_s",
                "deadline_misses", "bursted_jobs", "onprem_utilization"):  # fmt: skip
        assert key in rows[0]
    assert rows[0]["cloud_cost_usd"] == 0
    assert rows[2]["bursted_jobs"] > 0
    assert rows[0]["wait_forecast"] == [], "never forecasts nothing"
    assert {size["gpus"] for size in rows[2]["wait_forecast"]} <= {"1", "2-4", "5-8", "9+"}
    assert sum(size["jobs"] for size in rows[2]["wait_forecast"]) > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--policy", "federator", "--policy", "federator"), "--policy federator: given twice"),
        (("--onprem-gpus", "16", "--onprem-gpus", "16"), "--onprem-gpus 16: given twice"),
    ],
)
def test_a_run_given_twice_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    trace, out = tmp_path / "t.csv", tmp_path / "runs.json"
    write_trace(trace, synthetic_trace(20, seed=1, cluster_gpus=16))
    args = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--json", str(out)]
    assert cli.main([*args, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (("--json", "{config}"), "--json {config}: is also --config's file"),
        (("--json", "{trace}"), "--json {trace}: is also --trace's file"),
        (("--plot", "{out}.png", "--json", "{out}.png"), "--plot {out}.png: is also --json's"),
    ],
)
def test_an_output_that_is_an_input_or_the_other_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: tuple[str, ...], message: str
) -> None:
    """`--json` pointed at the policy file overwrote it, exit 0."""
    config, trace, out = tmp_path / "policy.yaml", tmp_path / "t.csv", tmp_path / "same"
    config.write_text(POLICY.read_text().replace("../../../shared", str(REPO.parent / "shared")))
    write_trace(trace, synthetic_trace(20, seed=1, cluster_gpus=16))
    before = config.read_bytes(), trace.read_bytes()
    names = {"config": config, "trace": trace, "out": out}
    flags = [flag.format(**names) for flag in output]
    args = ["simulate", "--config", str(config), "--trace", str(trace), "--policy", "never"]
    assert cli.main([*args, *flags]) == 2
    assert message.format(**names) in capsys.readouterr().err
    assert (config.read_bytes(), trace.read_bytes()) == before
    assert not (tmp_path / "same.png").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--estimate", "noisy:300"), "--estimate 'noisy:300': SIGMA is at most 5"),
        (("--estimate", "noisy:-1"), "--estimate 'noisy:-1': SIGMA must be 0 or more"),
        (("--estimate", "noisy:nan"), "--estimate 'noisy:nan': SIGMA must be a finite number"),
        (("--estimate", "history:0"), "--estimate 'history:0': DEFAULT_S (seconds assumed"),
        (("--estimate", "history:x"), "--estimate 'history:x': DEFAULT_S must be a number"),
        (("--onprem-gpus", "5000000000"), "--onprem-gpus 5000000000: at most 1,000,000"),
        (("--gpus-per-node", "99999999999999999999"), "--gpus-per-node 99999999999999999999: at"),
        (("--json", "{trace}/x.json"), "{trace}/x.json: {trace} is a file, not a directory"),
    ],
)
def test_a_flag_past_its_bound_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    """Each was a traceback (OverflowError, MemoryError) or a misleading message."""
    trace = tmp_path / "t.csv"
    write_trace(trace, synthetic_trace(20, seed=1, cluster_gpus=16))
    given = [flag.format(trace=trace) for flag in flags]
    args = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--policy", "federator"]
    assert cli.main([*args, *given]) == 2
    err = capsys.readouterr().err
    assert message.format(trace=trace) in err
    assert "Traceback" not in err


def test_the_json_written_is_strict_json_with_null_for_what_is_not_finite(tmp_path: Path) -> None:
    from federator.sim import report

    out = tmp_path / "runs.json"
    report.write_json(out, [{"policy": "never", "mean_jct_s": float("nan"), "xs": [float("inf")]}])
    assert json.loads(out.read_text()) == [{"policy": "never", "mean_jct_s": None, "xs": [None]}]
    assert "NaN" not in out.read_text()
