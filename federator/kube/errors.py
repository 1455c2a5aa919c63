"""Kubernetes API errors translated into the few reasons federator's callers handle.

The client library's `ApiException` never leaves `federator.kube`: a caller catches `Conflict`
(a resourceVersion precondition failed: re-read and decide again), `NotFound`, `AlreadyExists`,
or `errors.ClusterUnavailable` (network failure or a 5xx: the cluster is marked down and the
call retried later; a 401 is `errors.CredentialsRefused`, an outage until the kubeconfig is
fixed). Anything else (403, 422) is a real refusal and propagates as `Refused`.
"""

from __future__ import annotations

import asyncio

import aiohttp
from kubernetes_asyncio.client.rest import ApiException

from federator import errors


class KubeError(errors.FederatorError):
    """An apiserver refused a request for a reason the caller may handle."""

    def __init__(self, cluster: str, status: int, reason: str) -> None:
        super().__init__(f"{cluster}: {status} {reason}")
        self.cluster = cluster
        self.status = status
        self.reason = reason


class Conflict(KubeError):
    """409 on update: the object changed since we read it (our precondition failed)."""


class AlreadyExists(KubeError):
    """409 on create: an object with that name exists."""


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; relist."""


class Refused(KubeError):
    """Any other 4xx: forbidden, invalid. Not retried."""


# Transport failures that mean "the cluster did not answer": retried, cluster marked down.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


def translate(cluster: str, error: BaseException, *, creating: bool = False) -> Exception:
    """The federator error for a client-library or transport error (raise it `from error`)."""
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        reason = str(error.reason or "")
        if status == 409:
            return (
                AlreadyExists(cluster, status, reason)
                if creating
                else Conflict(cluster, status, reason)
            )
        if status == 404:
            return NotFound(cluster, status, reason)
        if status == 410:
            return Gone(cluster, status, reason)
        if status == 401:
            return errors.CredentialsRefused(cluster, f"{status} {reason}")
        if status >= 500 or status in (0, 429):
            return errors.ClusterUnavailable(cluster, f"{status} {reason}")
        return Refused(cluster, status, reason)
    if isinstance(error, TRANSPORT_ERRORS):
        return errors.ClusterUnavailable(cluster, f"{type(error).__name__}: {error}")
    return error if isinstance(error, Exception) else RuntimeError(str(error))
