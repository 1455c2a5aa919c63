"""Locations federator writes to must not nest on one bucket: a sync counts everything under
its location as its own and deletes what its source lacks, so a replica inside another
dataset's replica (or a staging area) would be deleted by the other's sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.errors import UserError
from federator.policy import LocatedError, PolicyFileError, dataset_uri, parse_policy

REPO = Path(__file__).resolve().parents[3]
SANDBOX = (REPO / "config" / "sandbox.yaml").read_text()
PATIENT_SCANS = "  - name: patient-scans\n"


def with_datasets(entries: str, *, text: str = SANDBOX) -> str:
    """The sandbox file with dataset entries added before `patient-scans` (datasets[2])."""
    assert text.count(PATIENT_SCANS) == 1
    return text.replace(PATIENT_SCANS, entries + PATIENT_SCANS)


def errors_of(text: str) -> list[LocatedError]:
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, "sandbox.yaml")
    assert isinstance(raised.value, UserError)
    return list(raised.value.errors)


def test_a_dataset_whose_replica_contains_another_datasets_replica_is_refused() -> None:
    # wikitext's replica on cloud-a is s3://cloud-a-datasets/text/wikitext/; `text` would get
    # s3://cloud-a-datasets/text/ from cloud-a's datasets_uri, and its sync would delete it.
    text = with_datasets("  - name: text\n    source: s3://onprem-datasets/text/\n")
    [error] = errors_of(text)
    assert error.field_path == "datasets[2].replicas.cloud-a"
    assert error.line == text.splitlines().index("  - name: text") + 1
    assert "dataset 'text'" in error.message
    assert "s3://cloud-a-datasets/text/ (clusters[1].object_store.datasets_uri" in error.message
    assert "contains the replica of dataset 'wikitext' on cloud-a" in error.message
    assert "(datasets[1].replicas.cloud-a)" in error.message


def test_a_replica_inside_another_datasets_replica_is_refused_at_its_own_line() -> None:
    entry = (
        "  - name: wiki-de\n"
        "    source: s3://onprem-datasets/wiki-de/\n"
        "    replicas:\n"
        "      cloud-a: s3://cloud-a-datasets/text/wikitext/de\n"  # no trailing slash
    )
    text = with_datasets(entry)
    [error] = errors_of(text)
    assert error.field_path == "datasets[2].replicas.cloud-a"
    assert (
        error.line
        == text.splitlines().index("      cloud-a: s3://cloud-a-datasets/text/wikitext/de") + 1
    )
    assert "lies inside the replica of dataset 'wikitext'" in error.message


def test_two_datasets_with_one_replica_location_are_refused() -> None:
    entry = (
        "  - name: wiki-copy\n"
        "    source: s3://onprem-datasets/wiki-copy/\n"
        "    replicas:\n"
        "      cloud-a: s3://cloud-a-datasets/text/wikitext/\n"
    )
    [error] = errors_of(with_datasets(entry))
    assert "is the same location as the replica of dataset 'wikitext'" in error.message


def test_a_staging_area_over_a_dataset_replica_is_refused() -> None:
    text = SANDBOX.replace(
        "    cloud-a: s3://cloud-a-models/staging/", "    cloud-a: s3://cloud-a-datasets/"
    )
    [error] = errors_of(text)
    assert error.field_path == "registry.staging.cloud-a"
    assert "the model staging area of cloud-a, s3://cloud-a-datasets/" in error.message
    assert "contains the replica of dataset 'imagenet-mini' on cloud-a" in error.message


@pytest.mark.parametrize(
    "entry",
    [
        # a sibling whose name starts with the other's: wikitext-extra/ is not inside wikitext/
        "  - name: wiki\n    source: s3://onprem-datasets/wiki/\n    replicas:\n"
        "      cloud-a: s3://cloud-a-datasets/text/wikitext-extra/\n",
        # the same bucket name on another cluster's store is another bucket
        "  - name: text\n    source: s3://onprem-datasets/text/\n    replicas:\n"
        "      cloud-a: s3://cloud-a-datasets/texts/\n"
        "      cloud-b: s3://cloud-a-datasets/text/\n",
    ],
    ids=["sibling-prefix", "other-store"],
)
def test_locations_that_do_not_nest_are_accepted(entry: str) -> None:
    assert len(parse_policy(with_datasets(entry), "sandbox.yaml").datasets) == 4


def test_a_resident_dataset_is_never_replicated_so_its_name_nests_nothing() -> None:
    text = with_datasets("  - name: text\n    source: s3://onprem-datasets/text/\n")
    text = text.replace("residency:\n", "residency:\n  - dataset: text\n    reason: home\n")
    assert len(parse_policy(text, "sandbox.yaml").datasets) == 4


def test_the_check_sees_the_locations_the_copy_engine_uses() -> None:
    config = parse_policy(SANDBOX, "sandbox.yaml")
    assert dataset_uri(config, "wikitext", "cloud-a") == "s3://cloud-a-datasets/text/wikitext/"
    assert dataset_uri(config, "imagenet-mini", "cloud-a") == "s3://cloud-a-datasets/imagenet-mini/"
