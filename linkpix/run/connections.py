"""How the WSGI server treats connections, so one client cannot lock the others out.

Waitress stops accepting once `connection_limit` sockets are open, and closes a socket only after
`channel_timeout` seconds without a byte. With 1000 and 600 s (before issue 20), 1000 idle sockets
opened by one client made every other request wait ten minutes. Now:

- a connection with no request in progress (idle keep-alive, or a request that stopped arriving) is
  closed after `idle_timeout` seconds (20): long enough for a browser's keep-alive between clicks,
  short enough that sockets held open without a request are gone before they pile up. A request being
  answered (a slow generation, an event stream) is never cut: waitress skips channels with a request.
- `connection_limit` (8000) is far above what a user needs (a browser opens 6 per host) and what one
  client opening idle sockets can hold for `idle_timeout` seconds in a loop;
- the process's open-file limit is raised to its hard limit so that many sockets fit, and the limit is
  lowered to fit when the hard limit is smaller (a socket per connection, plus room for files);
- waitress's loop uses poll(), not select() (which cannot watch a descriptor above 1023);
- what waitress has no option for, a deadline for the request head (`request_head_timeout`, 10 s) and a
  cap per client address (`connections_per_address`, 200), the channel class does (run/guard.py).
"""

from __future__ import annotations

import logging
from typing import Any

from linkpix.config import Settings
from linkpix.ops.ratelimit import parse_networks
from linkpix.run.guard import AddressCounts

log = logging.getLogger(__name__)

SPARE_FILES = 256  # descriptors kept for files, the cache, SQLite, Redis and backend connections


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (where the platform has one); returns the limit."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 16


def server_options(settings: Settings) -> dict[str, Any]:
    """Waitress options from the settings (see the module docstring)."""
    files = raise_file_limit()
    limit = min(settings.connection_limit, max(100, files - SPARE_FILES - settings.threads))
    if limit < settings.connection_limit:
        log.warning("connection_limit %d lowered to %d to fit the open-file limit (%d)",
                    settings.connection_limit, limit, files)
    return {"channel_timeout": settings.idle_timeout, "connection_limit": limit,
            "cleanup_interval": max(1, min(30, int(settings.idle_timeout / 2))),
            "asyncore_use_poll": True, "backlog": 2048}


def address_counts(settings: Settings) -> AddressCounts:
    """The per-server state of the head deadline and the per-address cap (run/guard.py)."""
    return AddressCounts(settings.connections_per_address, settings.request_head_timeout,
                         parse_networks(settings.trusted_proxies))
