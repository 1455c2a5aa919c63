"""`object_store.ca_bundle`: a store's private CA, relative to the policy file, checked by
`--check-files`, refused beside `verify_tls: false` (it would silently do nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.policy import PolicyFileError, load_policy, store_access
from tests.unit.policy.helpers import edited

STORE = "    object_store: {credentials: {env: {access_key_id: K, secret_access_key: S}}, %s}\n"


def write(tmp_path: Path, store_fields: str) -> Path:
    text = edited(("    region: us-east-1", "    region: us-east-1\n" + STORE % store_fields))
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_relative_bundle_is_taken_relative_to_the_policy_file(tmp_path: Path) -> None:
    config = load_policy(write(tmp_path, "ca_bundle: pki/store-ca.pem"))
    store = config.cluster("cloud-a").object_store
    assert store is not None
    assert store.ca_bundle == tmp_path / "pki" / "store-ca.pem"
    access = store_access(config, "cloud-a", environ={"K": "key-id", "S": "secret"})
    assert access.ca_bundle == tmp_path / "pki" / "store-ca.pem"
    assert access.verify_tls


def test_no_bundle_means_the_system_cas(tmp_path: Path) -> None:
    config = load_policy(write(tmp_path, "verify_tls: true"))
    assert store_access(config, "cloud-a", environ={"K": "k", "S": "s"}).ca_bundle is None


def test_a_bundle_beside_verification_off_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(write(tmp_path, "ca_bundle: ca.pem, verify_tls: false"))
    [error] = caught.value.errors
    assert error.field_path == "clusters[1].object_store"
    assert error.line == 8
    assert "verify_tls is false" in error.message


def test_check_files_reports_a_missing_bundle(tmp_path: Path) -> None:
    path = write(tmp_path, "ca_bundle: missing-ca.pem")
    load_policy(path)  # without the flag nothing is looked up
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path, check_files=True)
    problems = {e.field_path: e.message for e in caught.value.errors}
    assert problems["clusters[1].object_store.ca_bundle"].endswith("missing-ca.pem does not exist")
