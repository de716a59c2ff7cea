"""Where a webhook may go, and a connection that goes only where the check said.

A webhook URL comes from a client, and LinkPix POSTs to it from inside the network it runs in. So:
- never to a cloud metadata service, a link-local, multicast or unspecified address;
- never to a configured ComfyUI backend (a POST to its `/interrupt` would stop another user's run), nor to
  LinkPix itself (its API or dashboard port on any address of this machine);
- to a loopback or private address (anything not globally routable) only when `webhook_allow` lists a
  network that holds it (`127.0.0.1`, `10.0.0.0/8`): a host name in the list does not open private
  addresses, since whoever controls that name's DNS could point it anywhere;
- with `webhook_allow` set, only to what it lists (host names, `*.example.com`, or networks).

Every address a host resolves to is checked, and the connection is made to a checked address: the
check runs inside the connection (`PinnedAdapter`), on the addresses it then connects to, so a DNS
answer that changes between a check and the connection (rebinding) cannot slip through.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

from linkpix.errors import BadRequest

# Cloud metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba) are never a webhook target.
METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Targets:
    """The rules in force: the allow list, the ComfyUI backends' URLs, and LinkPix's own ports."""

    allow: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    own_ports: tuple[int, ...] = ()


def _refuse(message: str, **details: Any) -> BadRequest:
    return BadRequest(message, {"parameter": "webhook_url", **details})


def _host_refused(message: str, **details: Any) -> BadRequest:
    """A refusal about where the host leads (DNS, the address kind): no schema can state it (errors.RULES)."""
    return BadRequest(message, {"parameter": "webhook_url", **details}, rule="webhook_host")


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _plain(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, 6to4 2002:AABB:CCDD::,
    NAT64 64:ff9b::a.b.c.d), which is where the packets end up: [::127.0.0.1] is loopback too."""
    if ip.version != 6:
        return ip
    assert isinstance(ip, ipaddress.IPv6Address)
    carried = ip.ipv4_mapped or ip.sixtofour
    if carried is None and any(ip in net for net in NAT64):
        carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if carried is None and int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible (deprecated, still routed)
        carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return carried if carried is not None else ip


def _never(ip: IPAddress) -> str | None:
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast or ip.is_unspecified:
        return "not a unicast address"
    return None


def is_local(ip: IPAddress) -> bool:
    """Whether `ip` is an address of this machine: the kernel lets a socket bind only to those."""
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
        return True
    except OSError:
        return False


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _host_refused(f"webhook host {host!r} cannot be resolved: {exc}") from None
    return list(dict.fromkeys(_plain(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0])) for i in infos))


def _endpoint(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port == 0:  # not a port anything listens on (and `or 80` would have read it as 80)
        return None
    return (parts.hostname or "", port if port is not None else (443 if parts.scheme == "https" else 80))


def _backend_at(ip: IPAddress, port: int, backends: Iterable[str]) -> str | None:
    """The configured ComfyUI URL that (ip, port) reaches, if any. A ComfyUI on this machine listening on
    all interfaces answers on every local address, so any local address with its port is that ComfyUI."""
    for url in backends:
        endpoint = _endpoint(url)
        if endpoint is None or endpoint[1] != port or not endpoint[0]:
            continue
        try:
            addresses = resolve(*endpoint)
        except BadRequest:
            continue
        if ip in addresses or (is_local(ip) and any(is_local(a) for a in addresses)):
            return url
    return None


def _in_networks(ip: IPAddress, allow: Iterable[str]) -> bool:
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _listed(host: str, addresses: list[IPAddress], allow: Iterable[str]) -> bool:
    for entry in allow:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if fnmatch.fnmatch(host.lower(), entry.lower()):
                return True
            continue
        if addresses and all(a in network for a in addresses):
            return True
    return False


def checked_addresses(host: str, port: int, targets: Targets) -> list[IPAddress]:
    """Resolve `host` and return its addresses if a webhook may go to every one of them, else BadRequest
    saying why."""
    addresses = resolve(host, port)
    for ip in addresses:
        reason = _never(ip)
        if reason:
            raise _host_refused(f"webhook_url {host!r} resolves to {ip}, {reason}; webhooks may not go there")
        backend = _backend_at(ip, port, targets.backends)
        if backend:
            raise _host_refused(f"webhook_url {host}:{port} is the ComfyUI server LinkPix uses ({backend}); "
                          "webhooks may not go there")
        if port in targets.own_ports and is_local(ip):
            raise _host_refused(f"webhook_url {host}:{port} is LinkPix itself; webhooks may not go there")
        if not ip.is_global and not _in_networks(ip, targets.allow):
            kind = "a loopback" if ip.is_loopback else "a private (not globally routable)"
            raise _host_refused(f"webhook_url {host!r} resolves to {ip}, {kind} address; webhooks go there only "
                          f"when webhook_allow lists its network (e.g. \"{ip}\")")
    if targets.allow and not _listed(host, addresses, targets.allow):
        raise _host_refused(f"webhook_url host {host!r} is not in the webhook_allow list", allowed=list(targets.allow))
    return addresses


def check_url(url: Any, targets: Targets) -> str:
    """Return `url` if LinkPix may POST to it, else BadRequest saying why (resolves the host)."""
    if not isinstance(url, str) or not url:
        raise _refuse("webhook_url must be an http(s) URL")
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - a bracketed host that is no IPv6 address raises here
    except ValueError as exc:
        raise _host_refused(f"webhook_url's host is not an address ({exc})") from None
    endpoint = _endpoint(url)
    if endpoint is None:
        raise _refuse("webhook_url has an invalid port (1 to 65535)")
    if parts.scheme not in ("http", "https") or not endpoint[0]:
        raise _refuse(f"webhook_url must be an http:// or https:// URL with a host (got {url!r})")
    if parts.username or parts.password:
        raise _refuse("webhook_url must not carry a user name or password; use webhook_secret")
    checked_addresses(endpoint[0], endpoint[1], targets)
    return url


class _Pinned:
    """urllib3 connection whose socket goes to an address the rules were checked against."""

    targets: Callable[[], Targets]
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for ip in checked_addresses(self._dns_host, self.port, self.targets()):
            try:
                return connection.create_connection((str(ip), self.port), self.timeout,
                                                    source_address=self.source_address,
                                                    socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connecting to {self.host} ({ip}) timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


class PinnedAdapter(HTTPAdapter):
    """A requests transport adapter whose connections check the rules on the addresses they connect to."""

    def __init__(self, targets: Callable[[], Targets]) -> None:
        self._targets = targets  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **kwargs)
        rules = {"targets": staticmethod(self._targets)}
        http = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), rules)
        https = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), rules)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
