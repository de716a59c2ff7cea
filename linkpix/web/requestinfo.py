"""Facts read from the raw WSGI environ, shared by the hit path and the Flask views.

Both must agree exactly on who the user is and which URI was asked for, or a memoised answer could be
served to the wrong request; so both read them here and nowhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

USER_HEADER = "HTTP_X_LINKPIX_USER"


def raw_uri(environ: dict[str, Any]) -> str:
    """The request target as the client sent it (waitress: REQUEST_URI), before any decoding."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        return uri
    query = environ.get("QUERY_STRING", "")
    return environ.get("PATH_INFO", "") + ("?" + query if query else "")


def raw_path_and_query(environ: dict[str, Any]) -> tuple[str, str]:
    path, _, query = raw_uri(environ).partition("?")
    return path, query


def prompt_from_environ(environ: dict[str, Any], prefix: str = "/prompt/") -> str:
    """The prompt text of /prompt/<text>: `+` is a space, %XX is decoded, slashes survive."""
    path, _ = raw_path_and_query(environ)
    if "://" in path:  # an absolute-form request target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    start = path.find(prefix)
    text = path[start + len(prefix):] if start >= 0 else ""
    return unquote(text.replace("+", " "), errors="replace")


def query_params(environ: dict[str, Any]) -> dict[str, str]:
    """The query as a flat dict (the first value of a repeated name wins)."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        params.setdefault(name, value)
    return params


def user_from_environ(environ: dict[str, Any]) -> str:
    """`user` query parameter, else the X-LinkPix-User header, else "default" (validated later)."""
    query = environ.get("QUERY_STRING", "")
    if "user=" in query:
        user = query_params(environ).get("user")
        if user:
            return user
    return environ.get(USER_HEADER) or "default"


def wants_json(environ: dict[str, Any]) -> bool:
    """`?format=json`, or an Accept header that names JSON and nothing else."""
    query = environ.get("QUERY_STRING", "")
    if "format=json" in query and query_params(environ).get("format") == "json":
        return True
    accept = environ.get("HTTP_ACCEPT", "")
    return accept.split(";", 1)[0].strip() == "application/json" and "," not in accept


def accepts_only_images(environ: dict[str, Any]) -> bool:
    """True for an <img> request: images are preferred and neither HTML nor JSON is asked for."""
    accept = environ.get("HTTP_ACCEPT", "")
    if not accept:
        return False
    first = accept.split(",", 1)[0].strip()
    return first.startswith("image/") and "text/html" not in accept and "application/json" not in accept
