"""The three Kubernetes clusters: etcd, kube-apiserver, controller-manager, scheduler, KWOK.

Each site gets its own etcd, so the clusters share nothing but the CA. Per site the order is
etcd -> apiserver -> (controller-manager, scheduler, KWOK) -> fake GPU nodes Ready; the sites
go concurrently, except that apiservers start one at a time (on two cores, three starting
apiservers starve each other into timeouts). Flags follow envtest and kwokctl's binary
runtime; the choices that matter are commented where they are made.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from federator.sandbox import kwok, pools
from federator.sandbox.binaries import program
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import KUEUE_SITE, PORTS, SITES, Layout
from federator.sandbox.pki import FRONT_PROXY_CLIENT, Pki
from federator.sandbox.probes import Probe, client_ssl, http_probe
from federator.sandbox.supervisor import ProcessSpec

if TYPE_CHECKING:
    from federator.sandbox.orchestrator import Component, Report, Sandbox

NODE_READY_TIMEOUT_S = 60.0
# Controllers the sandbox needs: Jobs -> Pods, their completion and clean-up, namespace
# deletion. Node lifecycle is left out on purpose: KWOK keeps leases fresh, and without it
# nothing taints or evicts fake nodes behind a test's back.
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
)


class Clusters:
    """The per-site Kubernetes components and how to bring them up."""

    def __init__(self, layout: Layout, report: Report) -> None:
        self.layout = layout
        self.report = report
        self.pki = Pki(layout.pki)

    # ---- components ------------------------------------------------------------------------

    def components(self) -> list[Component]:
        found: list[Component] = []
        for site in SITES:
            found += [
                self._etcd(site),
                self._apiserver(site),
                self._controller_manager(site),
                self._scheduler(site),
                self._kwok(site),
            ]
        return found

    def _component(self, site: str, name: str, **kwargs: Any) -> Component:
        from federator.sandbox.orchestrator import PART_CLUSTERS, Component

        return Component(site=site, name=name, part=PART_CLUSTERS, **kwargs)

    def _spec(self, site: str, name: str, argv: list[str]) -> ProcessSpec:
        return ProcessSpec(site, name, tuple(argv), self.layout.log_file(site, name))

    def _etcd(self, site: str) -> Component:
        ports = PORTS[site]
        client_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"

        def spec() -> ProcessSpec:
            data = self.layout.data_dir(site, "etcd")
            data.parent.mkdir(parents=True, exist_ok=True)
            return self._spec(
                site,
                "etcd",
                [
                    str(program("etcd")),
                    f"--name={site}",
                    f"--data-dir={data}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster={site}={peer_url}",
                    # Throw-away test data: skip fsync (much faster on a shared disk).
                    "--unsafe-no-fsync=true",
                    "--quota-backend-bytes=2147483648",
                    "--auto-compaction-retention=1",
                    "--log-level=warn",
                ],
            )

        return self._component(
            site,
            "etcd",
            spec=spec,
            probe=lambda: http_probe(f"{client_url}/health", expect_body='"health":"true"'),
            ports=(ports.etcd_client, ports.etcd_peer),
            timeout_s=30.0,
        )

    def _apiserver(self, site: str) -> Component:
        ports = PORTS[site]
        pki = self.pki

        def spec() -> ProcessSpec:
            return self._spec(
                site,
                "apiserver",
                [
                    str(program("kube-apiserver")),
                    f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={ports.apiserver}",
                    f"--tls-cert-file={pki.serving.cert}",
                    f"--tls-private-key-file={pki.serving.key}",
                    f"--client-ca-file={pki.ca.cert}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer=https://127.0.0.1:{ports.apiserver}",
                    f"--service-account-key-file={pki.service_account.cert}",
                    f"--service-account-signing-key-file={pki.service_account.key}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    # No kubelet mounts tokens, so pods need no service account; and new
                    # nodes must not get the not-ready taint that only the node lifecycle
                    # controller (left out, see CONTROLLERS) would lift.
                    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                    # The `kubernetes` Service endpoint would be 127.0.0.1, which endpoint
                    # validation rejects every few seconds; nothing in the sandbox needs it.
                    "--endpoint-reconciler-type=none",
                    # Tests create bursts of objects; no client-side or server-side throttling.
                    "--enable-priority-and-fairness=false",
                    "--max-requests-inflight=0",
                    "--max-mutating-requests-inflight=0",
                    # Request-header authentication for aggregated APIs; without it every
                    # component that delegates authentication logs a missing-CA error.
                    f"--requestheader-client-ca-file={pki.ca.cert}",
                    f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
                    f"--proxy-client-key-file={pki.front_proxy_client.key}",
                    "--profiling=false",
                    "--v=1",
                ],
            )

        def probe() -> Probe:
            # Built when probed, not with the component: before the first `up` there are no
            # certificates yet, and `status` lists components without probing them.
            context = client_ssl(pki.ca.cert, pki.admin.cert, pki.admin.key)
            base = f"https://127.0.0.1:{ports.apiserver}"
            ready = http_probe(f"{base}/readyz", ssl_context=context, expect_body="ok")
            batch = http_probe(f"{base}/apis/batch/v1", ssl_context=context)

            async def both() -> bool:
                return await ready() and await batch()

            return both

        return self._component(
            site,
            "apiserver",
            spec=spec,
            probe=probe,
            ports=(ports.apiserver,),
            timeout_s=120.0,
        )

    def _control_loop_args(self, site: str, name: str, port: int) -> list[str]:
        kubeconfig = self.layout.admin_kubeconfig(site)
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.layout.site_dir(site) / 'certs' / name}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
            "--kube-api-qps=1000",
            "--kube-api-burst=1000",
        ]

    def _controller_manager(self, site: str) -> Component:
        port = PORTS[site].controller_manager

        def spec() -> ProcessSpec:
            return self._spec(
                site,
                "controller-manager",
                [
                    str(program("kube-controller-manager")),
                    *self._control_loop_args(site, "controller-manager", port),
                    f"--service-account-private-key-file={self.pki.service_account.key}",
                    f"--root-ca-file={self.pki.ca.cert}",
                    f"--controllers={','.join(CONTROLLERS)}",
                    "--v=1",
                ],
            )

        return self._component(
            site,
            "controller-manager",
            spec=spec,
            probe=lambda: http_probe(
                f"https://127.0.0.1:{port}/healthz", ssl_context=client_ssl(None), expect_body="ok"
            ),
            ports=(port,),
            timeout_s=60.0,
        )

    def _scheduler(self, site: str) -> Component:
        port = PORTS[site].scheduler

        def spec() -> ProcessSpec:
            return self._spec(
                site,
                "scheduler",
                [
                    str(program("kube-scheduler")),
                    *self._control_loop_args(site, "scheduler", port),
                    "--v=1",
                ],
            )

        return self._component(
            site,
            "scheduler",
            spec=spec,
            probe=lambda: http_probe(
                f"https://127.0.0.1:{port}/healthz", ssl_context=client_ssl(None), expect_body="ok"
            ),
            ports=(port,),
            timeout_s=60.0,
        )

    def _kwok(self, site: str) -> Component:
        port = PORTS[site].kwok

        def spec() -> ProcessSpec:
            config = self.layout.site_dir(site) / "kwok-stages.yaml"
            kwok.write_stages(config)
            return self._spec(
                site,
                "kwok",
                [
                    str(program("kwok")),
                    f"--kubeconfig={self.layout.admin_kubeconfig(site)}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={kwok.NODE_ANNOTATION}=fake",
                    "--node-ip=127.0.0.1",
                    "--node-lease-duration-seconds=40",
                    f"--server-address=127.0.0.1:{port}",
                    f"--config={config}",
                    # INFO logs every lease renewal of every node.
                    "--v=WARN",
                ],
            )

        async def configure() -> None:
            await self.ensure_nodes(site)

        return self._component(
            site,
            "kwok",
            spec=spec,
            probe=lambda: http_probe(f"http://127.0.0.1:{port}/healthz"),
            ports=(port,),
            timeout_s=60.0,
            configure=configure,
        )

    # ---- up --------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Certificates and kubeconfigs, before any process starts (idempotent, fast)."""
        self.pki.ensure()
        for site in SITES:
            self.layout.site_dir(site).mkdir(parents=True, exist_ok=True)
            write_kubeconfig(self.layout.admin_kubeconfig(site), self.pki, [site])
        write_kubeconfig(self.layout.kubeconfig, self.pki, list(SITES))

    async def up(self, sandbox: Sandbox, *, with_kueue: bool) -> None:
        from federator.sandbox.orchestrator import _gather_or_fail

        self.prepare()
        apiserver_turn = asyncio.Lock()
        by_key = {c.key: c for c in self.components()}

        async def site_up(site: str) -> None:
            await sandbox.ensure(by_key[f"{site}/etcd"])
            await sandbox.ensure(by_key[f"{site}/apiserver"], apiserver_turn)
            await _gather_or_fail(
                [
                    sandbox.ensure(by_key[f"{site}/{name}"])
                    for name in ("controller-manager", "scheduler", "kwok")
                ]
            )
            if with_kueue and site == KUEUE_SITE:
                from federator.sandbox.kueue import Kueue

                await Kueue(self.layout, self.report).up(sandbox)

        await _gather_or_fail([site_up(site) for site in SITES])

    async def ensure_nodes(self, site: str) -> None:
        """Create the site's fake GPU nodes (if missing) and wait until KWOK reports them Ready."""
        api = KubeApi.for_site(self.layout, site)
        nodes = pools.nodes_for(site)
        for node in nodes:
            if await api.get("Node", node["metadata"]["name"]) is None:
                await api.apply(node)
        names = {n["metadata"]["name"] for n in nodes}
        deadline = asyncio.get_running_loop().time() + NODE_READY_TIMEOUT_S
        while True:
            ready = {n["metadata"]["name"] for n in await api.list("Node") if _is_ready(n)}
            if names <= ready:
                self.report(f"{site}: {len(names)} fake GPU nodes Ready")
                return
            if asyncio.get_running_loop().time() > deadline:
                from federator.sandbox.probes import ComponentFailed

                raise ComponentFailed(
                    f"{site}/kwok",
                    f"did not make nodes Ready in {NODE_READY_TIMEOUT_S:.0f} s: "
                    f"{sorted(names - ready)}",
                    self.layout.log_file(site, "kwok"),
                )
            await asyncio.sleep(0.5)


def _is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, pki: Pki, sites: list[str]) -> None:
    """A kubeconfig with one context per site, each using the admin client certificate."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": sites[0],
        "clusters": [
            {
                "name": site,
                "cluster": {
                    "server": f"https://127.0.0.1:{PORTS[site].apiserver}",
                    "certificate-authority-data": _b64(pki.ca.cert),
                },
            }
            for site in sites
        ],
        "users": [
            {
                "name": f"{site}-admin",
                "user": {
                    "client-certificate-data": _b64(pki.admin.cert),
                    "client-key-data": _b64(pki.admin.key),
                },
            }
            for site in sites
        ],
        "contexts": [
            {"name": site, "context": {"cluster": site, "user": f"{site}-admin"}} for site in sites
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
