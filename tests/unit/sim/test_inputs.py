"""`federator simulate` refuses bad input before anything runs, naming the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator import cli, errors
from federator.sim import markets

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"
HEADER = "job_id,submit_time_s,num_gpus,duration_s"
SPOT, ON_DEMAND = "aws/v100-spot", "aws/v100-ondemand"


def price_file(tmp_path: Path, *prices: str, zone: str = "us-east-1a") -> Path:
    records = [
        {
            "AvailabilityZone": zone,
            "InstanceType": "p3.2xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": price,
            "Timestamp": f"2020-02-20T{10 + number:02d}:00:00.000Z",
        }
        for number, price in enumerate(prices)
    ]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"SpotPriceHistory": records}))
    return path


def trace_file(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("\n".join((header, *rows)) + "\n")
    return path


def simulate(trace: Path, *flags: str) -> int:
    return cli.main(["simulate", "--config", str(POLICY), "--trace", str(trace), *flags])


# --- replayed spot prices ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "why"),
    [
        ("-5", "is not a price"),
        ("0", "is not a price"),
        ("inf", "is not a price"),
        ("nan", "is not a price"),
        ("cheap", "is not a number"),
    ],
)
def test_a_bad_replayed_price_is_refused_naming_file_and_record(
    tmp_path: Path, price: str, why: str
) -> None:
    path = price_file(tmp_path, "0.9", price)
    with pytest.raises(errors.UserError) as caught:
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    message = str(caught.value)
    assert f'{path}: record 2: SpotPrice "{price}" {why}' in message
    assert "refuses bad prices rather than guessing" in message


def test_a_replayed_spot_price_above_on_demand_is_refused(tmp_path: Path) -> None:
    path = price_file(tmp_path, "0.9", "999999")
    with pytest.raises(errors.UserError) as caught:
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    message = str(caught.value)
    assert f"{path}: record 2: spot 999999 USD/h" in message
    assert "above the pool's on-demand 3.06" in message
    assert f"a spot pool ({SPOT}) refuses" in message


def test_two_prices_at_one_instant_are_refused_and_a_repeated_record_is_not(
    tmp_path: Path,
) -> None:
    """Which price held then? The series kept the higher one without a word. A repeated
    record is one price change, not two at the same instant."""
    path = price_file(tmp_path, "0.9", "1.1", "1.2")
    document = json.loads(path.read_text())
    records = document["SpotPriceHistory"]
    records.append(dict(records[0]))  # the same record twice (overlapping pages): harmless
    records.append({**records[1], "SpotPrice": "1.5"})
    path.write_text(json.dumps(document))
    with pytest.raises(errors.UserError) as caught:
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    message = str(caught.value)
    assert "1 bad record(s)" in message
    assert (
        f"{path}: record 5: p3.2xlarge in us-east-1a at 2020-02-20T11:00:00+00:00 costs "
        "1.5 USD/h, and record 2 gives 1.1 at that same instant"
    ) in message
    del records[-1]
    path.write_text(json.dumps(document))
    history = markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    assert history.times_s == (0.0, 3600.0, 7200.0)
    assert history.usd_per_gpu_hour == (0.9, 1.1, 1.2)


def test_a_good_replayed_history_is_per_gpu_from_its_first_change(tmp_path: Path) -> None:
    path = price_file(tmp_path, "0.9", "3.06", "1.2")  # equal to on-demand is a real market
    history = markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    assert history.times_s == (0.0, 3600.0, 7200.0)
    assert history.usd_per_gpu_hour == (0.9, 3.06, 1.2)


def with_a_second_series(path: Path, **changed: str) -> Path:
    """The file's records again with `changed` fields (another instance type or product), at
    a price far from the first series' so a mix-up shows."""
    document = json.loads(path.read_text())
    records = document["SpotPriceHistory"]
    records += [{**record, **changed, "SpotPrice": "2.9"} for record in records]
    path.write_text(json.dumps(document))
    return path


def test_the_pools_instance_type_is_replayed_and_never_another(tmp_path: Path) -> None:
    """Before, the zone's first instance type in sorted order was replayed: p3.16xlarge's
    prices for a p3.2xlarge pool, and silently."""
    path = with_a_second_series(price_file(tmp_path, "0.3", "0.4"), InstanceType="p3.16xlarge")
    history = markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8, "p3.2xlarge")
    assert history.usd_per_gpu_hour == (0.3, 0.4)
    with pytest.raises(errors.UserError, match=r"no spot prices for p5.48xlarge \(the instance "
                       r"type of pool aws/v100-spot\) in zone 'us-east-1a'; the zone has "
                       r"p3.16xlarge, p3.2xlarge"):  # fmt: skip
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8, "p5.48xlarge")
    with pytest.raises(errors.UserError, match="names no instance type to choose one"):
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)


