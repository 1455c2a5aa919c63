"""A store behind a private CA: both client paths (boto3 and the lean GET/PUT path) verify with
the store's `ca_bundle`, and a certificate that does not verify is a setting to fix, reported
naming the store, never retried like a fault.

The server is a stdlib HTTPS server on 127.0.0.1 answering every request 404 (enough to see
the TLS handshake succeed or fail); the live S3 store over HTTPS is
tests/reliability/test_store_tls.py.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.exceptions import SSLError as BotoSSLError

from federator.errors import UserError
from federator.policy import load_policy
from federator.storage import retrying
from federator.storage.endpoints import Endpoint, make_client, tls_verification
from federator.storage.leanpath import LeanS3
from federator.storage.stores import Stores
from tests.support import configs
from tests.support.s3server import ServerTls
from tests.support.tlsfiles import make_ca_and_server_cert


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>"
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServerTls]]:
    files = make_ca_and_server_cert(tmp_path_factory.mktemp("pki"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


def endpoint(url: str, **tls: object) -> Endpoint:
    return Endpoint("cloud-a", url, access_key_id="AKIAEXAMPLE", secret_access_key="s" * 40,
                    connect_timeout_s=2, read_timeout_s=2, **tls)  # type: ignore[arg-type]  # fmt: skip


def test_boto3_verifies_with_the_bundle(tls_server: tuple[str, ServerTls]) -> None:
    url, files = tls_server
    with pytest.raises(ClientError) as answered:  # the handshake passed: the server answered
        make_client(endpoint(url, ca_bundle=str(files.ca_bundle))).head_object(Bucket="b", Key="k")
    assert retrying.is_not_found(answered.value)


def test_boto3_refuses_an_unknown_ca_as_a_certificate_failure_not_a_fault(
    tls_server: tuple[str, ServerTls],
) -> None:
    url, _ = tls_server
    with pytest.raises(BotoSSLError) as refused:
        make_client(endpoint(url)).head_object(Bucket="b", Key="k")
    assert retrying.is_certificate_failure(refused.value)
    assert not retrying.is_transient(refused.value)


def test_the_lean_path_verifies_with_the_bundle_and_fails_like_boto3_without(
    tls_server: tuple[str, ServerTls],
) -> None:
    url, files = tls_server
    trusted = LeanS3(endpoint(url, ca_bundle=str(files.ca_bundle)), pool_size=1)
    with pytest.raises(ClientError) as answered:
        trusted.get("b", "k", if_match="*", byte_range=None)
    assert retrying.is_not_found(answered.value)
    with pytest.raises(BotoSSLError) as refused:
        LeanS3(endpoint(url), pool_size=1).get("b", "k", if_match="*", byte_range=None)
    assert retrying.is_certificate_failure(refused.value)
    assert not retrying.is_transient(refused.value)


# urllib3 warns on every unverified request; here that is the point, and federator logs
# `verify_tls: false` loudly itself (tests/reliability/test_tls.py).
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_off_ignores_the_ca(tls_server: tuple[str, ServerTls]) -> None:
    url, _ = tls_server
    assert tls_verification(endpoint(url, verify_tls=False)) is False
    with pytest.raises(ClientError):
        LeanS3(endpoint(url, verify_tls=False), pool_size=1).get(
            "b", "k", if_match="*", byte_range=None
        )


def test_a_connection_refused_stays_a_fault_to_retry() -> None:
    error = EndpointConnectionError(endpoint_url="https://127.0.0.1:1")
    assert not retrying.is_certificate_failure(error)
    assert retrying.is_transient(error)


def sandbox_policy_with(tmp_path: Path, **store: object) -> Path:
    def edit(config: dict[str, Any]) -> None:
        configs.use_own_keys(config, tmp_path)
        for cluster in config["clusters"]:
            if cluster["name"] == "cloud-a":
                cluster["object_store"].update(store)

    return configs.scenario_config(tmp_path, instance="tls-unit", namespaces=["t"], edit=edit)


def test_stores_name_the_store_and_the_setting_when_the_certificate_does_not_verify(
    tls_server: tuple[str, ServerTls], tmp_path: Path
) -> None:
    url, _ = tls_server
    stores = Stores(load_policy(sandbox_policy_with(tmp_path, endpoint=url)))
    with pytest.raises(UserError) as explained, stores.certificate_failures_explained():
        stores.client("cloud-a").head_object(Bucket="b", Key="k")
    message = str(explained.value)
    assert message.startswith(f"clusters.cloud-a.object_store: the TLS certificate of {url} ")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "ca_bundle" in message


def test_stores_refuse_a_ca_bundle_they_cannot_read_naming_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    stores = Stores(load_policy(sandbox_policy_with(tmp_path, ca_bundle=str(missing))))
    with pytest.raises(UserError, match=r"clusters\.cloud-a\.object_store\.ca_bundle: cannot read"):
        stores.endpoint("cloud-a")
