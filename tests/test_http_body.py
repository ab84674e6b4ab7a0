"""resources/http_body.py: a response whose body was read by `read_body` is freed by refcounting
as soon as it is dropped, with the cyclic collector off; one read by httpx alone is not (the
cycle `read_body` breaks). A compressed body comes back decoded, as `content` gives it. A real
HTTP server on 127.0.0.1, no vendor."""

import gc
import gzip
import http.server
import threading
import weakref
from collections.abc import Iterator

import httpx
import pytest

from resources.http_body import read_body

BODY = b'[{"id": 1}]' * 1000


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Supabase's edge compresses what the client accepts: the path asks for it here
        zipped = self.path == "/gzip"
        body = gzip.compress(BODY) if zipped else BODY
        self.send_response(200)
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def _dropped(url: str, read: bool, path: str = "") -> weakref.ref[httpx.Response]:
    with httpx.Client() as client:
        response = client.get(url + path)
        body = read_body(response) if read else response.content
        assert body == BODY and response.status_code == 200 and response.content == BODY
        return weakref.ref(response)


def test_given_a_body_read_by_read_body_when_dropped_then_freed_without_the_cyclic_collector(
    url: str,
) -> None:
    gc.collect()
    gc.disable()
    try:
        assert _dropped(url, read=True)() is None
        assert _dropped(url, read=True, path="gzip")() is None
        assert _dropped(url, read=False)() is not None
    finally:
        gc.enable()
        gc.collect()
