"""`federator simulate` refuses the catalog prices `federator prices` and the daemon refuse
(negative, zero, NaN, infinite, spot above on-demand), naming the pool, the file and its line,
instead of simulating with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import cli
from federator.prices.catalog import AWS_HEADER

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.read_text().replace("../../../shared/data/catalog/aws/vms.csv", "vms.csv")
    )
    trace = tmp_path / "t.csv"
    rows = "".join(f"j{i},{i * 60},8,7200\n" for i in range(8))
    trace.write_text("job_id,submit_time_s,num_gpus,duration_s\n" + rows)
    return policy, trace


def simulate(
    world: tuple[Path, Path], price: str, spot: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    policy, trace = world
    row = f'p3.2xlarge,V100,1.0,8.0,61.0,"{{}}",{price},{spot},us-east-1,use1-az1,x86_64'
    (policy.parent / "vms.csv").write_text(f"{','.join(AWS_HEADER)}\n{row}\n")
    argv = ["simulate", "--config", str(policy), "--trace", str(trace), "--onprem-gpus", "8"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize(
    ("price", "spot", "why"),
    [
        ("3.06", "-1", "spot price -1.0 is negative"),
        ("-3.06", "0.4995", "on-demand price -3.06 is negative"),
        ("3.06", "inf", "spot price inf is not finite"),
        ("1e308", "0.4995", None),  # finite per instance; caught below as absurd? see test
        ("0", "0", "on-demand price 0.0 is zero"),
        ("3.06", "9.0", "spot 9.0 is above on-demand 3.06"),
        ("nan", "0.4995", "on-demand price nan is not finite"),
    ],
)
def test_a_refused_catalog_price_stops_the_simulation(
    world: tuple[Path, Path],
    price: str,
    spot: str,
    why: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = simulate(world, price, spot, capsys)
    assert code == 2, out
    catalog = world[0].parent / "vms.csv"
    assert "clusters.aws.pools.v100-spot.price" in err
    assert f"{catalog}:2" in err
    if why is not None:
        assert why in err


def test_a_sane_catalog_price_still_simulates(
    world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = simulate(world, "3.06", "0.4995", capsys)
    assert code == 0
