"""Secrets are refused wherever they appear; references to them are not."""

from __future__ import annotations

import pytest

from federator.policy.secrets import HOW_TO_REFERENCE, find_inline_secrets

SECRET_SHAPED = {
    "an AWS access key ID": {"note": "AKIAIOSFODNN7EXAMPLE"},
    "a temporary AWS key ID": {"note": "key ASIAABCDEFGHIJKLMNOP in text"},
    "an AWS secret key": {"x": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
    "a private key": {"x": "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."},
    "a password in a URL": {"endpoint": "https://admin:hunter2@s3.example.com"},
    "a secret-named field": {"object_store": {"secret_access_key": "abc"}},
    "a password field deep in a list": {"a": [{"b": {"password": "x"}}]},
    "a numeric token": {"token": 123456},
}


@pytest.mark.parametrize("data", SECRET_SHAPED.values(), ids=SECRET_SHAPED.keys())
def test_secret_shaped_values_are_found(data: object) -> None:
    found = list(find_inline_secrets(data))
    assert len(found) == 1
    assert HOW_TO_REFERENCE in found[0].message


NOT_SECRETS = {
    "environment variable names": {
        "credentials": {"env": {"access_key_id": "S3_KEY", "secret_access_key": "S3_SECRET"}}
    },
    "a secret reference": {"kubernetes_secret": {"name": "s3", "secret_access_key_key": "k"}},
    "an empty password": {"password": ""},
    "a boolean token flag": {"token": True},
    "an endpoint without a password": {"endpoint": "https://s3.example.com:9000/path"},
    "a long ordinary path": {"file": "../../shared/data/catalog/aws/vms.csv"},
    "an S3 URI": {"source": "s3://onprem-datasets/imagenet-mini/"},
}


@pytest.mark.parametrize("data", NOT_SECRETS.values(), ids=NOT_SECRETS.keys())
def test_references_and_ordinary_values_are_not_secrets(data: object) -> None:
    assert list(find_inline_secrets(data)) == []


def test_a_secret_is_located_by_its_path() -> None:
    data = {"clusters": [{"object_store": {"password": "x"}}]}
    assert [s.path for s in find_inline_secrets(data)] == [
        ("clusters", 0, "object_store", "password")
    ]
