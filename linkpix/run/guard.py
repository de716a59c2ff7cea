"""Per-connection guards waitress lacks: a deadline for the request head, and a cap per client address.

waitress (3.0) closes a connection only after `channel_timeout` seconds without a byte, and counts any
byte as activity, so a client sending one header byte every few seconds keeps its socket for ever; and
its `connection_limit` is one number for everyone, so one address opening sockets in a loop fills it.
Neither has an option (its adjustments were checked), so the channel class the server makes for each
connection does it:

- **Head deadline** (`request_head_timeout`): a connection must send a complete request head (request
  line and headers) within this many seconds of connecting, or of the first byte of its next request.
  Past it, a connection that sent part of a head gets 408 and is closed; one that sent nothing is
  closed silently (a browser's unused pre-opened socket: it opens another). The wait between requests
  on a kept-alive connection is `idle_timeout`'s job, and a body is not timed (a photo on a slow link
  may take a while; it holds no thread until it is complete, and counts against the address cap).
- **Per-address cap** (`connections_per_address`): one address may hold this many connections; the next
  gets 429 at once and is closed. IPv6 addresses count per /64 (one client's network), IPv4-mapped ones
  as IPv4. `trusted_proxies` are not capped: every client behind them shares their address.

The checks run on waitress's loop thread: the deadline in `readable()`, which the loop asks of every
channel each turn (at most `asyncore_loop_timeout`, 1 s, apart), so a late head is cut within a second.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections import Counter
from typing import Any

from waitress.channel import HTTPChannel

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def address_key(host: str) -> str:
    """The unit one client holds: an IPv4 address, or an IPv6 /64 (IPv4-mapped IPv6 counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket's empty name, say: one key for all
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AddressCounts:
    """Open connections per client address, shared by the channels of one server."""

    def __init__(self, per_address: int, head_timeout: float, exempt: Networks = ()) -> None:
        self.per_address = per_address  # 0: no cap
        self.head_timeout = head_timeout
        self.exempt = exempt
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._warned = -60.0

    def admit(self, host: str) -> str | None:
        """Count a new connection from `host`: its key, or None when the address is at its cap."""
        key = address_key(host)
        if self.per_address and not self._exempt(host):
            with self._lock:
                if self._open[key] >= self.per_address:
                    return None
                self._open[key] += 1
            return key
        with self._lock:
            self._open[key] += 1
        return key

    def should_warn(self) -> bool:
        """One log line a minute at most: an address opening sockets in a loop is refused thousands of times."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned < 60:
                return False
            self._warned = now
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def open_from(self, host: str) -> int:
        """Connections open from `host`'s unit (for the tests and the log)."""
        with self._lock:
            return self._open.get(address_key(host), 0)

    def _exempt(self, host: str) -> bool:
        if not self.exempt:
            return False
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)


def _json_response(status: str, code: str, message: str, extra: tuple[str, ...] = ()) -> bytes:
    body = json.dumps({"error": code, "message": message, "details": None}).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Cache-Control: no-store", "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedChannel(HTTPChannel):
    """A waitress channel with the head deadline and the address cap; `counts` is set per server."""

    counts: AddressCounts
    _key: str | None = None
    _head_due: float | None = None  # monotonic deadline of the head being awaited, None when none is
    _head_of: Any = None  # the parser the deadline belongs to
    _heard: bool = False  # any byte of the awaited head arrived

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:  # noqa: A002
        super().__init__(server, sock, addr, adj, map=map)
        host = addr[0] if isinstance(addr, tuple) and addr else ""
        self._key = self.counts.admit(host)
        if self._key is None:
            cap = self.counts.per_address
            self._answer_and_close(_json_response(
                "429 Too Many Requests", "too_many_connections",
                f"this address already holds {cap} open connections to LinkPix (connections_per_address); "
                "close some, or reuse them (keep-alive)", ("Retry-After: 5",)))
            if self.counts.should_warn():
                self.server.logger.warning("refused connections from %s: %d already open "
                                           "(connections_per_address)", host, cap)
            return
        self._head_due = time.monotonic() + self.counts.head_timeout

    def received(self, data: bytes) -> bool:
        result = super().received(data)
        pending = self.request  # the request being read, None between requests
        if pending is None or pending.headers_finished:
            self._head_due, self._head_of, self._heard = None, None, False
        elif pending is not self._head_of:  # a new request began: its head is due within the timeout, or
            due = time.monotonic() + self.counts.head_timeout  # sooner on a new connection (counted from connect)
            self._head_due = due if self._head_due is None else min(due, self._head_due)
            self._head_of, self._heard = pending, True
        else:
            self._heard = True
        return result

    def readable(self) -> bool:
        due = self._head_due
        if due is not None and not self.requests and time.monotonic() > due:
            self._head_due = None
            if self._heard:
                timeout = self.counts.head_timeout
                self._answer_and_close(_json_response(
                    "408 Request Timeout", "request_timeout",
                    f"the request head (request line and headers) did not arrive within {timeout:g} s "
                    "(request_head_timeout)"))
            else:
                self.will_close = True  # nothing was sent: closed without a word
            return False
        return super().readable()

    def del_channel(self, map: Any = None) -> None:  # noqa: A002
        super().del_channel(map)
        key, self._key = self._key, None
        if key is not None:
            self.counts.release(key)

    def _answer_and_close(self, response: bytes) -> None:
        """Queue `response` and close the connection once it is sent; nothing more is read from it."""
        with self.outbuf_lock:
            self.outbufs[-1].append(response)
            self.total_outbufs_len += len(response)
        self.close_when_flushed = True
