"""Where a dataset or a model staging area lives on each cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.errors import UserError
from federator.policy import dataset_uri, load_policy, staging_uri

REPO = Path(__file__).resolve().parents[3]
SANDBOX = load_policy(REPO / "config" / "sandbox.yaml")


@pytest.mark.parametrize(
    ("dataset", "cluster", "uri"),
    [
        ("imagenet-mini", "onprem", "s3://onprem-datasets/imagenet-mini/"),
        ("imagenet-mini", "cloud-a", "s3://cloud-a-datasets/imagenet-mini/"),
        ("imagenet-mini", "cloud-b", "s3://cloud-b-datasets/imagenet-mini/"),
        ("wikitext", "cloud-a", "s3://cloud-a-datasets/text/wikitext/"),  # explicit replica
        ("patient-scans", "onprem", "s3://onprem-datasets/patient-scans/"),
    ],
)
def test_dataset_locations(dataset: str, cluster: str, uri: str) -> None:
    assert dataset_uri(SANDBOX, dataset, cluster) == uri


def test_a_resident_dataset_has_no_cloud_location() -> None:
    with pytest.raises(UserError, match="must stay on-prem"):
        dataset_uri(SANDBOX, "patient-scans", "cloud-a")


def test_an_unknown_dataset_is_named() -> None:
    with pytest.raises(UserError, match="'nope'"):
        dataset_uri(SANDBOX, "nope", "cloud-a")


def test_staging_locations() -> None:
    assert staging_uri(SANDBOX, "cloud-b") == "s3://cloud-b-models/staging/"
