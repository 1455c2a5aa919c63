"""deploy/ against real apiservers: the manifests validate, and the RBAC is exactly enough.

Each test renders a kustomization of its own in a temporary directory that points at the real
deploy/ directories and only moves them into a fresh namespace with a unique name suffix
(kustomize's `namespace` + `nameSuffix`, which also rewrite the RoleBinding subjects), so
tests never collide with each other or with a real installation in the sandbox.

The RBAC tests then act as the ServiceAccount of deploy/ — a short-lived token from the
TokenRequest API, not the sandbox admin — and show that what federator needs works and that
neighbouring actions are refused with 403 by the apiserver's RBAC authorizer.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator.sandbox import SandboxEnv

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
FIELD_MANAGER = "federator-deploy-test"
RBAC_KINDS = (
    "ServiceAccount",
    "Secret",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
)
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace")

Obj = dict[str, Any]


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed to render and apply deploy/; install it")
    return found


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig and context."""

    kubeconfig: Path
    context: str

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [kubectl_path(), "--kubeconfig", str(self.kubeconfig), "--context", self.context]
        return subprocess.run(
            [*command, *args], input=stdin, capture_output=True, text=True, check=False, timeout=60
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def forbidden(self, *args: str, stdin: str | None = None) -> None:
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"kubectl {' '.join(args)} was allowed:\n{result.stdout}"
        assert "forbidden" in result.stderr.lower(), result.stderr

    def merge_patch(self, path: str, body: Obj) -> int:
        """PATCH `path` exactly as federator's client does (no GET first, unlike kubectl)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        (cluster,) = config["clusters"]
        (user,) = config["users"]
        tls = ssl.create_default_context(
            cadata=base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode()
        )
        request = urllib.request.Request(
            cluster["cluster"]["server"] + path,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={
                "Authorization": f"Bearer {user['user']['token']}",
                "Content-Type": "application/merge-patch+json",
            },
        )
        try:
            with urllib.request.urlopen(request, context=tls, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def can(self, verb: str, resource: str, *scope: str) -> bool:
        """A SelfSubjectAccessReview: the apiserver's authorizer answers, nothing is done."""
        result = self.run("auth", "can-i", verb, resource, *scope)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"

    def apply(self, objects: Sequence[Obj], *, dry_run: bool) -> str:
        args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--validate=strict"]
        if dry_run:
            args.append("--dry-run=server")
        return self.ok(*args, "-f", "-", stdin=to_yaml(objects))

    def delete(self, objects: Sequence[Obj]) -> None:
        self.run("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=to_yaml(objects))


def to_yaml(objects: Sequence[Obj]) -> str:
    """Objects as a stream of JSON documents, which Go reads back with the same types.

    PyYAML speaks YAML 1.1 and leaves a string like `-7348e7` unquoted; Go's
    YAML 1.2 reader then sees a number. JSON quotes every string, is YAML to
    kustomize, and kubectl reads one JSON object after another (no `---`).
    """
    return "".join(json.dumps(obj) + "\n" for obj in objects)


def render_moved(source: Path, into: Path, *, namespace: str, suffix: str) -> list[Obj]:
    """Render `source` (a deploy/ kustomization) moved into `namespace`, names + `suffix`."""
    into.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "nameSuffix": suffix,
        # kustomize refuses absolute paths: a relative one is as good
        "resources": [os.path.relpath(source, into)],
    }
    (into / "kustomization.yaml").write_text(to_yaml([kustomization]))
    result = subprocess.run(
        [kubectl_path(), "kustomize", str(into)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(objects: Sequence[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def token_kubeconfig(admin: Kubectl, *, namespace: str, account: str, path: Path) -> Kubectl:
    """A kubeconfig that authenticates as `account` with a 15-minute TokenRequest token."""
    token = admin.ok("-n", namespace, "create", "token", account, "--duration=15m").strip()
    config = yaml.safe_load(admin.kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == admin.context)
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    restricted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": "federator", "context": {"cluster": cluster["name"], "user": account}}
        ],
        "current-context": "federator",
    }
    path.write_text(yaml.safe_dump(restricted))
    path.chmod(0o600)
    return Kubectl(path, "federator")


# A structural subset of the Prometheus Operator's ServiceMonitor CRD: the fields deploy/
# uses, with unknown fields rejected (kubectl --validate=strict), so a typo in our
# ServiceMonitor fails here as it would on a cluster with the operator installed.
DURATION = (
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
SERVICE_MONITOR_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["selector", "endpoints"],
                                "properties": {
                                    "jobLabel": {"type": "string"},
                                    "selector": {
                                        "type": "object",
                                        "properties": {
                                            "matchLabels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            }
                                        },
                                    },
                                    "namespaceSelector": {
                                        "type": "object",
                                        "properties": {
                                            "any": {"type": "boolean"},
                                            "matchNames": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                        },
                                    },
                                    "endpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "string"},
                                                "path": {"type": "string"},
                                                "scheme": {"type": "string"},
                                                "interval": {
                                                    "type": "string",
                                                    "pattern": DURATION,
                                                },
                                                "scrapeTimeout": {
                                                    "type": "string",
                                                    "pattern": DURATION,
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def suffix() -> str:
    return f"-{uuid.uuid4().hex[:6]}"


def admin_for(sandbox: SandboxEnv, context: str) -> Kubectl:
    return Kubectl(sandbox.kubeconfig, context)


@pytest.fixture
def cleanup() -> Iterator[Callable[[Kubectl, Sequence[Obj]], None]]:
    """Register cluster-scoped objects to delete (as admin) when the test ends."""
    registered: list[tuple[Kubectl, list[Obj]]] = []
    yield lambda admin, objects: registered.append((admin, list(objects)))
    for admin, objects in reversed(registered):
        admin.delete(objects)


# ---- the manifests validate ---------------------------------------------------------------------


def test_a_suffix_that_reads_as_a_number_in_yaml_1_2_still_renders(tmp_path: Path) -> None:
    """A random suffix like `-7348e7` once failed CI: Go read it back as a float."""
    objects = render_moved(DEPLOY / "base", tmp_path, namespace="fed-x", suffix="-7348e7")
    named = [o for o in objects if o["kind"] != "Namespace"]
    assert named
    assert all(o["metadata"]["name"].endswith("-7348e7") for o in named)


def test_the_example_overlay_passes_server_side_dry_run(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path, suffix: str
) -> None:
    """Every object of deploy/overlays/example is accepted by a real apiserver (dry run)."""
    admin = admin_for(sandbox, "onprem")
    admin.apply([SERVICE_MONITOR_CRD], dry_run=False)  # what the Prometheus Operator installs
    crd = "crd/servicemonitors.monitoring.coreos.com"
    admin.ok("wait", "--for=condition=Established", "--timeout=30s", crd)
    namespace = namespace_factory("onprem", prefix="fed-deploy")
    objects = render_moved(
        DEPLOY / "overlays" / "example", tmp_path, namespace=namespace, suffix=suffix
    )
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    output = admin.apply(objects, dry_run=True)
    assert output.count("(server dry run)") == len(objects), output


def test_the_secret_templates_pass_server_side_dry_run(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    """The Secret templates are valid Secrets (so filling them in is all a user does)."""
    admin = admin_for(sandbox, "onprem")
    namespace = namespace_factory("onprem", prefix="fed-secrets")
    templates = sorted((DEPLOY / "overlays" / "example" / "secrets").glob("*.yaml"))
    objects = [yaml.safe_load(t.read_text()) for t in templates]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    output = admin.apply(objects, dry_run=True)
    assert output.count("(server dry run)") == len(templates), output


def test_the_cloud_bundle_passes_server_side_dry_run(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path, suffix: str
) -> None:
    """deploy/cloud is accepted by a cloud cluster's apiserver (dry run)."""
    admin = admin_for(sandbox, "cloud-a")
    namespace = namespace_factory("cloud-a", prefix="fed-cloud")
    objects = render_moved(DEPLOY / "cloud", tmp_path, namespace=namespace, suffix=suffix)
    output = admin.apply(objects, dry_run=True)
    assert output.count("(server dry run)") == len(objects), output


# ---- the on-prem identity: enough, and no more ------------------------------------------------


@dataclass(frozen=True)
class Installed:
    namespace: str
    federator: Kubectl  # authenticated as deploy/'s ServiceAccount


def install_identity(
    admin: Kubectl, bundle: Path, *, namespace: str, workdir: Path, suffix: str
) -> tuple[Installed, list[Obj]]:
    """Really apply `bundle`'s ServiceAccount and RBAC, moved into `namespace`; log in as it.

    Returns the identity and the cluster-scoped objects the caller must delete.
    """
    rendered = render_moved(bundle, workdir / "k", namespace=namespace, suffix=suffix)
    objects = only(rendered, *RBAC_KINDS)
    admin.apply(objects, dry_run=False)
    (account,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    federator = token_kubeconfig(admin, namespace=namespace, account=account, path=workdir / "kc")
    return Installed(namespace, federator), only(objects, *CLUSTER_SCOPED)


@pytest.fixture
def onprem_identity(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    tmp_path: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> Installed:
    """deploy/base's ServiceAccount and RBAC, really applied in a fresh namespace."""
    admin = admin_for(sandbox, "onprem")
    namespace = namespace_factory("onprem", prefix="fed-rbac")
    installed, cluster_scoped = install_identity(
        admin, DEPLOY / "base", namespace=namespace, workdir=tmp_path / "onprem", suffix=suffix
    )
    cleanup(admin, cluster_scoped)
    return installed


def a_suspended_job(name: str, namespace: str, queue: str) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/queue-name": queue},
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "resources": {}}],
                }
            },
        },
    }


def an_event(namespace: str, job: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{job}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job,
            "namespace": namespace,
        },
        "reason": "FederatorStay",
        "message": "Staying in the on-prem queue (RBAC test)",
        "type": "Normal",
        "source": {"component": "federator"},
    }


def a_lease(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"holderIdentity": "federator-0", "leaseDurationSeconds": 15},
    }


def test_onprem_identity_can_do_what_federator_does(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], onprem_identity: Installed
) -> None:
    """Observe queues and capacity, annotate jobs and status, post Events, lead, keep state."""
    admin, fed, own = (
        admin_for(sandbox, "onprem"),
        onprem_identity.federator,
        onprem_identity.namespace,
    )
    team = namespace_factory("onprem", prefix="fed-team", local_queue="q")
    admin.ok("create", "-f", "-", stdin=json.dumps(a_suspended_job("train", team, "q")))

    for resource in ("jobs", "workloads.kueue.x-k8s.io", "localqueues.kueue.x-k8s.io"):
        fed.ok("get", resource, "--all-namespaces", "--watch=false")
    fed.ok("get", "clusterqueues.kueue.x-k8s.io")
    watched = ("jobs", "workloads.kueue.x-k8s.io", "localqueues.kueue.x-k8s.io")
    assert all(fed.can("watch", resource, "--all-namespaces") for resource in watched)
    record = {"metadata": {"annotations": {"federator.io/record": "{}"}}}
    fed.ok("-n", team, "patch", "job", "train", "--type=merge", "-p", json.dumps(record))
    status_path = f"/apis/batch/v1/namespaces/{team}/jobs/train/status"
    assert fed.merge_patch(status_path, record) == 200  # onprem.py: finish
    admin.ok("-n", team, "create", "configmap", "train-config", "--from-literal=lr=0.1")
    fed.ok("-n", team, "get", "configmap", "train-config")  # referenced ConfigMaps are copied
    fed.ok("create", "-f", "-", stdin=json.dumps(an_event(team, "train")))

    fed.ok("create", "-f", "-", stdin=json.dumps(a_lease("federator", own)))
    fed.ok("-n", own, "annotate", "lease", "federator", "renewed=1")
    fed.ok("-n", own, "create", "configmap", "federator-state", "--from-literal=k=v")
    fed.ok(
        "-n",
        own,
        "patch",
        "configmap",
        "federator-state",
        "--type=merge",
        "-p",
        '{"data":{"k":"w"}}',
    )
    fed.ok("-n", own, "delete", "configmap", "federator-state")
    missing = fed.run("-n", own, "get", "secret", "federator-kubeconfigs")
    assert "notfound" in missing.stderr.lower().replace(" ", ""), missing.stderr  # allowed, absent


