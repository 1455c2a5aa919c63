"""The one retry policy for S3 calls, and the translation of boto3 errors into ours.

Transient means the same request may succeed later: the connection failed or was cut (a store
restarting), a timeout, a 5xx other than 501, `SlowDown`, or a 409 `ConditionalRequestConflict`
(S3's answer to two concurrent conditional writes, "retry"). Everything else (403, 404, 412 ...)
is an answer and goes to the caller at once; so does 501 `NotImplemented`, a store saying it
does not do what was asked (e.g. HeadObject with PartNumber), which no retry changes. Backoff
is exponential with jitter and gives a restarting store about a minute and a half before
`StoreUnavailable` is raised. A TLS certificate that does not verify is not transient either:
it is a setting (`ca_bundle`). Throttling answers (`is_throttle`) are also transient; on top of
the backoff, the copy engine lowers its number of requests in flight to that store
(`storage.throttle`).

S3 failures leave the storage edge as our errors, not botocore's: its entry points run their S3
calls in `translated(store, doing)`, outside the retries, which turns what is left after them
into `StoreUnavailable` (transient) or `StoreRefused` (an answer a person has to act on: access
denied, no such bucket, no keys, a certificate that does not verify), naming the store, what was
being done and the cause. Other botocore errors (a malformed request) are bugs and stay as they
are.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import structlog
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.exceptions import (
    SSLError as BotoSSLError,
)
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)
from urllib3 import exceptions as urllib3_errors

from federator import errors

log = structlog.get_logger(__name__)

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


def is_not_implemented(error: BaseException) -> bool:
    """The store does not support the request (501 NotImplemented): an answer, not a fault."""
    return isinstance(error, ClientError) and (
        http_status(error) == 501 or error_code(error) == "NotImplemented"
    )


def is_transient(error: BaseException) -> bool:
    if is_certificate_failure(error) or is_not_implemented(error):
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
        before_sleep=_said_retrying(max_delay_s),
    )


R_co = TypeVar("R_co", covariant=True)


class _Retried(Protocol[P, R_co]):
    """A function decorated by tenacity: `retry_with` is set on it, not in its type."""

    def retry_with(self, **changes: Any) -> Callable[P, R_co]: ...


class RetriesStopped(errors.FederatorError):
    """A store call not tried (again) because the process is shutting down (`stoppable`)."""


def stoppable(
    call: Callable[P, T], stopping: threading.Event | None, *, first_try_kept: bool = False
) -> Callable[P, T]:
    """`call`, a function decorated with `transient_retry`, whose retries end once `stopping`
    is set: the wait between two tries is cut short and no further try is made, the call
    raising `RetriesStopped`. A store that is down is otherwise retried for its whole budget
    (90 s) in a thread that cannot be interrupted, and the process waits for its threads at
    exit, past the 25 s a SIGTERM has (docs/reliability.md). Its stop and wait stay the
    decorator's. Without `stopping`, `call` as it is.

    With `first_try_kept`, a call made after the stop still makes its first try and only its
    retries are refused: for a write that records work already done (the sync state a stopped
    copy saves, its open uploads), which the next start should find; one try costs at most the
    client's timeouts, not the retry budget."""
    if stopping is None:
        return call

    def refuse_when_stopping(state: RetryCallState) -> None:
        if stopping.is_set() and (state.attempt_number > 1 or not first_try_kept):
            name = getattr(state.fn, "__qualname__", "a store call")
            raise RetriesStopped(f"{name}: not tried (again): the process is shutting down")

    # The decorator's policy, copied with a stop check before each try and a sleep that the
    # stop cuts short.
    return cast("_Retried[P, T]", call).retry_with(sleep=stopping.wait, before=refuse_when_stopping)


class StopsRetries(Protocol):
    """An object whose retried store calls end at its stop (`until_stopped`): it says which
    event stops them, and keeps the stoppable calls built for it."""

    _stoppable_calls: dict[Callable[..., object], Callable[..., object]]

    def retries_stop_on(self) -> threading.Event | None: ...


_S = TypeVar("_S", bound=StopsRetries)


