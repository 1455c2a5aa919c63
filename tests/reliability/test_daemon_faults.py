"""`federator run` as a process under faults: signals, a killed leader, clusters it cannot reach
or may not use, a hostile config on reload (anchors R1, R2, R7, R15; issue 9 "daemon").

Each test runs its own daemon(s) from a copy of `config/sandbox.yaml` (tests/support/configs.py)
with a unique instance, Lease, HTTP port and state namespace, so scenarios never share state
with each other, with the federation tests, or with the demo.
"""

from __future__ import annotations

import base64
import datetime as dt
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from tests.reliability import checks
from tests.support import configs
from tests.support.configs import free_port
from tests.support.daemon import Daemon, daemons, wait_until
from tests.support.faultproxy import FaultProxy, Mode

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(300)]

SIGTERM_EXIT_S = 25.0  # issue 8/9: SIGTERM must end the process within 25 s


def lease_holder(sandbox: SandboxEnv, namespace: str, name: str) -> str | None:
    async def read() -> str | None:
        api = KubeApi.for_site(Layout(sandbox.root), "onprem")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        listed = await api.request("GET", path)
        for lease in listed.get("items", []):
            if lease["metadata"]["name"] == name:
                holder: str | None = lease["spec"].get("holderIdentity")
                return holder
        return None

    return run_sync(read())


def scenario(
    tmp_path: Path,
    namespace_factory: Callable[..., str],
    *,
    name: str,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, str, str]:
    """A policy copy with its own state namespace; returns (config, instance, state ns)."""
    state = namespace_factory("onprem", prefix="relstate")
    watched = namespace_factory("onprem", prefix="reljobs")
    instance = f"rel-{name}-{state[-8:]}"

    def own_state(config: dict[str, Any]) -> None:
        config["state_namespace"] = state
        if edit is not None:
            edit(config)

    path = configs.scenario_config(
        tmp_path, instance=instance, namespaces=[watched], edit=own_state
    )
    return path, instance, state


def ready(daemon: Daemon) -> bool:
    try:
        return daemon.get("/readyz")[0] == 200
    except OSError:  # not serving yet
        return False


def is_leader(daemon: Daemon) -> bool:
    return daemon.metric("federator_is_leader") == 1.0


# ---- signals and leadership --------------------------------------------------------------