def test_onprem_identity_is_refused_everything_else(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], onprem_identity: Installed
) -> None:
    """Creating or deleting jobs, reading other secrets, touching queues, reading nodes: 403."""
    admin, fed, own = (
        admin_for(sandbox, "onprem"),
        onprem_identity.federator,
        onprem_identity.namespace,
    )
    team = namespace_factory("onprem", prefix="fed-team")
    admin.ok("create", "-f", "-", stdin=json.dumps(a_suspended_job("train", team, "q")))
    admin.ok("-n", team, "create", "secret", "generic", "wandb", "--from-literal=key=s3cr3t-value")

    fed.forbidden("create", "-f", "-", stdin=json.dumps(a_suspended_job("sneaky", team, "q")))
    fed.forbidden("-n", team, "delete", "job", "train")
    fed.forbidden("-n", team, "get", "secret", "wandb")
    fed.forbidden("-n", own, "get", "secrets")  # even its own namespace: named gets only
    fed.forbidden("-n", team, "get", "configmaps")  # get by name only, no listing
    fed.forbidden("-n", team, "run", "shell", "--image=busybox")
    fed.forbidden(
        "patch", "clusterqueue", "onprem", "--type=merge", "-p", '{"spec":{"cohort":"x"}}'
    )
    fed.forbidden("label", "node", "--all", "hijacked=1")
    fed.forbidden("get", "nodes")  # no on-prem code reads Nodes: the quota is Kueue's
    fed.forbidden("create", "-f", "-", stdin=json.dumps(a_lease("federator", team)))
    fed.ok("create", "-f", "-", stdin=json.dumps(a_lease("other", own)))  # create cannot be named
    fed.forbidden("-n", own, "annotate", "lease", "other", "renewed=1")
    escalate = ["create", "clusterrolebinding", "escalate", "--clusterrole=cluster-admin"]
    fed.forbidden(*escalate, f"--serviceaccount={own}:federator")


