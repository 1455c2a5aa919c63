"""What a running sandbox offers its clients: the kubeconfig, the S3 stores, the state dir.

Tests and demos read this instead of hard-coding paths; `load_env` reads what the last `up`
wrote and fails with a clear message when no sandbox has been brought up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federator.errors import UserError
from federator.sandbox.layout import REGION, SITES, Layout


@dataclass(frozen=True, slots=True)
class SandboxEnv:
    """A running sandbox: `.kubeconfig` (contexts onprem/cloud-a/cloud-b), `.s3` (s3.json)."""

    root: Path
    kubeconfig: Path
    s3: dict[str, dict[str, Any]]
    contexts: tuple[str, ...] = SITES
    region: str = REGION

    def store(self, name: str) -> dict[str, Any]:
        """The s3.json entry of store `name` (endpoint, region, keys, buckets, implementation)."""
        try:
            return self.s3[name]
        except KeyError:
            raise UserError(
                f"sandbox: no object store named {name!r}; have {sorted(self.s3)}"
            ) from None

    def boto3_client(self, name: str) -> Any:
        """A boto3 S3 client for store `name` (path-style addressing)."""
        import boto3
        from botocore.config import Config

        store = self.store(name)
        return boto3.client(
            "s3",
            endpoint_url=store["endpoint"],
            region_name=store["region"],
            aws_access_key_id=store["access_key_id"],
            aws_secret_access_key=store["secret_access_key"],
            config=Config(s3={"addressing_style": "path"}),
        )


def load_env(root: Path | None = None, *, need_clusters: bool = True) -> SandboxEnv:
    """The sandbox that the last `federator sandbox up` wrote under `root` (default `.sandbox`)."""
    layout = Layout(root) if root is not None else Layout.default()
    if not layout.s3_json.exists():
        raise UserError(f"{layout.s3_json}: missing; run `federator sandbox up` first")
    if need_clusters and not layout.kubeconfig.exists():
        raise UserError(f"{layout.kubeconfig}: missing; run `federator sandbox up` first")
    s3: dict[str, dict[str, Any]] = json.loads(layout.s3_json.read_text())
    return SandboxEnv(root=layout.root, kubeconfig=layout.kubeconfig, s3=s3)
