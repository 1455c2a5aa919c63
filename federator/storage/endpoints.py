"""S3 endpoints and the boto3 clients for them, one client per store.

Each store gets its own settings because S3-compatible on-prem stores differ from AWS:
path-style addressing (no wildcard DNS on 127.0.0.1 or most on-prem gateways) and request
checksums only "when required" (botocore >= 1.36 adds CRC checksums by default and several
stores reject them; anchors-sync-reliability A4, R18). Our own end-to-end check is the ETag and
Content-MD5, so nothing is lost. botocore's own retries are off: `retrying` retries once, at the
edge, with one policy.

boto3 clients are thread-safe, so one client per store serves every copy thread; its pool size
bounds the concurrency per endpoint.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials
from botocore.utils import parse_timestamp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["path", "virtual", "auto"]
ChecksumMode = Literal["when_required", "when_supported"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One S3 service as one identity sees it."""

    name: str  # the store's name in the policy ("onprem", "cloud-a")
    url: str | None  # None: AWS's own endpoint for `region`
    access_key_id: str | None  # None (with the secret): boto3's default credential chain
    secret_access_key: str | None
    region: str = "us-east-1"
    session_token: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None  # PEM file of the CAs to verify the store with; None: system's
    addressing_style: AddressingStyle = "path"
    checksums: ChecksumMode = "when_required"
    max_connections: int = 32  # the per-endpoint concurrency bound
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    # Keys that follow rotation (`storage.rotation`); when set, clients sign with these and
    # the three key fields above only say which identity the endpoint had when it was built.
    rotating_keys: Credentials | None = field(default=None, compare=False, repr=False)

    def shares_identity_with(self, other: Endpoint) -> bool:
        """Same service and same credentials: the store can copy server-side between them."""
        return (self.url, self.region, self.access_key_id) == (
            other.url,
            other.region,
            other.access_key_id,
        )

    def __repr__(self) -> str:  # never print the secret
        return f"Endpoint(name={self.name!r}, url={self.url!r}, region={self.region!r})"

    @property
    def label(self) -> str:
        """The store as errors name it: "cloud-a (https://s3.example:8333)"."""
        return f"{self.name} ({self.url or f'AWS {self.region}'})"


@dataclass(frozen=True, slots=True)
class Location:
    """A prefix in a bucket of an endpoint; keys are listed relative to it."""

    endpoint: Endpoint
    bucket: str
    prefix: str = ""  # "" or ending in "/"

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def __str__(self) -> str:
        return f"{self.endpoint.name}:s3://{self.bucket}/{self.prefix}"


def normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def tls_verification(endpoint: Endpoint) -> bool | str:
    """boto3's `verify=`: off, the system's CAs (True), or the store's own CA bundle."""
    if endpoint.verify_tls and endpoint.ca_bundle is not None:
        return endpoint.ca_bundle
    return endpoint.verify_tls


def make_client(endpoint: Endpoint) -> S3Client:
    config = Config(
        region_name=endpoint.region,
        s3={"addressing_style": endpoint.addressing_style},
        request_checksum_calculation=endpoint.checksums,
        response_checksum_validation=endpoint.checksums,
        retries={"total_max_attempts": 1},
        max_pool_connections=endpoint.max_connections,
        connect_timeout=endpoint.connect_timeout_s,
        read_timeout=endpoint.read_timeout_s,
        tcp_keepalive=True,
    )
    if endpoint.rotating_keys is not None:
        session = _session_signing_with(endpoint.rotating_keys)
        rotating: S3Client = session.client(
            "s3", endpoint_url=endpoint.url, verify=tls_verification(endpoint), config=config
        )
        return rotating
    session = _shared_session()
    with _SESSION_LOCK:
        client: S3Client = session.client(
            "s3",
            endpoint_url=endpoint.url,
            aws_access_key_id=endpoint.access_key_id,
            aws_secret_access_key=endpoint.secret_access_key,
            aws_session_token=endpoint.session_token,
            verify=tls_verification(endpoint),
            config=config,
        )
    return client


class _GivenCredentials(CredentialProvider):
    """A credential provider that hands out one credentials object (refreshable or not)."""

    METHOD = "federator-given"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _session_signing_with(credentials: Credentials) -> boto3.session.Session:
    """A session whose clients sign with `credentials`, sharing the S3 model already loaded.

    botocore takes explicit keys only as fixed strings; a credentials object that refreshes
    itself reaches a client only through its session's credential resolver, so each store with
    rotating keys gets its own (cheap) session. The shared data loader keeps the S3 model
    loaded once per process.
    """
    _shared_session()  # the shared core, whose loader holds the S3 model
    with _SESSION_LOCK:
        core = botocore.session.get_session()
        core.register_component("data_loader", _CORE[0].get_component("data_loader"))
        _fast_timestamps(core)
        core.register_component(
            "credential_provider", CredentialResolver(providers=[_GivenCredentials(credentials)])
        )
        return boto3.session.Session(botocore_session=core)


_SESSION_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []
_CORE: list[botocore.session.Session] = []


def _shared_session() -> boto3.session.Session:
    """One boto3 session for every client: it loads the S3 model once (about 0.5 s each time).

    Sessions are not thread-safe, so clients are created under a lock; the clients themselves
    are thread-safe and independent (own endpoint, keys, config, connection pool).
    """
    with _SESSION_LOCK:
        if not _SESSION:
            core = botocore.session.get_session()
            _fast_timestamps(core)
            _CORE.append(core)
            _SESSION.append(boto3.session.Session(botocore_session=core))
        return _SESSION[0]


def _fast_timestamps(core: botocore.session.Session) -> None:
    # A listing page holds 1,000 LastModified stamps; botocore's default parser (dateutil) is
    # a large share of a no-op sync's CPU, and S3 stamps are plain ISO 8601 the stdlib reads.
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_parse_timestamp
    )


def _parse_timestamp(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # HTTP dates in headers ("Sun, 29 Nov 2026 07:50:14 GMT")
        parsed: datetime = parse_timestamp(value)
        return parsed


class RequestCounter:
    """Counts the S3 requests a client sends, by operation (one per attempt, retries included).

    Hooks botocore's `before-send` event, which fires once per HTTP request actually sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def attach(self, client: S3Client) -> None:
        client.meta.events.register("before-send.s3.*", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self._counts[operation] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
