"""`federator prices` as a user runs it: a subprocess, real files, AWS answered by moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.motoserver import moto_server

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "config"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def absolute_paths(node: Any) -> Any:
    """The sandbox config with its relative paths made absolute, so it can live in tmp_path."""
    if isinstance(node, dict):
        return {
            k: str((CONFIG_DIR / v).resolve())
            if k in {"kubeconfig", "file", "interruption_data"} and isinstance(v, str)
            else absolute_paths(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [absolute_paths(item) for item in node]
    return node


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    document = absolute_paths(yaml.safe_load((CONFIG_DIR / "sandbox.yaml").read_text()))
    document["clusters"][1]["pools"][0]["price"] = {
        "source": "aws-spot-api",
        "instance_type": "p4d.24xlarge",
        "region": "us-east-1",
        "placement_scores": False,  # moto does not implement GetSpotPlacementScores
    }
    document["clusters"][2]["pools"][0]["price"]["zone"] = "us-central1-z"  # no data there
    path = tmp_path / "federator.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def federator(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_EC2_METADATA_DISABLED": "true", "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "federator", "prices", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def test_json_rows_for_every_pool_with_live_aws_prices(
    config_file: Path, moto_endpoint: str
) -> None:
    result = federator("--config", str(config_file), "--aws-endpoint", moto_endpoint, "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["pool"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["cloud-a/a100-ondemand", "cloud-a/a100-spot",
                            "cloud-b/h100-ondemand", "cloud-b/h100-spot"]  # fmt: skip
    live = rows["cloud-a/a100-spot"]
    assert live["offered"] is True
    assert live["source"] == "aws:describe_spot_price_history"
    assert live["spot_usd_per_gpu_hour"] == pytest.approx(0.00001 / 8)  # moto's fixed price
    assert live["price_age_s"] < 60
    catalog = rows["cloud-a/a100-ondemand"]
    assert catalog["on_demand_usd_per_gpu_hour"] == pytest.approx(21.957642 / 8)
    assert catalog["source"] == "catalog:aws/vms.csv:133"
    skipped = rows["cloud-b/h100-spot"]
    assert skipped["offered"] is False
    assert skipped["refused_reason"] == "no_zone_data"
    assert "us-central1-z" in skipped["refused_detail"]


def test_the_table_names_every_column_and_the_skipped_pool(
    config_file: Path, moto_endpoint: str
) -> None:
    result = federator("--config", str(config_file), "--aws-endpoint", moto_endpoint)
    assert result.returncode == 0, result.stderr
    for heading in ("pool", "GPU", "spot", "on-demand", "age", "source", "preempt/h", "score"):
        assert heading in result.stdout
    assert "SKIPPED no_zone_data" in result.stdout
    assert "3 of 4 pools offered." in result.stdout


def test_offline_skips_aws_pools_and_says_so(config_file: Path) -> None:
    result = federator("--config", str(config_file), "--offline", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["pool"]: row for row in json.loads(result.stdout)}
    assert rows["cloud-a/a100-spot"]["offered"] is False
    assert rows["cloud-a/a100-spot"]["refused_reason"] == "not_fetched"
    assert "switched off" in rows["cloud-a/a100-spot"]["refused_detail"]


def test_a_broken_config_is_exit_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: 3\n", encoding="utf-8")
    result = federator("--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.yaml:1:" in result.stderr