def test_two_products_of_one_instance_type_are_refused(tmp_path: Path) -> None:
    """Linux and Windows records interleaved, and the series kept one of them (Windows, at
    ten times the price) without a word."""
    path = with_a_second_series(price_file(tmp_path, "0.3", "0.4"), ProductDescription="Windows")
    with pytest.raises(errors.UserError, match=r"several products \('Linux/UNIX', 'Windows'\)"):
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8, "p3.2xlarge")


def test_unreadable_records_are_described_in_words(tmp_path: Path) -> None:
    path = price_file(tmp_path, "0.9", "1.0", "1.1")
    document = json.loads(path.read_text())
    del document["SpotPriceHistory"][0]["Timestamp"]
    document["SpotPriceHistory"][1]["Timestamp"] = "yesterday"
    document["SpotPriceHistory"][2] = "x"
    path.write_text(json.dumps(document))
    with pytest.raises(errors.UserError) as caught:
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)
    message = str(caught.value)
    assert f"{path}: record 1: has no Timestamp" in message
    assert f'{path}: record 2: Timestamp "yesterday" is not an ISO 8601 time' in message
    assert f'{path}: record 3: expected an object, found "x"' in message
    assert "Error(" not in message


def test_a_spot_file_that_is_not_utf8_is_a_user_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(b'{"SpotPriceHistory": [\n]}\xff\n')
    with pytest.raises(errors.UserError, match=r"prices.json:2: .* is not UTF-8 text"):
        markets.load_price_history(path, "us-east-1a", SPOT, 3.06, 8)


def test_an_availability_trace_without_metadata_is_described_in_words(tmp_path: Path) -> None:
    path = tmp_path / "us-east-1a_v100_1.json"
    path.write_text(json.dumps({"data": [1, 0, 1]}))
    with pytest.raises(errors.UserError, match=r"metadata.gap_seconds is missing"):
        markets.load_availability(path)
    path.write_text(json.dumps({"metadata": {"gap_seconds": 60}, "data": [1, -1, "x"]}))
    with pytest.raises(errors.UserError) as caught:
        markets.load_availability(path)
    assert f"{path}: data[1]: expected a whole number of instances >= 0, found -1" in str(
        caught.value
    )
    path.write_text(json.dumps({"metadata": {"gap_seconds": "32"}, "data": [1]}))
    with pytest.raises(errors.UserError, match=r"gap_seconds must be a finite number .* \"32\""):
        markets.load_availability(path)


# --- flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["=f.json", "aws/v100-spot=", "f.json,g.json"])
def test_a_spot_file_flag_without_its_pool_or_its_file_says_how_to_write_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """`=f.json` read as the pool "" ("no cloud pool called  in the policy file")."""
    flags = [item for part in value.split(",") for item in ("--spot-trace", part)]
    assert simulate(trace_file(tmp_path, "1,0,1,10"), *flags) == 2
    err = capsys.readouterr().err
    assert "give [POOL=]FILE once per pool" in err


@pytest.mark.parametrize("flag", ["--spot-prices", "--spot-trace"])
def test_a_spot_market_for_an_on_demand_pool_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    market = tmp_path / "market.json"
    market.write_text("{}")
    value = (
        f"{ON_DEMAND}={market}@us-east-1a" if flag == "--spot-prices" else f"{ON_DEMAND}={market}"
    )
    assert simulate(trace_file(tmp_path, "1,0,1,10"), flag, value) == 2
    assert f"pool {ON_DEMAND} is an on-demand pool" in capsys.readouterr().err


