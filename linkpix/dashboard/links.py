"""Links the dashboard hands out: the API's addresses on this machine and the LAN, example links, and
the exact `/prompt` link that reproduces an image made in the Generate tab.

Pure functions (plus one look at the network interfaces), so they are unit-tested without a browser.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

API_URL_ENV = "LINKPIX_API_URL"
EXAMPLE_PROMPT = "a red fox in the snow"


def api_url(api_port: int, environ: Mapping[str, str] | None = None) -> str:
    """Where this machine reaches the API: `LINKPIX_API_URL` if set (tests), else loopback:api_port."""
    env = os.environ if environ is None else environ
    override = env.get(API_URL_ENV, "").strip()
    return override.rstrip("/") if override else f"http://127.0.0.1:{api_port}"


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (what another machine on the LAN would use)."""
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET address: picks the outgoing interface, sends nothing
            found.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        for addr in socket.gethostbyname_ex(socket.gethostname())[2]:
            found.append(addr)
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not a.startswith("127.") and a != "0.0.0.0"]


def lan_urls(api_port: int, addresses: list[str] | None = None) -> list[str]:
    return [f"http://{addr}:{api_port}" for addr in (lan_addresses() if addresses is None else addresses)]


def prompt_link(base: str, prompt: str, query: Mapping[str, Any] | None = None) -> str:
    """`base/prompt/<prompt>?query`: the prompt percent-encoded (slashes kept, as the API reads them),
    query values in the order given, empty ones left out."""
    path = quote(prompt, safe="/")
    items = [(k, _text(v)) for k, v in (query or {}).items() if v is not None and _text(v) != ""]
    return f"{base.rstrip('/')}/prompt/{path}" + (f"?{urlencode(items, quote_via=quote)}" if items else "")


def example_link(base: str) -> str:
    return prompt_link(base, EXAMPLE_PROMPT, {"width": 512, "height": 768})


def markdown_image(link: str, alt: str = EXAMPLE_PROMPT) -> str:
    """What to paste into a SillyTavern message."""
    return f"![{alt}]({link})"


def reproduce_link(base: str, prompt: str, *, seed: int, workflow: str, styles: list[str],
                   width: int | None, height: int | None, params: Mapping[str, Any],
                   image_format: str | None = None, user: str | None = None) -> str:
    """The `/prompt` link that yields the same image: every value the job used is written out
    (seed, workflow, styles, size and each workflow parameter), so later changes to defaults,
    workflow settings or preferences do not change what it shows."""
    query: dict[str, Any] = {}
    if width:
        query["width"] = width
    if height:
        query["height"] = height
    query["style"] = ",".join(styles) if styles else "none"
    query["workflow"] = workflow
    query["seed"] = seed
    for name, value in params.items():
        if name not in query and name not in ("prompt", "seed", "width", "height"):
            query[name] = value
    if image_format:
        query["format"] = image_format
    if user and user != "default":
        query["user"] = user
    return prompt_link(base, prompt, query)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)
