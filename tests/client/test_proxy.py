"""HTTP_PROXY / NO_PROXY are honoured: requests go through a real forward proxy on 127.0.0.1."""

from __future__ import annotations

import http.client
import http.server
import threading
from typing import ClassVar
from urllib.parse import urlsplit

import pytest

from djarchive_client import client


class ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A minimal forward proxy for plain-http GET/HEAD requests (absolute URIs)."""

    seen: ClassVar[list[str]] = []

    def _forward(self) -> None:
        url = urlsplit(self.path)
        self.seen.append(self.path)
        upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")
        }
        upstream.request(self.command, url.path + (f"?{url.query}" if url.query else ""), headers=headers)
        response = upstream.getresponse()
        body = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        upstream.close()

    do_GET = _forward
    do_HEAD = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ForwardProxy)
    ForwardProxy.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    yield ForwardProxy.seen
    server.shutdown()
    server.server_close()


def test_download_through_http_proxy(archive, seed_files, proxy, tmp_path):
    archive.publish("some-set", "000", seed_files)
    assert list(client().datasets()) == ["some-set"]
    client().download("some-set", "000", tmp_path / "t", create_target=True)
    assert (tmp_path / "t" / "sub" / "dir" / "dir.dat").read_bytes() == seed_files["sub/dir/dir.dat"]
    assert any("djarchive-manifest.csv" in url for url in proxy)
    assert sum("/some-set/000/" in url for url in proxy) >= len(seed_files)


def test_no_proxy_exempts_the_endpoint(archive, seed_files, proxy, monkeypatch):
    archive.publish("some-set", "000", seed_files)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert list(client().datasets()) == ["some-set"]
    assert proxy == []
