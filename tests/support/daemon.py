"""`federator run` as a process the fault suite can start, signal, kill -9 and read from.

Each `Daemon` writes its stdout+stderr (JSON log lines when not on a terminal) to its own file,
serves HTTP on the port its policy copy names, and is always stopped (SIGKILL if needed) when
the test ends, so no scenario leaves a federator behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.configs import REPO

FEDERATOR = REPO / ".venv" / "bin" / "federator"


class Daemon:
    def __init__(self, config: Path, log: Path, *args: str) -> None:
        self.config = config
        self.log_path = log
        self.args = args
        settings = yaml.safe_load(config.read_text())
        self.port: int = settings["server"]["port"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [str(FEDERATOR), "run", "--config", str(self.config), *self.args],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    # ---- what it says ---------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                events.append(parsed)
        return events

    def get(self, path: str, timeout_s: float = 3.0) -> tuple[int, str]:
        return request(f"http://127.0.0.1:{self.port}{path}", "GET", timeout_s=timeout_s)

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample of /metrics, or None when absent or not answering."""
        try:
            status, text = self.get("/metrics")
        except OSError:
            return None
        if status != 200:
            return None
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            if metric != name:
                continue
            got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
            if got == wanted:
                return float(value)
        return None


def request(
    url: str, method: str, *, timeout_s: float = 3.0, body: bytes | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=body)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_until(check: Any, *, timeout_s: float, what: str, interval_s: float = 0.5) -> float:
    """Poll `check()` until truthy; return the seconds it took; fail at the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@contextmanager
def daemons(*started: Daemon) -> Iterator[tuple[Daemon, ...]]:
    """Start the daemons; kill whatever is still running when the block ends."""
    try:
        for daemon in started:
            daemon.start()
        yield started
    finally:
        for daemon in started:
            daemon.kill()
