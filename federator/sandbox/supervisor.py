"""Start and stop the sandbox's server processes by process id, never by name.

Each server runs in its own session (so its process group can be signalled as a whole and it
outlives the `federator sandbox up` that started it), writes to its own log file, and is
recorded in `.sandbox/state.json`. A recorded PID only counts as ours while
`/proc/<pid>/cmdline` still starts with the program we launched, which guards against PID
reuse after a reboot or a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one server: the argv, extra environment, and where its log goes."""

    site: str
    component: str
    argv: tuple[str, ...]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.component}"

    @property
    def fingerprint(self) -> str:
        """Changes whenever the command line or environment does (then `up` restarts it)."""
        text = json.dumps([list(self.argv), sorted(self.env.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Running:
    """A process we started and recorded."""

    key: str
    pid: int
    program: str
    log: str
    started_at: float
    fingerprint: str = ""


class StateFile:
    """The record of running processes, `.sandbox/state.json` (rewritten atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Running]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        return {key: Running(key=key, **entry) for key, entry in raw.items()}

    def save(self, entries: Mapping[str, Running]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = {
            key: {
                "pid": r.pid,
                "program": r.program,
                "log": r.log,
                "started_at": r.started_at,
                "fingerprint": r.fingerprint,
            }
            for key, r in sorted(entries.items())
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, indent=2) + "\n")
        tmp.replace(self.path)

    def put(self, running: Running) -> None:
        entries = self.load()
        entries[running.key] = running
        self.save(entries)

    def drop(self, key: str) -> None:
        entries = self.load()
        if entries.pop(key, None) is not None:
            self.save(entries)


def is_alive(running: Running) -> bool:
    """True while the recorded PID is still the program we started (and not a zombie)."""
    proc = Path(f"/proc/{running.pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state == "Z":
        return False
    if cmdline == [b""]:
        # Right after Popen returns the kernel may still be finishing the exec, and the new
        # program's argv is not visible yet: the process exists and is ours.
        return True
    return cmdline[0].decode(errors="replace") == running.program


def start(spec: ProcessSpec) -> Running:
    """Launch `spec` in a new session, appending to its log; returns once the process exists."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    with spec.log.open("ab") as log:
        log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(spec.argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env},
            cwd=spec.cwd,
            start_new_session=True,
            close_fds=True,
        )
    return Running(
        key=spec.key,
        pid=process.pid,
        program=spec.argv[0],
        log=str(spec.log),
        started_at=time.time(),
        fingerprint=spec.fingerprint,
    )


def stop(running: Running, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM the process group, wait up to `grace_s`, then SIGKILL. True if it was running."""
    if not is_alive(running):
        return False
    _signal_group(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(running.pid)
        if not is_alive(running):
            return True
        time.sleep(0.1)
    _signal_group(running.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and is_alive(running):
        _reap(running.pid)
        time.sleep(0.05)
    return True


def stop_all(entries: Sequence[Running], grace_s: float = STOP_GRACE_S) -> list[str]:
    """Stop several processes concurrently (SIGTERM all, then wait), returns keys stopped."""
    alive = [r for r in entries if is_alive(r)]
    for running in alive:
        _signal_group(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(r) for r in alive):
        for running in alive:
            _reap(running.pid)
        time.sleep(0.1)
    for running in alive:
        if is_alive(running):
            _signal_group(running.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(is_alive(r) for r in alive):
        for running in alive:
            _reap(running.pid)
        time.sleep(0.05)
    return [r.key for r in alive]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each server leads its own session/process group (start_new_session), so signalling the
    # group also reaches any helper it forked; fall back to the PID if the group is gone.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (started in this Python)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path | str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log, for error messages."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def listening_ports(ports: Mapping[str, int]) -> dict[str, int]:
    """Which of `ports` have a listener on any local address (read from /proc/net/tcp*)."""
    wanted = {port: name for name, port in ports.items()}
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A = LISTEN
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                found[wanted[port]] = port
    return found


def port_holders(ports: Sequence[int]) -> dict[int, str]:
    """For each listening port in `ports`, "pid N: command line" of the process holding it.

    Read from /proc (socket inode -> /proc/<pid>/fd), so a clash message can say who is in the
    way; processes of other users may be unreadable and are then reported as unknown.
    """
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if port in ports:
                    inodes[f"socket:[{fields[9]}]"] = port
    holders = dict.fromkeys(inodes.values(), "unknown process")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not inodes:
            continue
        try:
            targets = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for target in targets & inodes.keys():
            holders[inodes[target]] = f"pid {proc.name}: {cmdline.strip()[:160]}"
    return holders
