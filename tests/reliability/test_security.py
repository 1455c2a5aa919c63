"""Secrets never leak; the HTTP face is read-only; TLS is verified unless turned off loudly.

The secrets scenario runs the real daemon on a real overflow (on-prem full, one job bursts)
with credentials whose values the test knows: the sandbox's own S3 secret keys, a fake key pair
for cloud-b's store handed over in environment variables (so its store refuses them and the
error paths run too), a Kubernetes Secret the job references, and the client keys in the
kubeconfig. Every log line, every Event in the namespaces involved, /metrics, /healthz,
/readyz and /debug/decisions are scanned for each value.

Least privilege of the deploy/ RBAC on the sandbox is the operations engineer's
(tests/integration/test_deploy_sandbox.py: the identities can do what federator does and are
refused everything else); not repeated here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi, KubeError
from federator.sandbox.layout import Layout
from tests import federation_harness as harness
from tests.reliability import checks
from tests.support import configs
from tests.support.daemon import Daemon, daemons, request, wait_until

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(400)]

FAKE_ACCESS_KEY = "AKIARELFAKE" + uuid.uuid4().hex[:9].upper()
FAKE_SECRET_KEY = "relFakeSecret/" + uuid.uuid4().hex + "+Zz"
JOB_SECRET = "job-secret-" + uuid.uuid4().hex


def kubeconfig_keys(sandbox: SandboxEnv) -> list[str]:
    """Each user's client key as stored (base64) and a line of its PEM body."""
    values = []
    for user in yaml.safe_load(sandbox.kubeconfig.read_text())["users"]:
        data = user["user"].get("client-key-data")
        if data:
            values.append(data)
            pem = base64.b64decode(data).decode().splitlines()
            values.append(pem[1])
    return values


def known_secrets(sandbox: SandboxEnv) -> list[str]:
    store_keys = [sandbox.store(s)["secret_access_key"] for s in ("onprem", "cloud-a", "cloud-b")]
    return [*store_keys, FAKE_SECRET_KEY, JOB_SECRET, *kubeconfig_keys(sandbox)]


def events_text(sandbox: SandboxEnv, namespaces: list[str]) -> str:
    async def read() -> str:
        texts = []
        for site in ("onprem", "cloud-a", "cloud-b"):
            api = KubeApi.for_site(Layout(sandbox.root), site)
            for namespace in namespaces:
                try:
                    listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/events")
                except KubeError:  # a namespace that does not exist on that cluster
                    continue
                texts.append(json.dumps(listed.get("items", [])))
        return "\n".join(texts)

    return run_sync(read())


def job_with_secret(namespace: str) -> dict[str, Any]:
    job = harness.gpu_job("leaky", namespace, gpus=4, seconds=20, queue="q")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"].append(
        {
            "name": "TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "train-creds", "key": "token"}},
        }
    )
    return job


def test_no_secret_appears_in_logs_events_metrics_or_http_answers(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespace = namespace_factory("onprem", prefix="relsec", local_queue="q")
    onprem = harness.apis(sandbox)["onprem"]

    def scenario(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace
        config["leader_election"]["enabled"] = False  # see test_daemon_faults: election is broken
        config["burst"]["copy_secrets"] = True
        for cluster in config["clusters"]:
            if cluster["name"] == "cloud-b":
                cluster["object_store"]["credentials"] = {
                    "env": {"access_key_id": "REL_FAKE_AK", "secret_access_key": "REL_FAKE_SK"}
                }

    instance = f"rel-sec-{namespace[-8:]}"
    config = configs.scenario_config(
        tmp_path, instance=instance, namespaces=[namespace], edit=scenario
    )
    os.environ["REL_FAKE_AK"], os.environ["REL_FAKE_SK"] = FAKE_ACCESS_KEY, FAKE_SECRET_KEY
    try:
        run_sync(_create_secret(onprem, namespace))
        run_sync(harness.fill_onprem(onprem, namespace, queue="q", seconds=60))
        run_sync(onprem.apply(job_with_secret(namespace)))
        daemon = Daemon(config, tmp_path / "d.log")
        with daemons(daemon):
            wait_until(
                lambda: run_sync(harness.job_record(onprem, namespace, "leaky")) is not None,
                timeout_s=120,
                what="the job to be placed in a cloud",
            )
            time.sleep(3)  # let the placement's events and decisions be written
            answers = {path: daemon.get(path)[1] for path in ENDPOINTS}
            writes = {
                (method, path): request(f"http://127.0.0.1:{daemon.port}{path}", method, body=b"x")[
                    0
                ]
                for method in ("POST", "PUT", "DELETE", "PATCH")
                for path in ENDPOINTS
            }
        cli = subprocess.run(
            [str(configs.REPO / ".venv/bin/federator"), "sync", "dataset", "wikitext",
             "--to", "cloud-b", "--config", str(config)],
            capture_output=True, text=True, timeout=120, cwd=configs.REPO,
        )  # fmt: skip
    finally:
        del os.environ["REL_FAKE_AK"], os.environ["REL_FAKE_SK"]
        run_sync(harness.delete_cloud_namespaces(sandbox, [namespace]))

    record = run_sync(harness.job_record(onprem, namespace, "leaky"))
    texts = {
        "daemon log": daemon.log_text(),
        "events": events_text(sandbox, [namespace]),
        "sync CLI with refused keys": cli.stdout + cli.stderr,
        **{f"GET {path}": text for path, text in answers.items()},
    }
    print(
        f"\nplaced: {record}; sync CLI exit {cli.returncode}; "
        f"writes answered {sorted(set(writes.values()))}"
    )
    assert cli.returncode != 0, "cloud-b's store must refuse the fake keys"
    checks.check_no_secret_in(texts, known_secrets(sandbox))
    accepted = {k: v for k, v in writes.items() if v < 400 or v >= 500}
    assert not accepted, f"write requests not refused with a 4xx: {accepted}"


ENDPOINTS = ("/metrics", "/healthz", "/readyz", "/debug/decisions")


async def _create_secret(api: KubeApi, namespace: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "train-creds", "namespace": namespace},
        "stringData": {"token": JOB_SECRET},
    }
    await api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)
