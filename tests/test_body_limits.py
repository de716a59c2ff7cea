"""Request size limits (issue 13 item 5): a body over the limit is refused with a JSON 413 before it is
read, by waitress (as the service runs) and by the app itself (any other server); a header block over
waitress's limit is a JSON 431."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from support import ApiServer

from linkpix.web.guards import body_limit

MIB = 1024 * 1024


@pytest.fixture
def small(project, simulator) -> Iterator[ApiServer]:
    """max_upload_mb = 1: bodies up to 1 MiB of image as base64 plus 1 MiB of framing, ~2.3 MiB."""
    server = ApiServer(project, simulator.url, max_upload_mb=1)
    try:
        yield server
    finally:
        server.close()


def _connect(server: ApiServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_300_mb_upload_is_a_413_before_its_body_is_sent(api):
    sock = _connect(api)
    started = time.monotonic()
    try:
        sock.sendall(b"POST /uploads HTTP/1.1\r\nHost: linkpix\r\nContent-Type: image/png\r\n"
                     b"Content-Length: %d\r\n\r\n" % (300 * MIB))
        status, headers, body = _response(sock)  # not one byte of the body was sent
    finally:
        sock.close()
    assert status == 413 and headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["error"] == "payload_too_large" and "max_upload_mb" in error["message"]
    assert time.monotonic() - started < 2


def test_a_chunked_body_is_cut_off_at_the_limit(small):
    limit = body_limit(small.services.config.settings)
    sock = _connect(small)
    sent = 0
    try:
        sock.sendall(b"POST /uploads HTTP/1.1\r\nHost: linkpix\r\nContent-Type: image/png\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (MIB, b"\0" * MIB)
        try:
            while sent < 10 * limit:
                sock.sendall(chunk)
                sent += MIB
        except OSError:  # the server answered and closed while we were still sending
            pass
        status, _, body = _response(sock)
    finally:
        sock.close()
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    assert sent < 10 * limit


def test_a_body_of_exactly_the_limit_reaches_the_app(small):
    limit = body_limit(small.services.config.settings)
    head = b'{"prompt": "fox", "negative": "'
    body = head + b"n" * (limit - len(head) - 2) + b'"}'
    assert len(body) == limit
    sock = _connect(small)
    try:
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: linkpix\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % limit + body)
        status, _, answer = _response(sock)
    finally:
        sock.close()
    assert status == 400 and "negative_prompt" in json.loads(answer)["message"]  # read, and judged by the app


def test_the_app_refuses_an_oversized_body_before_reading_it_under_any_server(small):
    client = small.app.test_client()
    limit = body_limit(small.services.config.settings)
    r = client.post("/generate", data=b"{" + b" " * limit + b"}", content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large"
    assert str(limit) in r.get_json()["message"]


def test_an_oversized_header_block_is_a_json_431(api):
    sock = _connect(api)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: linkpix\r\nX-Junk: " + b"j" * 300_000 + b"\r\n\r\n")
        status, headers, body = _response(sock)
    finally:
        sock.close()
    assert status == 431 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "headers_too_large", "details": None,
                                "message": "the request's header block (request line and headers) is larger "
                                           "than 262144 bytes"}
