"""Reading a live link's multipart/x-mixed-replace answer over a real socket, part by part, with arrival times."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.time() when its closing boundary arrived

    @property
    def kind(self) -> str:
        return self.headers.get("x-linkpix-part", "")


@dataclass
class LiveAnswer:
    status: int
    headers: dict[str, str]
    parts: list[Part]
    raw_body: bytes
    started: float


def _head(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, rest


def get_live(url: str, accept: str = "image/*", timeout: float = 60.0, stop_after: int | None = None) -> LiveAnswer:
    """GET `url` with HTTP/1.1 on a plain socket and read until the server closes (or `stop_after` parts
    arrived: then the viewer leaves, closing its socket)."""
    parts_of = urlsplit(url)
    started = time.time()
    sock = socket.create_connection((parts_of.hostname, parts_of.port), timeout=timeout)
    target = parts_of.path + ("?" + parts_of.query if parts_of.query else "")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts_of.netloc}\r\nAccept: {accept}\r\n\r\n".encode())
    buf = b""
    status, headers, body = 0, {}, b""
    parts: list[Part] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if not status and b"\r\n\r\n" in buf:
                status, headers, body = _head(buf)
            elif status:
                body += chunk
            if status and "content-length" in headers and len(body) >= int(headers["content-length"]):
                break  # a plain answer on a kept-open connection
            if status and "boundary=" in headers.get("content-type", ""):
                data = dechunk(body) if headers.get("transfer-encoding") == "chunked" else body
                boundary = headers["content-type"].split("boundary=", 1)[1]
                parts = split_parts(data, boundary, parts)
                if data.endswith(f"--{boundary}--\r\n".encode()) and "transfer-encoding" in headers:
                    if body.endswith(b"0\r\n\r\n"):
                        break  # a streamed body on a kept-open connection: its last chunk came
                if stop_after is not None and len(parts) >= stop_after:
                    break
    finally:
        sock.close()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return LiveAnswer(status, headers, parts, body, started)


def dechunk(raw: bytes) -> bytes:
    """The data of the complete chunks in `raw` (HTTP/1.1 chunked transfer coding)."""
    out, pos = b"", 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return out
        size = int(raw[pos:end].split(b";")[0] or b"0", 16)
        if size == 0 or end + 2 + size + 2 > len(raw):
            return out
        out += raw[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


def split_parts(body: bytes, boundary: str, known: list[Part]) -> list[Part]:
    """The complete parts in `body` (a part is complete when the boundary after it arrived); parts already
    in `known` keep their arrival times."""
    marker = b"--" + boundary.encode()
    if len(body) < len(marker):
        return list(known)
    pieces = body.split(b"\r\n" + marker)
    first = pieces[0]
    assert first.startswith(marker), first[:40]
    pieces[0] = first[len(marker):]
    out = list(known)
    complete = pieces[:-1]  # the last piece has no closing boundary yet (or is "--\r\n")
    for index, piece in enumerate(complete):
        if index < len(known):
            continue
        piece = piece[2:] if piece.startswith(b"\r\n") else piece
        head, _, data = piece.partition(b"\r\n\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in head.decode("latin-1").split("\r\n") if line)}
        length = int(headers.get("content-length", len(data)))
        out.append(Part(headers, data[:length], time.time()))
    return out