def until_stopped(method: Callable[Concatenate[_S, P], T]) -> Callable[Concatenate[_S, P], T]:
    """A method decorated with `transient_retry` whose retries end once its object's
    `retries_stop_on()` event is set (`stoppable`): a request already sent still gets its
    answer; then, or for a call made after the stop, `RetriesStopped`. Put it above
    `transient_retry`. The stoppable call is built once per object and method (built per
    request it cost about 8 µs each) and kept in the object's `_stoppable_calls`."""
    return _stoppable_method(method, first_try_kept=False)


def first_try_kept(method: Callable[Concatenate[_S, P], T]) -> Callable[Concatenate[_S, P], T]:
    """`until_stopped` for a write that settles work already done (a blob upload's complete
    or abort): after the stop its retries are refused but its first try is still made
    (`stoppable(first_try_kept=True)`)."""
    return _stoppable_method(method, first_try_kept=True)


def _stoppable_method(
    method: Callable[Concatenate[_S, P], T], *, first_try_kept: bool
) -> Callable[Concatenate[_S, P], T]:
    @functools.wraps(method)
    def call(self: _S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        built = cast("Callable[Concatenate[_S, P], T] | None", self._stoppable_calls.get(method))
        if built is None:
            built = stoppable(method, self.retries_stop_on(), first_try_kept=first_try_kept)
            self._stoppable_calls[method] = built
        return built(self, *args, **kwargs)

    return call


def _said_retrying(max_delay_s: float) -> Callable[[RetryCallState], None]:
    """Tell the log that a store call is being retried, so the minute and a half before
    `StoreUnavailable` is not silence: at the 1st, 2nd, 4th, 8th ... retry of a call (about five
    lines in those 90 s, however many calls are in flight)."""

    def said(state: RetryCallState) -> None:
        attempt = state.attempt_number
        if attempt & (attempt - 1):
            return
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "object store call failed, retrying",
            call=getattr(state.fn, "__qualname__", "?"),
            attempt=attempt,
            retrying_for_s=round(state.seconds_since_start or 0.0, 1),
            gives_up_after_s=max_delay_s,
            error=_cause(error) if error is not None else "",
        )

    return said


class StoreRefused(errors.UserError):
    """A store answered with a refusal that does not pass by itself (403, no such bucket, keys it
    does not know, no keys at all, a TLS certificate that does not verify): not retried."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"object store {store} refused: {reason}")
        self.store = store
        self.reason = reason


def _cause(error: BaseException) -> str:
    return str(error) if isinstance(error, ClientError | BotoCoreError) else repr(error)


def unavailable(store: str, error: BaseException, *, doing: str = "") -> errors.StoreUnavailable:
    """Our error for a store that kept failing; callers `raise unavailable(...) from error`."""
    reason = f"{doing}: {_cause(error)}" if doing else _cause(error)
    return errors.StoreUnavailable(store, reason)


def translate(store: str, doing: str, error: BaseException) -> BaseException:
    """Our error for an S3 failure the retries did not cure; anything else (our own errors, a
    bug) is returned unchanged."""
    if isinstance(error, S3UploadFailedError) and error.__context__ is not None:
        # boto3's managed upload raises the ClientError it got as this, kept as the context.
        ours = translate(store, doing, error.__context__)
        return error if ours is error.__context__ else ours
    if is_transient(error):
        return unavailable(store, error, doing=doing)
    if is_certificate_failure(error) or isinstance(
        error, ClientError | NoCredentialsError | PartialCredentialsError
    ):
        return StoreRefused(store, f"{doing}: {_cause(error)}")
    return error


@contextlib.contextmanager
def translated(
    store: str, doing: str, *, keep: Callable[[BaseException], bool] | None = None
) -> Iterator[None]:
    """Raise our error (`translate`) for an S3 failure in the block, except those `keep` says
    the caller answers itself (e.g. `is_precondition_failed` around a conditional write)."""
    try:
        yield
    except Exception as error:
        ours = error if keep is not None and keep(error) else translate(store, doing, error)
        if ours is error:
            raise
        raise ours from error
