"""The fault proxy forwards, slows, cuts and throttles as the reliability tests need."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy, Mode

BODY = b"x" * 200_000


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ("127.0.0.1", server.server_address[1])
    server.shutdown()


def fetch(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def test_pass_mode_forwards_every_byte(upstream: tuple[str, int]) -> None:
    with FaultProxy(upstream) as proxy:
        assert fetch(proxy.url) == BODY
        assert proxy.stats.bytes_down >= len(BODY)


def test_http503_mode_answers_slow_down_like_a_throttling_store(upstream: tuple[str, int]) -> None:
    with FaultProxy(upstream) as proxy:
        proxy.set_mode(Mode.HTTP_503)
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(proxy.url)
        assert caught.value.code == 503
        proxy.set_mode(Mode.PASS)
        assert fetch(proxy.url) == BODY


def test_reset_mode_refuses_connections_until_switched_back(upstream: tuple[str, int]) -> None:
    with FaultProxy(upstream) as proxy:
        proxy.set_mode(Mode.RESET)
        with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
            fetch(proxy.url)
        proxy.set_mode(Mode.PASS)
        assert fetch(proxy.url) == BODY


def test_blackhole_mode_makes_a_client_time_out(upstream: tuple[str, int]) -> None:
    with FaultProxy(upstream) as proxy:
        proxy.set_mode(Mode.BLACKHOLE)
        with pytest.raises((TimeoutError, urllib.error.URLError, OSError)):
            fetch(proxy.url, timeout=0.5)


def test_slow_mode_limits_the_rate_it_forwards_at(upstream: tuple[str, int]) -> None:
    with FaultProxy(upstream) as proxy:
        proxy.set_mode(Mode.SLOW, bytes_per_s=10_000_000)
        assert fetch(proxy.url) == BODY  # slower, still complete
