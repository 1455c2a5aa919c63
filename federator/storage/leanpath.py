"""A lean transport for the copy engine's two hot requests: GET an object (or a range) and PUT
an object (or a part).

Why not boto3 for these: measured on the 2-core sandbox, a botocore GetObject/PutObject costs
about 5-9 ms of client CPU (event hooks, model-driven serialization, response parsing), which
makes a copy of many small objects CPU-bound in the client while the S3 servers on the same
host starve. These two requests are simple, so this module keeps botocore's own SigV4 signer
(`S3SigV4Auth`, credentials, canonicalisation) and sends the signed request over a urllib3
connection pool, about 1 ms of CPU. Everything else (listings, multipart control, deletes,
errors with bodies worth parsing) stays on boto3.

The same path also reads listing pages (`list_page`): a no-op re-sync is nothing but listings,
and botocore's model-driven XML parsing is most of its CPU.

Payloads are sent UNSIGNED-PAYLOAD with a Content-MD5 header, so the store still rejects
bytes that differ from what we read. Errors become botocore `ClientError`s with the HTTP status
and S3 error code, so `retrying` treats them exactly like boto3's. Only path-style endpoints
with explicit keys (`LeanS3.usable_for`) and plain keys (`LeanS3.plain`: no escaping, no "." or
".." segment) use this path; anything else goes through boto3.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus
from xml.etree import ElementTree

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.exceptions import SSLError as BotoSSLError

from federator.storage.endpoints import Endpoint

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9._~/=-]+$")
# urllib3 removes "." and ".." path segments before sending (RFC 3986 dot-segment removal), so
# the request would go to another key than the one signed. Empty segments ("a//b") are sent as
# they are.
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")
_UNSIGNED = Config(s3={"payload_signing_enabled": False})
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


class LeanS3:
    """Signed GET/PUT against one path-style endpoint; thread-safe."""

    def __init__(self, endpoint: Endpoint, *, pool_size: int) -> None:
        key, secret = endpoint.access_key_id, endpoint.secret_access_key
        if endpoint.url is None or key is None or secret is None:
            raise ValueError("the lean path needs an explicit endpoint URL and keys")
        self._base = endpoint.url.rstrip("/")
        credentials = Credentials(key, secret, endpoint.session_token)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # by operation, for benchmarks and tests
        self._signer = S3SigV4Auth(credentials, "s3", endpoint.region)
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(
                connect=endpoint.connect_timeout_s, read=endpoint.read_timeout_s
            ),
            cert_reqs="CERT_REQUIRED" if endpoint.verify_tls else "CERT_NONE",
            ca_certs=endpoint.ca_bundle if endpoint.verify_tls else None,
        )

    @staticmethod
    def usable_for(endpoint: Endpoint) -> bool:
        return (
            endpoint.url is not None
            and endpoint.access_key_id is not None
            and endpoint.secret_access_key is not None
            and endpoint.addressing_style == "path"
        )

    @staticmethod
    def plain(*keys: str) -> bool:
        """Keys that need no escaping beyond what this module does and that urllib3 sends as
        they are (no "." or ".." segment)."""
        return all(_PLAIN_KEY.match(key) and not _DOT_SEGMENT.search(key) for key in keys)

    def get(self, bucket: str, key: str, *, if_match: str, byte_range: str | None) -> bytes:
        headers = {"If-Match": if_match}
        if byte_range is not None:
            headers["Range"] = byte_range
        response = self._send("GET", bucket, key, "", headers, b"", "GetObject")
        return bytes(response.data)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        md5: bytes,
        *,
        upload_id: str | None = None,
        part_number: int | None = None,
    ) -> str:
        query = ""
        operation = "PutObject"
        if upload_id is not None:
            query = f"partNumber={part_number}&uploadId={quote(upload_id, safe='')}"
            operation = "UploadPart"
        headers = {
            "Content-MD5": base64.b64encode(md5).decode(),
            "Content-Length": str(len(body)),
        }
        response = self._send("PUT", bucket, key, query, headers, body, operation)
        return str(response.headers.get("ETag", "")).strip('"')

    def list_page(
        self, bucket: str, prefix: str, token: str | None, *, max_keys: int = 1000
    ) -> ListedPage:
        """One ListObjectsV2 page (1,000 keys), parsed with the C XML parser.

        botocore spends about 50 ms of CPU turning a 1,000-key page into dicts (model-driven
        parsing, a datetime per entry); a no-op sync of 100,000 objects is 200 pages, so that
        is most of its time. Keys are asked URL-encoded (as botocore does) and decoded here.
        """
        params = {
            "list-type": "2",
            "max-keys": str(max_keys),
            "encoding-type": "url",
            "prefix": prefix,
        }
        if token is not None:
            params["continuation-token"] = token
        query = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
        response = self._send("GET", bucket, "", query, {}, b"", "ListObjectsV2")
        return _parse_listing(bytes(response.data))

    def _send(
        self,
        method: str,
        bucket: str,
        key: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        operation: str,
    ) -> Any:
        url = f"{self._base}/{bucket}/{quote(key, safe='/~')}" if key else f"{self._base}/{bucket}"
        if query:
            url = f"{url}?{query}"
        with self._lock:
            self.requests[operation] += 1
        request = AWSRequest(method=method, url=url, headers=headers, data=body)
        request.context["client_config"] = _UNSIGNED
        self._signer.add_auth(request)
        try:
            response = self._pool.request(
                method,
                url,
                body=body or None,
                headers=dict(request.headers.items()),
                preload_content=True,
                redirect=False,
            )
        except urllib3.exceptions.SSLError as error:
            # The error boto3 raises for the same failure, so both paths are judged alike
            # (`retrying.is_certificate_failure`).
            raise BotoSSLError(endpoint_url=url, error=error) from error
        if response.status >= 300:
            raise _client_error(response.status, bytes(response.data), operation)
        return response


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One listing page: (key, size, ETag without quotes, LastModified epoch s) per object."""

    entries: tuple[tuple[str, int, str, float], ...]
    next_token: str | None  # None: this was the last page


def _parse_listing(body: bytes) -> ListedPage:
    root = ElementTree.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    # Decode keys only when the store says it encoded them (as botocore does): versitygw, for
    # one, ignores encoding-type and sends raw keys, where a "+" is a plus.
    encoded = root.findtext(f"{ns}EncodingType", "") == "url"
    entries = []
    for item in root.iterfind(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key", "")
        if encoded:
            key = unquote_plus(key)
        size = int(item.findtext(f"{ns}Size", "0"))
        etag = item.findtext(f"{ns}ETag", "").strip('"')
        stamp = datetime.fromisoformat(item.findtext(f"{ns}LastModified", "")).timestamp()
        entries.append((key, size, etag, stamp))
    truncated = root.findtext(f"{ns}IsTruncated", "false").strip().lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ValueError("a truncated ListObjectsV2 page without NextContinuationToken")
    return ListedPage(tuple(entries), token)


def _client_error(status: int, body: bytes, operation: str) -> ClientError:
    code = _ERROR_CODE.search(body)
    message = _ERROR_MESSAGE.search(body)
    error: dict[str, Any] = {
        "Error": {
            "Code": code.group(1).decode() if code else str(status),
            "Message": message.group(1).decode(errors="replace") if message else "",
        },
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(error, operation)  # type: ignore[arg-type]
