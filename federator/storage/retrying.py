"""The one retry policy for S3 calls, and the translation of boto3 errors into ours.

Transient means the same request may succeed later: the connection failed or was cut (a store
restarting), a timeout, a 5xx, `SlowDown`, or a 409 `ConditionalRequestConflict` (S3's answer to
two concurrent conditional writes, "retry"). Everything else (403, 404, 412 ...) is an answer
and goes to the caller at once. Backoff is exponential with jitter and gives a restarting store
about a minute and a half before `StoreUnavailable` is raised. A TLS certificate
that does not verify is not transient either: it is a setting (`ca_bundle`). Throttling answers
(`is_throttle`) are also transient; on top of the backoff, the copy engine lowers its number of
requests in flight to that store (`storage.throttle`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.exceptions import (
    SSLError as BotoSSLError,
)
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)
from urllib3 import exceptions as urllib3_errors

from federator import errors

P = ParamSpec("P")
T = TypeVar("T")

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "ConditionalRequestConflict",
        "RequestTimeTooSkewed",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_certificate_failure(error: BaseException) -> bool:
    """The store's TLS certificate did not verify: a setting to fix, not a fault that passes."""
    return isinstance(error, BotoSSLError) and "CERTIFICATE_VERIFY_FAILED" in str(error)


def is_transient(error: BaseException) -> bool:
    if is_certificate_failure(error):
        return False
    if isinstance(error, ClientError):
        return (
            http_status(error) >= 500 or error_code(error) in _TRANSIENT_CODES or is_throttle(error)
        )
    return isinstance(
        error, BotoConnectionError | HTTPClientError | ReadTimeoutError | urllib3_errors.HTTPError
    )


# botocore's own list (botocore.retries.standard.ThrottlingErrorDetector), plus the plain
# "ServiceUnavailable" and "TooManyRequests" some S3-compatible stores answer instead.
_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "TooManyRequests",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
    }
)


def is_throttle(error: BaseException) -> bool:
    """The store asked for less load (503 SlowDown, 429, a throttling code): send fewer at once."""
    return isinstance(error, ClientError) and (
        http_status(error) in (429, 503) or error_code(error) in _THROTTLE_CODES
    )


def is_precondition_failed(error: BaseException) -> bool:
    return isinstance(error, ClientError) and (
        http_status(error) == 412 or error_code(error) == "PreconditionFailed"
    )


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ClientError) and (
        http_status(error) == 404 or error_code(error) in {"NoSuchKey", "NotFound", "NoSuchUpload"}
    )


def transient_retry(
    max_delay_s: float = 90.0,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Retry a call on transient S3 errors with exponential backoff, then re-raise."""
    return retry(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=0.2, max=8.0),
        stop=stop_after_delay(max_delay_s),
        reraise=True,
    )


def unavailable(store: str, error: BaseException) -> errors.StoreUnavailable:
    """Our error for a store that kept failing; callers `raise unavailable(...) from error`."""
    reason = str(error) if isinstance(error, ClientError | BotoCoreError) else repr(error)
    return errors.StoreUnavailable(store, reason)
