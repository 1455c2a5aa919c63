"""A private CA and a server certificate for 127.0.0.1 it signed, for tests that need a TLS
server the system's CAs do not trust (an S3 store behind a private CA). The sandbox's own PKI
makes them (`federator.sandbox.pki`), in a directory of the test's.
"""

from __future__ import annotations

from pathlib import Path

from federator.sandbox.pki import Pki
from tests.support.s3server import ServerTls


def make_ca_and_server_cert(directory: Path) -> ServerTls:
    """A CA of our own and a certificate for 127.0.0.1 it signed, as PEM files."""
    pki = Pki(directory)
    pki.ensure_serving()
    return ServerTls(pki.serving.cert, pki.serving.key, pki.ca.cert)
