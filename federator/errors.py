"""The errors federator raises on purpose, and what each one means for its caller.

`UserError` and its children are mistakes a person can fix (a bad config file, an unknown
dataset, a broken trace): the CLI prints their message without a traceback and exits 2.
`TransientError` is something that may pass by itself (a cluster or a store not answering):
loops retry it with backoff. Anything else is a bug and is allowed to crash loudly.
"""

from __future__ import annotations


class FederatorError(Exception):
    """Base of every error federator raises on purpose."""


class UserError(FederatorError):
    """A mistake in what a person gave us; the message says where and how to fix it."""

    exit_code = 2


class TransientError(FederatorError):
    """Something outside federator failed in a way that may pass; retry with backoff."""


class ClusterUnavailable(TransientError):
    """A Kubernetes apiserver did not answer or answered with a server-side error."""

    def __init__(self, cluster: str, reason: str) -> None:
        super().__init__(f"cluster {cluster} is unavailable: {reason}")
        self.cluster = cluster
        self.reason = reason


class CredentialsRefused(ClusterUnavailable):
    """The apiserver answered 401: it no longer accepts who we are (a revoked or expired token,
    a rotated certificate).

    An outage of the cluster, not a refusal of one request: every request fails alike until the
    kubeconfig is fixed, which the credential watcher (`federator.kube.rotation`) adopts without
    a restart. So work on that cluster waits as for any outage. Taken as a refusal of the
    request, a copy being placed there counted as lost each pass and its job ran out of
    re-placements before an operator could write the new token.
    """

    status = 401

    def __init__(self, cluster: str, reason: str) -> None:
        super().__init__(cluster, reason)
        # No ":" after "credentials": the log redactor would take the status for its value.
        self.args = (f"cluster {cluster} refused our credentials ({reason})",)


class StoreUnavailable(TransientError):
    """An S3 endpoint did not answer or answered with a server-side error."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"object store {store} is unavailable: {reason}")
        self.store = store
        self.reason = reason