# ---- the cloud identity -------------------------------------------------------------------------


def cloud_identity_on(
    context: str,
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    workdir: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> Installed:
    admin = admin_for(sandbox, context)
    namespace = namespace_factory(context, prefix="fed-remote")
    installed, cluster_scoped = install_identity(
        admin, DEPLOY / "cloud", namespace=namespace, workdir=workdir, suffix=suffix
    )
    cleanup(admin, cluster_scoped)
    return installed


@pytest.fixture
def cloud_identity(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    tmp_path: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> Installed:
    """deploy/cloud's ServiceAccount and RBAC, really applied on cloud-a in a fresh namespace."""
    return cloud_identity_on(
        "cloud-a", sandbox, namespace_factory, tmp_path / "cloud-a", suffix, cleanup
    )


def test_cloud_identity_can_place_observe_and_collect_copies(
    sandbox: SandboxEnv,
    cloud_identity: Installed,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> None:
    """Create the job's namespace and its copy, copy a ConfigMap, watch pools, delete the copy."""
    admin, fed = admin_for(sandbox, "cloud-a"), cloud_identity.federator
    mirrored = f"fed-mirror-{uuid.uuid4().hex[:6]}"
    cleanup(admin, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": mirrored}}])

    fed.ok("create", "namespace", mirrored)
    fed.ok("create", "-f", "-", stdin=json.dumps(a_suspended_job("train-copy", mirrored, "none")))
    fed.ok(
        "-n",
        mirrored,
        "patch",
        "job",
        "train-copy",
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"a":"b"}}}',
    )
    fed.ok("-n", mirrored, "create", "configmap", "train-config", "--from-literal=lr=0.1")
    fed.ok("get", "nodes", "-l", "federator.io/pool")
    fed.ok("get", "pods", "--all-namespaces")
    fed.ok("get", "jobs", "--all-namespaces", "-l", "federator.io/origin")
    fed.ok("get", "configmaps", "--all-namespaces", "-l", "federator.io/origin")
    assert all(fed.can("watch", r, "--all-namespaces") for r in ("jobs", "pods", "nodes"))
    fed.ok("-n", mirrored, "delete", "job", "train-copy", "--wait=false")
    fed.ok("-n", mirrored, "delete", "configmap", "train-config")


def test_cloud_identity_is_refused_everything_else(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], cloud_identity: Installed
) -> None:
    """No secrets (unless opted in), no bare pods, no namespace deletion, no escalation."""
    admin, fed = admin_for(sandbox, "cloud-a"), cloud_identity.federator
    other = namespace_factory("cloud-a", prefix="fed-other")
    admin.ok("-n", other, "create", "secret", "generic", "db", "--from-literal=password=hunter2")

    fed.forbidden("-n", other, "get", "secret", "db")
    fed.forbidden("-n", other, "create", "secret", "generic", "copied", "--from-literal=a=b")
    fed.forbidden("get", "secrets", "--all-namespaces")
    fed.forbidden("-n", other, "run", "shell", "--image=busybox")
    fed.forbidden("delete", "namespace", other, "--wait=false")
    fed.forbidden("label", "node", "--all", "hijacked=1")
    escalate = ["create", "clusterrolebinding", "escalate", "--clusterrole=cluster-admin"]
    fed.forbidden(*escalate, f"--serviceaccount={cloud_identity.namespace}:federator-remote")


