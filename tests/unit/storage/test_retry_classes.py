"""Which S3 failures are retried, and that the lean path's errors classify like boto3's."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs
from tenacity import wait_none

from federator.storage import retrying
from federator.storage.leanpath import LeanS3, _client_error


def error_body(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>why</Message></Error>".encode()


@pytest.mark.parametrize(
    ("status", "code", "transient", "precondition", "not_found"),
    [
        pytest.param(503, "SlowDown", True, False, False, id="slow down"),
        pytest.param(500, "InternalError", True, False, False, id="server error"),
        pytest.param(409, "ConditionalRequestConflict", True, False, False, id="write race"),
        pytest.param(412, "PreconditionFailed", False, True, False, id="source changed"),
        pytest.param(404, "NoSuchKey", False, False, True, id="gone"),
        pytest.param(403, "AccessDenied", False, False, False, id="denied"),
    ],
)
def test_lean_errors_are_classified_like_boto3_errors(
    status: int, code: str, transient: bool, precondition: bool, not_found: bool
) -> None:
    error = _client_error(status, error_body(code), "GetObject")
    assert isinstance(error, ClientError)
    assert retrying.error_code(error) == code
    assert retrying.is_transient(error) is transient
    assert retrying.is_precondition_failed(error) is precondition
    assert retrying.is_not_found(error) is not_found


def test_a_refused_connection_is_transient() -> None:
    assert retrying.is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


def test_an_error_without_a_body_still_carries_its_status() -> None:
    error = _client_error(502, b"", "PutObject")
    assert retrying.http_status(error) == 502
    assert retrying.is_transient(error)


@pytest.mark.parametrize(
    ("key", "plain"),
    [("data/shard-0001.tar", True), ("a=b/c~d", True), ("with space", False), ("ü", False)],
)
def test_only_plain_keys_take_the_lean_path(key: str, plain: bool) -> None:
    assert LeanS3.plain(key) is plain


def test_a_retried_store_call_is_told_in_the_log_at_the_1st_2nd_4th_and_8th_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = iter(range(9))

    @retrying.transient_retry()
    def read_object() -> str:
        if next(failures, None) is not None:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/bucket")
        return "body"

    monkeypatch.setattr(vars(read_object)["retry"], "wait", wait_none())
    with capture_logs() as logs:
        assert read_object() == "body"
    told = [entry for entry in logs if entry["event"] == "object store call failed, retrying"]
    assert [entry["attempt"] for entry in told] == [1, 2, 4, 8]
    assert all(entry["log_level"] == "warning" for entry in told)
    assert told[0]["call"].endswith("read_object")
    assert told[0]["gives_up_after_s"] == 90.0
    assert "http://127.0.0.1:1/bucket" in told[0]["error"]


def test_an_answer_that_is_not_retried_is_not_told_as_a_retry() -> None:
    @retrying.transient_retry()
    def read_object() -> str:
        raise ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject")

    with capture_logs() as logs, pytest.raises(ClientError):
        read_object()
    assert logs == []