def test_a_spot_market_for_every_pool_without_a_spot_pool_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = POLICY.read_text().replace("file: ../../../", f"file: {REPO.parent}/")
    head, _, tail = text.partition("      - name: v100-spot")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        head + "      - name: v100-ondemand" + tail.partition("- name: v100-ondemand")[2]
    )
    market = tmp_path / "market.json"
    market.write_text("{}")
    trace = trace_file(tmp_path, "1,0,1,10")
    args = ["simulate", "--config", str(policy), "--trace", str(trace), "--spot-trace", str(market)]
    assert cli.main(args) == 2
    assert "--spot-trace (for every spot pool): the policy file has no spot pool" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--output-gb", "inf"),
        ("--dataset-gb", "inf"),
        ("--dataset-gb", "nan"),
        ("--dataset-gb", "-1"),
        ("--decision-period", "nan"),
        ("--decision-period", "inf"),
        ("--decision-period", "-30"),
        ("--decision-period", "1e-300"),
        ("--decision-period", "1e12"),
        ("--replays", "100000"),
    ],
)
def test_a_number_flag_out_of_range_is_an_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        simulate(trace_file(tmp_path, "1,0,1,10"), flag, value)
    assert caught.value.code == 2
    assert f"argument {flag}: '{value}' must be" in capsys.readouterr().err


# --- outputs: refused before any run ---------------------------------------------------------


def test_unwritable_outputs_are_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = trace_file(tmp_path, "1,0,1,10")
    missing = tmp_path / "no" / "x.json"
    cases = [
        (("--json", str(missing)), f"--json {missing}: directory {missing.parent} does not exist"),
        (("--plot", str(tmp_path / "out.txt")), "extension .txt; the file's extension chooses"),
        (("--plot", str(tmp_path)), f"--plot {tmp_path}: is a directory"),
        (("--plot", str(tmp_path / "curves")), "no extension"),
    ]
    for flags, expected in cases:
        assert simulate(trace, "--policy", "never", *flags) == 2
        captured = capsys.readouterr()
        assert expected in captured.err
        assert "never" not in captured.out, "nothing may run before the outputs are checked"
    assert not (tmp_path.with_suffix(".png")).exists()


def test_every_onprem_size_is_checked_before_the_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = trace_file(tmp_path, "1,0,1,10", "2,5,16,10")
    flags = ("--onprem-gpus", "16", "--onprem-gpus", "8", "--policy", "never")
    assert simulate(trace, *flags) == 2
    captured = capsys.readouterr()
    assert "job 2 needs 16 GPUs" in captured.err
    assert "never" not in captured.out, "the 16-GPU size must not run before the 8 is refused"


def test_the_default_onprem_size_places_the_biggest_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Mean demand here is under one node; the 16-GPU job must still fit the default cluster.
    trace = trace_file(tmp_path, "1,0,16,100", "2,1000,1,100", "3,2000,1,100")
    assert simulate(trace, "--policy", "never") == 0
    assert "on-prem 16 GPUs" in capsys.readouterr().out


# --- gpu types -----------------------------------------------------------------------------


def test_a_gpu_type_no_pool_offers_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = trace_file(
        tmp_path, "1,0,1,10,v100", "2,5,1,10,H999", "3,6,1,10,v100", "4,7,1,10,V100",
        header=HEADER + ",gpu_type",
    )  # fmt: skip
    assert simulate(trace, "--policy", "never") == 0
    err = capsys.readouterr().err
    assert "warning" in err
    assert "3 trace job(s) ask for a gpu_type no cloud pool offers" in err
    assert "'H999' (1 job(s)), 'v100' (2 job(s))" in err
    assert "pools' GPU types: V100" in err
    assert "'v100' -> 'V100'" in err


def test_a_job_too_big_for_onprem_whose_gpu_type_no_pool_offers_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = trace_file(tmp_path, "1,0,16,600,H999", "2,10,1,60,", header=HEADER + ",gpu_type")
    assert simulate(trace, "--onprem-gpus", "8", "--policy", "greedy-spot") == 2
    assert "asks for gpu_type 'H999', which no cloud pool offers" in capsys.readouterr().err


def test_a_pool_startup_of_0s_is_simulated_as_0s_not_the_cluster_value() -> None:
    from federator.policy import parse_policy
    from federator.sim import setup
    from federator.sim.traces import TraceJob

    document = POLICY.read_text().replace(
        "gpus_per_node: 8\n", "gpus_per_node: 8\n        startup_latency: 0s\n", 1
    )
    config = parse_policy(document, "test.yaml", base_dir=POLICY.parent)
    world = setup.build_world(
        config, [TraceJob("1", 0.0, 1, 10.0)], setup.WorldOptions(onprem_gpus=8)
    )
    startups = sorted(pool.startup_latency_s for pool in world.scenario.pools)
    assert startups == [0.0, 180.0]  # the one pool set to 0s, the other the cluster's 3m
