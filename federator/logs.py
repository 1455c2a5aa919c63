"""One logging pipeline for federator and the libraries it uses, which never writes a credential.

structlog events and stdlib records (aiohttp, kubernetes_asyncio, botocore, urllib3 …) go through
the same processors and one stdout handler: JSON lines when stdout is not a terminal (in a
container, for the log collector), coloured key=value lines on a terminal.

Credentials are removed in the last step before rendering, so every source is covered, the
libraries' own records included:

* a value whose key looks like a credential (`secret`, `password`, `token`, `authorization`,
  `access_key`, `private_key`, `key_data`, `credential`, …) is replaced by `"[REDACTED]"`;
* inside any string, PEM blocks, bearer tokens, JWTs (service-account tokens), AWS request
  signatures, AWS access-key ids and strings shaped like AWS secret access keys are masked;
* values registered with `register_secrets()` (the daemon registers every credential it loads)
  are masked wherever they appear, whatever their shape.

Tests may keep using `structlog.testing.capture_logs()`; loggers are not cached for that reason
(and because federator logs a few lines per decision, not per request, caching buys nothing).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from federator import errors

REDACTED = "[REDACTED]"

# Key fragments, compared after lower-casing and turning "-" into "_" ("client-key-data").
_SENSITIVE_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "authorization",
    "access_key",
    "accesskey",
    "private_key",
    "key_data",
    "credential",
    "cookie",
    "api_key",
    "apikey",
    "signature",
)

_B64 = r"A-Za-z0-9/+="
_VALUE_PATTERNS = (
    # PEM blocks: private keys, certificates from kubeconfigs (whole block, multi-line).
    re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL),
    # JWTs: Kubernetes service-account tokens and OIDC tokens.
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # "Authorization: Bearer …" / "Basic …" in headers that libraries print.
    re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # SigV4: "Credential=AKIA…/…, SignedHeaders=…, Signature=<hex>" and presigned URLs.
    re.compile(r"(?i)(?:x-amz-)?signature=[0-9a-f]{16,}"),
    re.compile(r"(?i)x-amz-security-token=[^&\s\"']+"),
    # AWS access key ids (AKIA… long-term, ASIA… temporary).
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
)
# "password=…", "'secret_access_key': '…'", "Authorization: …" inside free text (a library that
# prints a dict or a header line): keep the key, mask the value.
_KEY_PART_ALTERNATIVES = "|".join(_SENSITIVE_KEY_PARTS).replace("_", "[_-]?")
_KEY_VALUE_IN_TEXT = re.compile(
    rf"(?i)(?P<key>[\w-]*(?:{_KEY_PART_ALTERNATIVES})[\w-]*[\"']?\s*[:=]\s*)"
    rf"(?!\[REDACTED\])(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&)}}\]]+)"
)
# 40 base64 characters, as AWS secret access keys are; checked by `_looks_like_aws_secret`
# so that 40-character hex digests (sha1, git commits, ETags) are left alone.
_AWS_SECRET_CANDIDATE = re.compile(rf"(?<![{_B64}])[{_B64}]{{40}}(?![{_B64}])")

_THIRD_PARTY_LOGGERS = (
    "aiohttp",
    "kubernetes_asyncio",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
)

_registered_secrets: set[str] = set()
_registered_lock = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact values wherever they appear in a log line from now on.

    The composition root calls this with every credential it loads (S3 keys, tokens), so a
    secret leaks into no log even when a library prints it under an innocent name.
    Values shorter than 8 characters are ignored: masking them would shred ordinary text.
    """
    with _registered_lock:
        _registered_secrets.update(value for value in values if len(value) >= 8)


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: drop credential values by key name and by shape, recursively."""
    return {key: _redact_item(key, value) for key, value in event_dict.items()}


def _redact_item(key: object, value: Any) -> Any:
    if isinstance(key, str) and _is_sensitive_key(key) and value not in (None, ""):
        return REDACTED
    return _redact_value(value)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    return value


def _is_sensitive_key(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return any(part in normalised for part in _SENSITIVE_KEY_PARTS)


def redact_text(text: str) -> str:
    """Mask every credential-shaped substring of `text` (see the module docstring)."""
    with _registered_lock:
        secrets = sorted(_registered_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _KEY_VALUE_IN_TEXT.sub(_mask_value_keep_key, text)
    return _AWS_SECRET_CANDIDATE.sub(_mask_if_aws_secret, text)


def _mask_value_keep_key(match: re.Match[str]) -> str:
    return f"{match.group('key')}{REDACTED}"


def _mask_if_aws_secret(match: re.Match[str]) -> str:
    candidate = match.group(0)
    return REDACTED if _looks_like_aws_secret(candidate) else candidate


def _looks_like_aws_secret(candidate: str) -> bool:
    # Random base64 of 40 characters almost surely mixes upper case, lower case and digits;
    # hex digests and words do not.
    return (
        any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and any(c.isdigit() or c in "/+" for c in candidate)
    )


def configure(
    json: bool | None = None, level: str = "INFO", *, stream: TextIO | None = None
) -> None:
    """Set up structlog and stdlib logging for the whole process; call once, at start.

    json=None picks JSON when stdout is not a terminal. `level` is a stdlib level name
    ("DEBUG", "INFO", …); an unknown name is a `UserError`. `stream`: where the lines go, stdout
    by default (the daemon's container log); a one-shot command whose stdout is its answer
    (`plan`) passes stderr, and tests pass a buffer.
    """
    numeric_level = _parse_level(level)
    output = stream if stream is not None else sys.stdout
    render_json = not output.isatty() if json is None else json
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                _renderer(render_json),
            ],
        )
    )
    _install_root_handler(handler, numeric_level)


def _parse_level(level: str) -> int:
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise errors.UserError(
            f"log level {level!r} is unknown; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    return numeric


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.UnicodeDecoder(),
    ]


def _renderer(render_json: bool) -> Processor:
    if render_json:
        return structlog.processors.JSONRenderer()
    # Exceptions arrive already formatted as text (and redacted), so print them as they are.
    return structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)


def _install_root_handler(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries are chatty (botocore prints every request, aiohttp.access every scrape): they
    # only show warnings and errors, unless we are debugging.
    library_level = level if level <= logging.DEBUG else max(level, logging.WARNING)
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