# ---- federator itself, under those identities -------------------------------------------------

SANDBOX_POLICY = REPO / "config" / "sandbox.yaml"


def absolute_paths(node: Any, base: Path) -> Any:
    """The policy with every relative path (`file`, `kubeconfig`, "../…") made absolute."""
    if isinstance(node, dict):
        return {
            k: _absolute(v, base, path_key=k in ("file", "kubeconfig")) for k, v in node.items()
        }
    if isinstance(node, list):
        return [absolute_paths(item, base) for item in node]
    return node


def _absolute(value: Any, base: Path, *, path_key: bool) -> Any:
    if not isinstance(value, str):
        return absolute_paths(value, base)
    relative = value.startswith(("./", "../")) or (path_key and not Path(value).is_absolute())
    return str((base / value).resolve()) if relative else value


def restricted_policy(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    onprem_identity: Installed,
    workdir: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> dict[str, Any]:
    """config/sandbox.yaml, connecting to every cluster as deploy/'s identity, not admin."""
    policy = absolute_paths(yaml.safe_load(SANDBOX_POLICY.read_text()), SANDBOX_POLICY.parent)
    policy["state_namespace"] = onprem_identity.namespace
    identities = {"onprem": onprem_identity}
    for context in ("cloud-a", "cloud-b"):
        identities[context] = cloud_identity_on(
            context, sandbox, namespace_factory, workdir / context, suffix, cleanup
        )
    for cluster in policy["clusters"]:
        kubectl = identities[cluster["name"]].federator
        cluster["connection"] = {"kubeconfig": str(kubectl.kubeconfig), "context": kubectl.context}
    return policy


def run_once(policy: dict[str, Any], workdir: Path, *flags: str) -> list[dict[str, Any]]:
    """`federator run --once` on `policy`; asserts a clean pass, returns the JSON log lines."""
    config = workdir / "federator.yaml"
    config.write_text(yaml.safe_dump(policy, sort_keys=False))
    command = [sys.executable, "-m", "federator", "run", "--config", str(config), "--once"]
    result = subprocess.run(
        [*command, *flags], capture_output=True, text=True, check=False, timeout=240, cwd=workdir
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "forbidden" not in output.lower(), output[-4000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    answered = {line.get("cluster") for line in lines if line.get("event") == "cluster_up"}
    assert answered == {"onprem", "cloud-a", "cloud-b"}, output[-4000:]
    assert not [line for line in lines if line.get("event") == "cluster_down"], output[-4000:]
    return lines


def test_federator_observes_and_decides_under_the_deploy_identities(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    onprem_identity: Installed,
    tmp_path: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> None:
    """`federator run --once --dry-run` with only deploy/'s rights (not admin) on every cluster.

    It lists and watches everything it observes on-prem and on both clouds, reads its state,
    and decides over the sandbox's real queues; dry run keeps it from touching other tests'
    jobs. Any 403 would surface as a failed pass or a logged error.
    """
    policy = restricted_policy(
        sandbox, namespace_factory, onprem_identity, tmp_path, suffix, cleanup
    )
    run_once(policy, tmp_path, "--dry-run")


def test_federator_acts_under_the_deploy_identities(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    onprem_identity: Installed,
    tmp_path: Path,
    suffix: str,
    cleanup: Callable[[Kubectl, Sequence[Obj]], None],
) -> None:
    """A real pass (writes allowed) with deploy/'s rights, including garbage collection.

    Its own instance name and a queue of its own keep it away from other tests' jobs; the
    pass still lists and sweeps federator-labelled objects on both clouds, as GC does — and
    must not need Secrets there (bursting.copy_secrets is off; deploy/cloud grants none).
    """
    team = namespace_factory("onprem", prefix="fed-act", local_queue="q")
    job = a_suspended_job("train", team, "q")
    # Opted out, so the pass is the same whether or not the shared on-prem queue is full:
    # it observes, decides, writes what it may (status, Events) and sweeps the clouds. (When
    # the queue was full the job burst, and the pass failed; bursting under the deploy
    # identities is not covered by this test.)
    job["metadata"]["labels"]["federator.io/burst"] = "never"
    admin_for(sandbox, "onprem").ok("create", "-f", "-", stdin=json.dumps(job))
    policy = restricted_policy(
        sandbox, namespace_factory, onprem_identity, tmp_path, suffix, cleanup
    )
    policy["instance"] = f"deploy-test{suffix}"
    policy["queues"] = [{"kind": "LocalQueue", "name": "q", "namespace": team, "cluster": "onprem"}]
    policy.pop("tenants", None)  # they name the sandbox's team namespaces, not this one
    run_once(policy, tmp_path)
