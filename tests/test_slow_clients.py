"""Slow and idle clients cannot lock the others out (issue 20, Build 4), over real sockets.

A client opening sockets in a loop gets `connections_per_address` of them, the next are refused with
429 at once; a client trickling its request head is cut with 408 after `request_head_timeout`; another
client (another loopback address: Linux routes all of 127/8 to this machine) is answered meanwhile.
The attacker binds 127.0.0.2 as its source address, so the two are different clients to the server.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
from support import ApiServer

from linkpix.run.guard import address_key

ATTACKER = "127.0.0.2"


def _connect(server: ApiServer, source: str = ATTACKER) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server.effective_port), timeout=10, source_address=(source, 0))


def _read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def _link_seconds(server: ApiServer) -> float:
    started = time.monotonic()
    r = requests.get(server.url + "/prompt/a%20quiet%20lake", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/"), r.text[:200]
    return time.monotonic() - started


@pytest.mark.slow
def test_a_thousand_sockets_from_one_address_get_their_cap_and_others_are_served(project, simulator):
    server = ApiServer(project, simulator.url, connections_per_address=50, request_head_timeout=2)
    held: list[socket.socket] = []
    try:
        for _ in range(1000):
            held.append(_connect(server))
        beside = _link_seconds(server)  # another address, while the thousand are open or being refused
        print(f"a link beside 1000 sockets from one address: {beside * 1000:.0f} ms")
        assert beside < 10, beside
        answers = [_read_all(s) for s in held[-20:]]  # the last ones came after the cap: refused at once
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 429 "), answer[:80]
            body = _body(answer)
            assert body["error"] == "too_many_connections" and "50 open connections" in body["message"]
            assert b"Retry-After: 5" in answer
        # the 50 admitted sent nothing: closed without a word once their head was due (2 s + a loop turn)
        assert _read_all(held[0]) == b""
        assert _read_all(held[49]) == b""
        again = _connect(server)  # the address holds nothing now: admitted again, and served
        again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(again).startswith(b"HTTP/1.1 200 ")
        again.close()
    finally:
        for s in held:
            s.close()
        server.close()


@pytest.mark.slow
def test_a_head_trickled_byte_by_byte_is_cut_and_others_are_served(project, simulator):
    server = ApiServer(project, simulator.url, request_head_timeout=2)
    trickler = _connect(server)
    stop = threading.Event()
    sent: list[float] = []

    def trickle() -> None:  # one byte every 0.2 s: waitress alone counts each as activity and waits for ever
        started = time.monotonic()
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            if stop.is_set():
                break
            try:
                trickler.send(bytes([byte]))
            except OSError:
                break
            sent.append(time.monotonic() - started)
            time.sleep(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert _link_seconds(server) < 10
        answer = _read_all(trickler)
        cut_after = sent[-1] if sent else 0.0
        print(f"a trickled head cut after {cut_after:.1f} s ({len(sent)} bytes)")
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        body = _body(answer)
        assert body["error"] == "request_timeout" and "within 2 s" in body["message"]
        assert 1.5 < cut_after < 5, cut_after
    finally:
        stop.set()
        thread.join(5)
        trickler.close()
        server.close()


@pytest.mark.slow
def test_a_slow_but_complete_head_and_a_kept_alive_wait_are_not_cut(project, simulator):
    server = ApiServer(project, simulator.url, request_head_timeout=2, idle_timeout=20)
    sock = _connect(server)
    try:
        for piece in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):  # 1.2 s for the head: in time
            sock.sendall(piece)
            time.sleep(0.6)
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first[:80]
        time.sleep(3.5)  # kept alive past the head deadline: waiting between requests is idle_timeout's
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        sock.close()
        server.close()


def test_trusted_proxies_are_not_capped(project, simulator):
    server = ApiServer(project, simulator.url, connections_per_address=3, trusted_proxies=[ATTACKER])
    held: list[socket.socket] = []
    try:
        for _ in range(6):  # every client behind the proxy shares its address
            held.append(_connect(server))
        for s in held:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for s in held:
            assert _read_all(s).startswith(b"HTTP/1.1 200 ")
        capped = [_connect(server, "127.0.0.3") for _ in range(4)]
        held += capped
        assert _read_all(capped[-1]).startswith(b"HTTP/1.1 429 ")
    finally:
        for s in held:
            s.close()
        server.close()


def test_an_ipv6_client_is_counted_per_64():
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::5") != address_key("2001:db8:1:2::5")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("192.0.2.7") == "192.0.2.7"