def test_sigterm_exits_within_25_s(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R2: a running daemon (every loop started, clusters observed) gets SIGTERM; it exits 0
    within 25 s."""
    config, _, _ = scenario(tmp_path, namespace_factory, name="term")
    with daemons(Daemon(config, tmp_path / "d.log")) as (daemon,):
        wait_until(
            lambda: daemon.metric("federator_cluster_up", cluster="onprem") == 1.0,
            timeout_s=60,
            what="the daemon to observe on-prem",
        )
        daemon.signal(signal.SIGTERM)
        assert daemon.process is not None
        took = checks.wait_exit(daemon.process, within_s=SIGTERM_EXIT_S)
        assert daemon.process.returncode == 0, daemon.log_text()[-2000:]
    print(f"\nSIGTERM -> exit in {took:.1f} s")


def test_sigterm_releases_the_lease(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R2: the leader gets SIGTERM; it hands the Lease back (holder cleared), so a follower
    need not wait for it to expire."""
    config, instance, state = scenario(tmp_path, namespace_factory, name="release")
    lease = f"{instance}-leader"
    with daemons(Daemon(config, tmp_path / "d.log")) as (daemon,):
        wait_until(lambda: is_leader(daemon), timeout_s=30, what="the daemon to lead")
        holder = lease_holder(sandbox, state, lease)
        assert str(holder).endswith(f"-{daemon.pid}"), holder
        daemon.signal(signal.SIGTERM)
        assert daemon.process is not None
        checks.wait_exit(daemon.process, within_s=SIGTERM_EXIT_S)
    assert not lease_holder(sandbox, state, lease), "the lease must be released on SIGTERM"


def test_of_two_replicas_one_leads_and_the_other_takes_over_when_it_is_killed(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R1: two replicas, election on. At every sample at most one says it leads; the Lease
    names it. SIGKILL the leader (no release): the follower takes the Lease once it expires
    (15 s) and leads; never two leaders at a sampled instant."""
    config, instance, state = scenario(tmp_path, namespace_factory, name="pair")
    lease = f"{instance}-leader"
    second_config = tmp_path / "second.yaml"  # the same policy, its own HTTP port
    data = yaml.safe_load(config.read_text())
    data["server"]["port"] = free_port()
    second_config.write_text(yaml.safe_dump(data))
    first, second = Daemon(config, tmp_path / "a.log"), Daemon(second_config, tmp_path / "b.log")
    samples: list[tuple[bool, bool]] = []

    def sample() -> tuple[bool, bool]:
        pair = (is_leader(first), is_leader(second))
        samples.append(pair)
        return pair

    with daemons(first, second):
        wait_until(lambda: any(sample()), timeout_s=30, what="one replica to lead")
        for _ in range(6):  # a few seconds of steady state
            sample()
            time.sleep(0.5)
        leader, follower = (first, second) if samples[-1][0] else (second, first)
        holder = lease_holder(sandbox, state, lease)
        assert str(holder).endswith(f"-{leader.pid}"), holder
        leader.kill()
        killed_at = time.monotonic()
        wait_until(
            lambda: any(sample()) and is_leader(follower),
            timeout_s=60,
            what="the follower to take over",
        )
        took = time.monotonic() - killed_at
        holder = lease_holder(sandbox, state, lease)
        assert str(holder).endswith(f"-{follower.pid}"), holder
    print(f"\nfollower took over {took:.1f} s after the leader's SIGKILL; {len(samples)} samples")
    assert not [s for s in samples if all(s)], "two replicas led at the same sampled instant"


def onprem_through(proxy: FaultProxy, sandbox: SandboxEnv, path: Path) -> Path:
    """The sandbox kubeconfig with the on-prem apiserver reached through `proxy` (TLS passes
    through the TCP proxy untouched; the certificate names 127.0.0.1, whatever the port)."""
    kubeconfig = yaml.safe_load(sandbox.kubeconfig.read_text())
    for cluster in kubeconfig["clusters"]:
        if cluster["name"] == "onprem":
            cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def test_a_leader_cut_off_from_onprem_stops_writing_before_another_replica_leads(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """Issue 9: the leader stays alive but loses the on-prem apiserver (a proxy black-holes its
    connections: requests hang, as in a network partition). Its write fence closes within the
    renew deadline (10 s), before the follower may take the Lease (15 s after the last renewal);
    at no sampled instant may both act. The cut-off replica lives on as a follower."""
    with FaultProxy(upstream=("127.0.0.1", 16443)) as proxy:
        cut_kubeconfig = onprem_through(proxy, sandbox, tmp_path / "cut.kubeconfig")

        def through_the_proxy(config: dict[str, Any]) -> None:
            for cluster in config["clusters"]:
                if cluster["role"] == "onprem":
                    cluster["connection"]["kubeconfig"] = str(cut_kubeconfig)

        config, _, _ = scenario(tmp_path, namespace_factory, name="cut", edit=through_the_proxy)
        data = yaml.safe_load(config.read_text())
        data["server"]["port"] = free_port()
        for cluster in data["clusters"]:  # the follower reaches on-prem directly
            if cluster["role"] == "onprem":
                cluster["connection"]["kubeconfig"] = str(sandbox.kubeconfig)
        second_config = tmp_path / "direct.yaml"
        second_config.write_text(yaml.safe_dump(data))
        cut, direct = (
            Daemon(config, tmp_path / "cut.log"),
            Daemon(second_config, tmp_path / "b.log"),
        )
        samples: list[tuple[float, bool, bool]] = []

        def sample() -> tuple[bool, bool]:
            pair = (is_leader(cut), is_leader(direct))
            samples.append((time.monotonic(), *pair))
            return pair

        with daemons(cut):
            wait_until(lambda: is_leader(cut), timeout_s=30, what="the first replica to lead")
            with daemons(direct):
                wait_until(
                    lambda: ready(direct),
                    timeout_s=60,
                    what="the second replica to observe as a follower",
                )
                assert sample() == (True, False)
                proxy.set_mode(Mode.BLACKHOLE)
                cut_at = time.monotonic()
                wait_until(
                    lambda: sample()[1], timeout_s=60, interval_s=0.2, what="the follower to lead"
                )
                for _ in range(10):  # and it stays that way
                    sample()
                    time.sleep(0.2)
                assert cut.alive(), cut.log_text()[-2000:]
                cut_events = [e.get("event") for e in cut.log_events()]
    fenced_at = min(t for t, first, _ in samples if t >= cut_at and not first)
    led_at = min(t for t, _, second in samples if second)
    print(
        f"\ncut-off leader fenced {fenced_at - cut_at:.1f} s after the cut; "
        f"follower led {led_at - cut_at:.1f} s after; {len(samples)} samples"
    )
    assert not [s for s in samples if s[1] and s[2]], "two replicas acted at a sampled instant"
    assert fenced_at < led_at
    assert "write_fence_closed" in cut_events or "leadership_lost" in cut_events, cut_events


# ---- clusters it cannot reach or may not use ---------------------------------------------


def _expired_client_cert(sandbox: SandboxEnv) -> tuple[str, str]:
    """A client certificate signed by the sandbox CA for system:masters, expired yesterday."""
    pki = sandbox.root / "pki"
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key: Any = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "expired-admin"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encode = base64.b64encode
    return encode(cert.public_bytes(serialization.Encoding.PEM)).decode(), encode(key_pem).decode()


def broken_kubeconfig(sandbox: SandboxEnv, path: Path) -> Path:
    """The sandbox kubeconfig with cloud-b pointing at a closed port and cloud-a's user
    carrying an expired client certificate."""
    kubeconfig = yaml.safe_load(sandbox.kubeconfig.read_text())
    for cluster in kubeconfig["clusters"]:
        if cluster["name"] == "cloud-b":
            cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    cert, key = _expired_client_cert(sandbox)
    for user in kubeconfig["users"]:
        if user["name"] == "cloud-a-admin":
            user["user"]["client-certificate-data"] = cert
            user["user"]["client-key-data"] = key
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def test_unreachable_and_expired_cloud_credentials_mark_clusters_down_and_the_daemon_lives(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    """R7: cloud-b's kubeconfig points nowhere and cloud-a's carries an expired certificate.
    The daemon keeps running and serving, on-prem stays up, both clouds are reported down
    (metric and a log line with the reason)."""
    kubeconfig = broken_kubeconfig(sandbox, tmp_path / "kubeconfig")

    def use_broken_clouds(config: dict[str, Any]) -> None:
        for cluster in config["clusters"]:
            if cluster["role"] == "cloud":
                cluster["connection"]["kubeconfig"] = str(kubeconfig)

    config, _, _ = scenario(tmp_path, namespace_factory, name="kube", edit=use_broken_clouds)
    with daemons(Daemon(config, tmp_path / "d.log")) as (daemon,):
        wait_until(
            lambda: (
                daemon.metric("federator_cluster_up", cluster="cloud-a") == 0.0
                and daemon.metric("federator_cluster_up", cluster="cloud-b") == 0.0
                and daemon.metric("federator_cluster_up", cluster="onprem") == 1.0
            ),
            timeout_s=60,
            what="both clouds down and on-prem up",
        )
        for _ in range(3):  # it stays alive and answers while the clouds stay broken
            assert daemon.alive(), daemon.log_text()[-2000:]
            assert daemon.get("/healthz")[0] == 200
            time.sleep(1.0)
        down = {
            e.get("cluster"): str(e.get("reason"))
            for e in daemon.log_events()
            if e.get("event") == "cluster_down"
        }
    print(f"\ncluster_down reasons: {down}")
    assert "401" in down["cloud-a"], down  # the reason says the credentials were refused
    assert "127.0.0.1" in down["cloud-b"], down  # and where it could not connect


def test_an_unreachable_onprem_cluster_is_a_clear_error_for_a_single_pass(tmp_path: Path) -> None:
    """`federator run --once` against an on-prem kubeconfig that points nowhere: exit 2 at once
    with a message naming the cluster and its server, no traceback (the probe before the cache
    wait, `commands.reachability.stop_unless_onprem_answers`, gives up after 3 refused tries)."""
    kubeconfig = tmp_path / "nowhere"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "x", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "onprem", "context": {"cluster": "x", "user": "u"}}],
            }
        )
    )

    def onprem_nowhere(config: dict[str, Any]) -> None:
        for cluster in config["clusters"]:
            if cluster["role"] == "onprem":
                cluster["connection"]["kubeconfig"] = str(kubeconfig)

    config = configs.scenario_config(
        tmp_path, instance="rel-nowhere", namespaces=["x"], edit=onprem_nowhere
    )
    daemon = Daemon(config, tmp_path / "d.log", "--once")
    with daemons(daemon):
        assert daemon.process is not None
        checks.wait_exit(daemon.process, within_s=120)
    output = daemon.log_text()
    print(f"\n{output[-600:]}")
    assert daemon.process.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert "cluster onprem" in last, last
    assert "refused the connection 3 times over 5 s" in last, last
    assert "127.0.0.1" in last, "the error itself says where on-prem did not answer"
    assert "not-a-real-token" not in output
