"""Websocket upgrades inside waitress, for the ComfyUI front's `/ws`.

waitress is a WSGI server and WSGI has no way to hand a connection over to another protocol. ComfyUI's
clients open the websocket on the same host and port as the HTTP API (Open WebUI derives `ws://.../ws`
from the base URL), so a second listener would be visible to them. Instead the server's channel class is
swapped for one whose WSGI environ carries `linkpix.upgrade`: a view that calls it gets the connection's
socket and owns it until it returns; waitress then writes nothing more and closes the connection.

While a request is being served waitress neither reads from nor writes to its socket (a channel is not
readable while it has a request, and writable only with output queued), so the view may use it freely.
The connection holds a server thread for its lifetime, like an event stream; the caller bounds how many.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

UPGRADE = "linkpix.upgrade"  # environ key: () -> the connection's socket, taken over by the caller


class _Upgradable:
    """Mixed into the server's task class: the environ carries the socket taker."""

    channel: Any

    def get_environment(self) -> dict[str, Any]:
        environ = super().get_environment()  # type: ignore[misc]
        environ[UPGRADE] = self._take_socket
        return environ

    def _take_socket(self) -> socket.socket:
        self.close_on_finish = True  # the connection ends with the view
        self.wrote_header = True  # and waitress writes no response of its own onto it
        return self.channel.socket


def enable(server: Any) -> None:
    """Let the views of `server` (what `waitress.create_server` returned) take over connections.

    The server's channel class is extended, not replaced, so other channel customisations (JSON error
    answers, say) stay in force, whichever is applied first.
    """
    servers = getattr(server, "map", None)
    targets = [s for s in servers.values() if hasattr(s, "channel_class")] if isinstance(servers, dict) \
        and not hasattr(server, "channel_class") else [server]
    for target in targets:
        channel = target.channel_class
        if issubclass(channel.task_class, _Upgradable):
            continue
        task = type(f"Upgradable{channel.task_class.__name__}", (_Upgradable, channel.task_class), {})
        target.channel_class = type(f"Upgradable{channel.__name__}", (channel,), {"task_class": task})


def taker(environ: dict[str, Any]) -> Callable[[], socket.socket] | None:
    """The socket taker of this request, or None when the server cannot upgrade connections."""
    return environ.get(UPGRADE)
