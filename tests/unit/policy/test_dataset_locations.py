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


# A dataset's source is read, not written, but a location federator writes must not overlap it
# either: when a cloud's store is the on-prem store (one S3 for both, or a slip), a replica
# inside its source makes each sync copy its own output again, and a replica holding a source
# counts the source's objects as its own (its deletes would remove them).
ONPREM_ENDPOINT = "      endpoint: http://127.0.0.1:18310 # SeaweedFS\n"
CLOUD_A_ENDPOINT = "      endpoint: http://127.0.0.1:18320 # SeaweedFS\n"
WIKITEXT_REPLICA = "      cloud-a: s3://cloud-a-datasets/text/wikitext/\n"


def on_one_store(
    *, onprem: str = "http://127.0.0.1:18310", cloud_a: str = "http://127.0.0.1:18310"
) -> str:
    """The sandbox file with cloud-a's object store at `cloud_a`, the on-prem one at `onprem`
    (by default both the on-prem store)."""
    assert SANDBOX.count(ONPREM_ENDPOINT) == 1
    assert SANDBOX.count(CLOUD_A_ENDPOINT) == 1
    text = SANDBOX.replace(ONPREM_ENDPOINT, f"      endpoint: {onprem}\n")
    return text.replace(CLOUD_A_ENDPOINT, f"      endpoint: {cloud_a}\n")


def with_wikitext_replica(uri: str, text: str) -> str:
    assert text.count(WIKITEXT_REPLICA) == 1
    return text.replace(WIKITEXT_REPLICA, f"      cloud-a: {uri}\n")


def test_one_store_for_onprem_and_a_cloud_is_accepted_while_the_locations_do_not_overlap() -> None:
    config = parse_policy(on_one_store(), "sandbox.yaml")
    assert dataset_uri(config, "wikitext", "cloud-a") == "s3://cloud-a-datasets/text/wikitext/"


def test_a_replica_inside_its_own_source_is_refused_naming_both_fields() -> None:
    replica = "s3://onprem-datasets/wikitext/replica/"
    text = with_wikitext_replica(replica, on_one_store())
    [error] = errors_of(text)
    assert error.field_path == "datasets[1].replicas.cloud-a"
    assert error.line == text.splitlines().index(f"      cloud-a: {replica}") + 1
    assert error.message.startswith(
        f"the replica of dataset 'wikitext' on cloud-a, {replica} (datasets[1].replicas.cloud-a) "
        "lies inside the source of dataset 'wikitext', s3://onprem-datasets/wikitext/ "
        "(datasets[1].source) on the same store and bucket;"
    )
    assert "each sync would copy its own output again" in error.message


def test_a_replica_holding_a_source_is_refused() -> None:
    [error] = errors_of(with_wikitext_replica("s3://onprem-datasets/", on_one_store()))
    assert error.field_path == "datasets[1].replicas.cloud-a"
    assert (
        "contains the source of dataset 'imagenet-mini', s3://onprem-datasets/imagenet-mini/ "
        "(datasets[0].source)"
    ) in error.message
    assert "its deletes would remove the source's objects" in error.message


def test_another_datasets_replica_inside_a_source_is_refused() -> None:
    text = with_wikitext_replica("s3://onprem-datasets/imagenet-mini/wikitext/", on_one_store())
    [error] = errors_of(text)
    assert error.field_path == "datasets[1].replicas.cloud-a"
    assert "lies inside the source of dataset 'imagenet-mini'" in error.message
    assert "(datasets[0].source)" in error.message


def test_a_replica_derived_from_datasets_uri_at_the_sources_is_refused() -> None:
    text = on_one_store().replace(
        "      datasets_uri: s3://cloud-a-datasets/", "      datasets_uri: s3://onprem-datasets/"
    )
    [error] = errors_of(text)
    assert error.field_path == "datasets[0].replicas.cloud-a"
    assert error.message.startswith(
        "the replica of dataset 'imagenet-mini' on cloud-a, s3://onprem-datasets/imagenet-mini/ "
        "(clusters[1].object_store.datasets_uri + the dataset's name) is the same location as "
        "the source of dataset 'imagenet-mini', s3://onprem-datasets/imagenet-mini/ "
        "(datasets[0].source)"
    )


def test_a_staging_area_inside_a_source_is_refused() -> None:
    text = on_one_store().replace(
        "    cloud-a: s3://cloud-a-models/staging/", "    cloud-a: s3://onprem-datasets/wikitext/s/"
    )
    [error] = errors_of(text)
    assert error.field_path == "registry.staging.cloud-a"
    assert "lies inside the source of dataset 'wikitext'" in error.message


@pytest.mark.parametrize(
    ("onprem", "cloud_a"),
    [
        ("http://127.0.0.1:18310", "http://127.0.0.1:18310/"),
        ("https://store.example.com", "https://STORE.Example.com:443"),
        ("http://store.example.com:80/", "http://Store.Example.COM"),
        ("https://store.example.com/s3", "https://store.example.com:443/s3/"),
    ],
)
def test_one_store_written_as_two_urls_is_one_store(onprem: str, cloud_a: str) -> None:
    text = on_one_store(onprem=onprem, cloud_a=cloud_a)
    [error] = errors_of(with_wikitext_replica("s3://onprem-datasets/wikitext/r/", text))
    assert error.field_path == "datasets[1].replicas.cloud-a"


@pytest.mark.parametrize(
    ("onprem", "cloud_a"),
    [
        ("http://localhost:18310", "http://127.0.0.1:18310"),  # no DNS: two names, two stores
        ("https://store.example.com", "http://store.example.com"),
        ("http://store.example.com", "http://store.example.com:443"),
        ("https://store.example.com:8443", "https://store.example.com"),
        ("https://store.example.com/a", "https://store.example.com/b"),
    ],
)
def test_endpoints_that_differ_in_more_than_spelling_are_two_stores(
    onprem: str, cloud_a: str
) -> None:
    text = on_one_store(onprem=onprem, cloud_a=cloud_a)
    parse_policy(with_wikitext_replica("s3://onprem-datasets/wikitext/r/", text), "sandbox.yaml")


def test_two_replicas_on_one_store_written_with_its_default_port_are_refused() -> None:
    cloud_b_endpoint = "      endpoint: http://127.0.0.1:18330"
    assert SANDBOX.count(cloud_b_endpoint) == 1
    text = SANDBOX.replace(CLOUD_A_ENDPOINT, "      endpoint: https://s3.example.com\n")
    text = text.replace(cloud_b_endpoint, "      endpoint: https://S3.example.com:443/")
    entry = (
        "  - name: text\n    source: s3://onprem-datasets/text/\n    replicas:\n"
        "      cloud-a: s3://cloud-a-datasets/texts/\n"
        "      cloud-b: s3://cloud-a-datasets/text/\n"
    )
    [error] = errors_of(with_datasets(entry, text=text))
    assert error.field_path == "datasets[2].replicas.cloud-b"
    assert "contains the replica of dataset 'wikitext' on cloud-a" in error.message


def test_a_source_holding_the_registry_is_refused_on_any_store() -> None:
    text = SANDBOX.replace(
        "    source: s3://onprem-datasets/patient-scans/", "    source: s3://onprem-models/"
    )
    [error] = errors_of(text)
    assert error.field_path == "registry.uri"
    assert "lies inside the source of dataset 'patient-scans'" in error.message
    assert "(datasets[2].source)" in error.message
