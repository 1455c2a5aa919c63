"""Price catalogs a person got wrong: bad bytes, a spreadsheet's byte-order mark, a huge
field, non-finite prices in `prices --json`, zero prices, and `validate --check-files` on a
file that is not a catalog. Each is one clear message (exit 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator import cli
from federator.core.models import CapacityType
from federator.errors import UserError
from federator.prices.catalog import AWS_HEADER, load_catalog
from federator.prices.quotes import PricePart, PriceQuote, Rejection, RejectReason
from federator.prices.validation import check_amount, check_quote

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"
HEADER = ",".join(AWS_HEADER)


def catalog_row(price: str = "3.06", spot: str = "0.4995", gpu_info: str = "{}") -> str:
    return f'p3.2xlarge,V100,1.0,8.0,61.0,"{gpu_info}",{price},{spot},us-east-1,use1-az1,x86_64'


def write_catalog(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "vms.csv"
    path.write_bytes(data)
    return path


def write_policy(tmp_path: Path, catalog: str = "vms.csv") -> Path:
    text = POLICY.read_text().replace("../../../shared/data/catalog/aws/vms.csv", catalog)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# 2. bytes that are not UTF-8


def test_a_catalog_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    data = (
        f"{HEADER}\n{catalog_row()}\n".encode()
        + b'p3.2xlarge,V100,1.0,8.0,61.0,"caf\xe9",1,1,r,z,x\n'
    )
    path = write_catalog(tmp_path, data)
    with pytest.raises(UserError) as raised:
        load_catalog(path)
    assert str(raised.value).startswith(f"{path}:3: the price catalog is not UTF-8 text")
    assert "byte 0xe9" in str(raised.value)


@pytest.mark.parametrize("command", ["prices", "simulate"])
def test_a_non_utf8_catalog_exits_2_through_the_cli(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_catalog(
        tmp_path, f"{HEADER}\n{catalog_row(gpu_info='caf')}\n".encode() + b"\xe9\n"
    )
    policy = write_policy(tmp_path)
    if command == "prices":
        argv = ["prices", "--config", str(policy), "--offline"]
    else:
        trace = tmp_path / "t.csv"
        trace.write_text("job_id,submit_time_s,num_gpus,duration_s\nj1,0,8,3600\n")
        argv = ["simulate", "--config", str(policy), "--trace", str(trace), "--onprem-gpus", "8"]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert f"{path}:3: the price catalog is not UTF-8 text" in err


# 3. a spreadsheet's byte-order mark


def test_a_catalog_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, f"\ufeff{HEADER}\n{catalog_row()}\n".encode())
    catalog = load_catalog(path)
    assert catalog.cloud == "aws"
    assert [row.on_demand_usd_per_hour for row in catalog.rows] == [3.06]


# 4. a field over the csv module's limit


def test_a_huge_field_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = "x" * (129 * 1024)
    path = write_catalog(
        tmp_path, f"{HEADER}\n{catalog_row()}\n{catalog_row(gpu_info=big)}\n".encode()
    )
    with pytest.raises(UserError) as raised:
        load_catalog(path)
    assert str(raised.value).startswith(f"{path}:3: cannot read the price catalog's row:")
    assert "field larger than field limit" in str(raised.value)
    code, _, err = run(["prices", "--config", str(write_policy(tmp_path)), "--offline"], capsys)
    assert code == 2
    assert f"{path}:3: cannot read the price catalog's row" in err


# 5. non-finite prices never reach JSON as NaN/Infinity


@pytest.mark.parametrize(("price", "spot"), [("nan", "0.4995"), ("3.06", "inf"), ("inf", "nan")])
def test_prices_json_stays_standard_json(
    tmp_path: Path, price: str, spot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_catalog(tmp_path, f"{HEADER}\n{catalog_row(price, spot)}\n".encode())
    code, out, _ = run(
        ["prices", "--config", str(write_policy(tmp_path)), "--offline", "--json"], capsys
    )
    assert code == 0
    for token in ("NaN", "Infinity"):
        assert token not in out

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    rows = json.loads(out, parse_constant=refuse)
    assert all(not row["offered"] for row in rows)
    assert {row["refused_reason"] for row in rows} == {"not_finite"}


# zero is not "negative"


def test_a_zero_price_is_called_zero() -> None:
    refusal = check_amount(0.0, "spot", "aws/vms.csv:2")
    assert isinstance(refusal, Rejection)
    assert "is zero" in refusal.detail
    assert "negative" not in refusal.detail
    assert refusal.reason is RejectReason.ZERO  # the metric's label says so too
    negative = check_amount(-1.0, "spot", "aws/vms.csv:2")
    assert isinstance(negative, Rejection)
    assert "is negative" in negative.detail
    assert negative.reason is RejectReason.NEGATIVE


def test_a_zero_catalog_row_is_refused_as_zero() -> None:
    quote = PriceQuote(
        instance_type="p3.2xlarge", region="us-east-1", zone="use1-az1", gpus_per_instance=1,
        on_demand_usd_per_hour=0.0, spot_usd_per_hour=0.0, source="catalog:aws/vms.csv:2",
        observed_at=0.0, parts=(PricePart("aws/vms.csv:2 p3", 0.0, 0.0),),
    )  # fmt: skip
    refusal = check_quote(quote, CapacityType.SPOT, 0.0, 60.0)
    assert isinstance(refusal, Rejection)
    assert "on-demand price 0.0 is zero" in refusal.detail


# 6. validate --check-files reads the catalogs


def test_validate_check_files_refuses_a_file_that_is_not_a_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["validate", "--check-files", str(write_policy(tmp_path, "/etc/passwd"))], capsys
    )
    assert code == 2
    assert "clusters[1].pools[0].price.file: /etc/passwd:1: not a SkyPilot catalog header" in err


def test_validate_check_files_refuses_a_catalog_without_the_pools_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = catalog_row().replace("p3.2xlarge", "p3.8xlarge")
    write_catalog(tmp_path, f"{HEADER}\n{other}\n".encode())
    code, _, err = run(["validate", "--check-files", str(write_policy(tmp_path))], capsys)
    assert code == 2
    catalog = tmp_path / "vms.csv"
    assert f"clusters[1].pools[0].price: {catalog} has no usable price for this pool: " in err
    assert "lists p3.2xlarge in use1-az1" in err
    assert f"clusters[1].pools[1].price: {catalog} has no usable price for this pool: " in err


def test_validate_check_files_passes_a_catalog_with_the_pools_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_catalog(tmp_path, f"{HEADER}\n{catalog_row()}\n".encode())
    code, _, _ = run(["validate", "--check-files", str(write_policy(tmp_path))], capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("price", "spot", "said"),
    [
        ("0", "0.4995", "on-demand price 0.0 is zero"),
        ("3.06", "4.5", "above"),
        ("3.06", "-1", "spot price -1.0 is negative"),
    ],
)
def test_validate_check_files_refuses_a_row_the_daemon_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], price: str, spot: str, said: str
) -> None:
    """The row is there, but its prices would be SKIPPED at run time: the file validated and
    then every pool of it had no price."""
    write_catalog(tmp_path, f"{HEADER}\n{catalog_row(price, spot)}\n".encode())
    code, _, err = run(["validate", "--check-files", str(write_policy(tmp_path))], capsys)
    assert code == 2
    assert "clusters[1].pools[0].price: the daemon would refuse this pool's price: " in err
    assert said in err


def test_a_row_after_a_field_with_a_line_break_is_named_by_its_own_line(tmp_path: Path) -> None:
    """A quoted field may hold a line break (a spreadsheet's cell note): rows after it were
    named one line too early."""
    two_lines = catalog_row(gpu_info="{'Gpus': [],\n 'TotalGpuMemoryInMiB': 16384}")
    bad = catalog_row("0").replace("p3.2xlarge", "p3.8xlarge")
    path = write_catalog(tmp_path, f"{HEADER}\n{two_lines}\n{bad}\n".encode())
    catalog = load_catalog(path)
    assert [(row.instance_type, row.line) for row in catalog.rows] == [
        ("p3.2xlarge", 2),
        ("p3.8xlarge", 4),
    ]
