"""Unit-test isolation for process-wide logging state.

`federator.logs.configure` (called by the CLI commands several tests run) replaces the root
logger's handler with one bound to the `sys.stdout` of that moment, which under pytest is the
capture of the test that ran it. Later tests that read their own captured output (`capsys`)
then found nothing, so whether they passed depended on which tests ran before them. Each test
now gets back the logging set-up it started with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)
