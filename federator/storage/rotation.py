"""Object-store keys that follow a rotated credentials file while the daemon runs.

An operator rotates a store's keys by rewriting the credentials file (or the Secret mounted as
that file); the daemon must sign its next requests with the new keys without a restart.

Why botocore's `RefreshableCredentials` rather than rebuilding clients when the file changes:
a boto3 client takes a frozen (access key, secret, token) snapshot from its credentials object
for every request it signs, so one long-lived client - its connection pool shared by every copy
thread, copier and registry - signs with the new keys as soon as the object refreshes. Rebuilding
clients would mean finding and swapping every holder of the old client mid-transfer. botocore
also does the hard parts: one thread refreshes while the others keep signing with the current
keys, and the frozen snapshot never mixes one generation's key id with the next one's secret.

How it is tuned: the keys are re-read at most every `REREAD_EVERY_S` seconds, inside botocore's
*advisory* refresh window. A read that fails there (a file caught half-written by the rotation,
a permission glitch) keeps the current keys and is tried again at the next request; only keys
left unreadable for `_HORIZON_S` reach the *mandatory* window, where requests fail loudly
instead of signing with keys that may have been revoked long ago.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from botocore.credentials import RefreshableCredentials

from federator.policy.credentials import S3Credentials

REREAD_EVERY_S = 10.0  # how stale a rotated key may be before requests use the new one
_HORIZON_S = 3600  # an unreadable credentials source for this long fails requests
METHOD = "federator-rotating-file"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def rotating_credentials(
    load: Callable[[], S3Credentials],
    *,
    every_s: float = REREAD_EVERY_S,
    now: Callable[[], datetime] = _utc_now,
) -> RefreshableCredentials:
    """Credentials that call `load` again every `every_s` seconds (first call: now).

    `load` raises when the source cannot be read; the first call's error reaches the caller
    (the store cannot be used at all), later ones keep the current keys (see the docstring).
    """

    def fetch() -> dict[str, str | None]:
        keys = load()
        expiry = now() + timedelta(seconds=_HORIZON_S + every_s)
        return {
            "access_key": keys.access_key_id,
            "secret_key": keys.secret_access_key,
            "token": keys.session_token,
            "expiry_time": expiry.isoformat(),
        }

    first = load()
    return RefreshableCredentials(
        access_key=first.access_key_id,
        secret_key=first.secret_access_key,
        token=first.session_token,  # type: ignore[arg-type]  # botocore accepts None
        expiry_time=now() + timedelta(seconds=_HORIZON_S + every_s),
        refresh_using=fetch,
        method=METHOD,
        time_fetcher=now,
        advisory_timeout=int(_HORIZON_S),
        mandatory_timeout=0,
    )
