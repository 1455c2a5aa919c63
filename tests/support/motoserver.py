"""moto's AWS server in this process, on a free 127.0.0.1 port: for the AWS-shaped APIs whose
real service is out of reach here (the EC2 price endpoints) and for the HTTP details of the
lean S3 path that do not depend on which S3 server answers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.configs import free_port


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """The server's URL while the block runs."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
