"""The sandbox's S3 stores as the storage layer sees them, for tests that build engines."""

from __future__ import annotations

from federator.sandbox import SandboxEnv
from federator.storage.endpoints import Endpoint


def sandbox_endpoint(sandbox: SandboxEnv, store: str, url: str | None = None) -> Endpoint:
    """Store `store`'s endpoint and keys, optionally reached at `url` (e.g. a fault proxy)."""
    entry = sandbox.store(store)
    return Endpoint(
        name=store,
        url=url or entry["endpoint"],
        access_key_id=entry["access_key_id"],
        secret_access_key=entry["secret_access_key"],
        region=entry["region"],
    )
