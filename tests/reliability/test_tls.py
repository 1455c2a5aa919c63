"""TLS is verified by default for every cluster; turning it off must be explicit and loud.

One daemon runs with three cluster settings at once: cloud-b's kubeconfig carries a CA that did
not sign its apiserver (verification on by default must refuse it), cloud-a's kubeconfig says
`insecure-skip-tls-verify: true`, and cloud-b's object store has `verify_tls: false` in the
policy (the only switch the policy file offers). Both switches must be logged as a warning
naming the cluster. The sandbox's S3 stores speak plain HTTP, so certificate checks on stores
are exercised against a live TLS store of its own in test_store_tls.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federator.sandbox import SandboxEnv
from tests.support import configs
from tests.support.daemon import Daemon, daemons, wait_until

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(300)]


def foreign_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-sandbox-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.fixture(scope="module")
def tls_daemon(sandbox: SandboxEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("tls")
    kubeconfig = yaml.safe_load(sandbox.kubeconfig.read_text())
    for cluster in kubeconfig["clusters"]:
        if cluster["name"] == "cloud-a":
            cluster["cluster"].pop("certificate-authority-data", None)
            cluster["cluster"]["insecure-skip-tls-verify"] = True
        if cluster["name"] == "cloud-b":
            cluster["cluster"]["certificate-authority-data"] = foreign_ca()
    (tmp / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))

    def tls_settings(config: dict[str, Any]) -> None:
        config["leader_election"]["enabled"] = False
        for cluster in config["clusters"]:
            if cluster["role"] == "cloud":
                cluster["connection"]["kubeconfig"] = str(tmp / "kubeconfig")
            if cluster["name"] == "cloud-b":
                cluster["object_store"]["verify_tls"] = False

    config = configs.scenario_config(
        tmp, instance=f"rel-tls-{uuid.uuid4().hex[:6]}", namespaces=["rel-tls"], edit=tls_settings
    )
    with daemons(Daemon(config, tmp / "d.log")) as (daemon,):
        wait_until(
            lambda: (
                daemon.metric("federator_cluster_up", cluster="cloud-a") is not None
                and daemon.metric("federator_cluster_up", cluster="cloud-b") is not None
            ),
            timeout_s=60,
            what="both clouds to be tried",
        )
        yield daemon


def warnings_about(daemon: Daemon, cluster: str) -> list[dict[str, Any]]:
    return [
        e
        for e in daemon.log_events()
        if e.get("level") in ("warning", "error", "critical")
        and cluster in str(e)
        and any(word in str(e).lower() for word in ("tls", "verify", "insecure", "certificate"))
    ]


def test_a_cluster_whose_certificate_does_not_verify_is_refused_by_default(
    tls_daemon: Daemon,
) -> None:
    wait_until(
        lambda: any(
            e.get("event") == "cluster_down" for e in warnings_about(tls_daemon, "cloud-b")
        ),
        timeout_s=30,
        what="cloud-b marked down for its certificate",
    )
    assert tls_daemon.metric("federator_cluster_up", cluster="cloud-b") == 0.0
    assert tls_daemon.alive()


def test_a_kubeconfig_that_skips_tls_verification_is_logged_loudly(tls_daemon: Daemon) -> None:
    assert warnings_about(tls_daemon, "cloud-a"), "no warning that cloud-a's TLS is not verified"


def test_a_store_with_tls_verification_off_is_logged_loudly(tls_daemon: Daemon) -> None:
    events = [e for e in warnings_about(tls_daemon, "cloud-b") if e.get("event") != "cluster_down"]
    assert events, "no warning that cloud-b's store TLS is not verified"
