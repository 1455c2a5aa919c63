"""Credentials never reach a log line, whichever path they take (issue 9, security)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from federator import errors, logs

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SA_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQyJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXBhcnQ"
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk\n"
    "-----END EC PRIVATE KEY-----"
)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure(json=True, level="INFO", stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_values_under_credential_keys_are_replaced(output: io.StringIO) -> None:
    """Keys named like secrets are masked however they are spelled, nested or not."""
    structlog.get_logger("t").info(
        "store_opened",
        secret_access_key="plain-but-secret",
        Authorization="Bearer abc.def",
        store={"endpoint": "http://127.0.0.1:18310", "client-key-data": "LS0tLS1CRUdJTg=="},
        password="hunter2",
    )
    (line,) = lines(output)
    assert line["secret_access_key"] == logs.REDACTED
    assert line["Authorization"] == logs.REDACTED
    assert line["password"] == logs.REDACTED
    assert line["store"] == {"endpoint": "http://127.0.0.1:18310", "client-key-data": logs.REDACTED}


def test_credential_shapes_are_masked_inside_free_text(output: io.StringIO) -> None:
    """AWS keys, JWTs and PEM blocks are masked even under an innocent key name."""
    structlog.get_logger("t").info(
        "note", detail=f"id {AWS_KEY_ID} key {AWS_SECRET} token {SA_TOKEN} pem {PEM} end"
    )
    text = output.getvalue()
    for secret in (AWS_SECRET, AWS_KEY_ID, SA_TOKEN, "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk"):
        assert secret not in text
    assert lines(output)[0]["detail"].endswith(" end")  # type: ignore[union-attr]


def test_hex_digests_of_forty_characters_are_kept(output: io.StringIO) -> None:
    """A sha1 or git commit is not mistaken for an AWS secret key."""
    digest = "0123456789abcdef0123456789abcdef01234567"
    structlog.get_logger("t").info("object_copied", sha1=digest)
    assert lines(output)[0]["sha1"] == digest


def test_stdlib_library_records_go_through_the_same_redaction(output: io.StringIO) -> None:
    """botocore-style header dumps from stdlib logging are rendered as JSON and masked."""
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/x, Signature=ab12cd34ef567890ab"
    }
    logging.getLogger("botocore.endpoint").warning("sending %s", headers)
    (line,) = lines(output)
    assert line["logger"] == "botocore.endpoint"
    assert line["level"] == "warning"
    assert AWS_KEY_ID not in output.getvalue()
    assert "ab12cd34ef567890ab" not in output.getvalue()


def test_exception_messages_are_masked(output: io.StringIO) -> None:
    """A traceback whose message quotes a credential is masked after formatting."""
    try:
        raise ValueError(f"bad key {AWS_SECRET}")
    except ValueError:
        structlog.get_logger("t").exception("store_failed")
    (line,) = lines(output)
    assert AWS_SECRET not in output.getvalue()
    assert "ValueError" in str(line["exception"])


def test_registered_secrets_are_masked_whatever_their_shape(output: io.StringIO) -> None:
    """A sandbox credential in hex (no recognisable shape) is masked once registered."""
    secret = "3f9a0c1d2e4b5a6978f0e1d2c3b4a596"
    logs.register_secrets([secret, "short"])
    structlog.get_logger("t").info("connected", url=f"http://x/?k={secret}", note="short is kept")
    assert secret not in output.getvalue()
    assert lines(output)[0]["note"] == "short is kept"


def test_contextvars_are_merged_into_every_line(output: io.StringIO) -> None:
    """Binding a job at the top of a unit of work puts it on every line below."""
    with structlog.contextvars.bound_contextvars(job="team-a/train-1"):
        structlog.get_logger("t").info("job_placed", cluster="cloud-a")
    assert lines(output)[0]["job"] == "team-a/train-1"


def test_console_output_is_used_when_json_is_off() -> None:
    """json=False renders key=value text, still masked."""
    stream = io.StringIO()
    logs.configure(json=False, level="INFO", stream=stream)
    try:
        structlog.get_logger("t").info("hello", token="abc-secret-value")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "hello" in text
    assert "abc-secret-value" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_lines_below_the_level_are_dropped(output: io.StringIO) -> None:
    """configure(level="INFO") drops debug lines from us and from libraries."""
    structlog.get_logger("t").debug("noise")
    logging.getLogger("urllib3").info("pool noise")
    assert output.getvalue() == ""


def test_an_unknown_level_is_a_user_error() -> None:
    """A typo in --log-level is reported with the accepted names, not a traceback."""
    with pytest.raises(errors.UserError, match="DEBUG, INFO"):
        logs.configure(json=True, level="LOUD")
