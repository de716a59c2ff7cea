"""Conditional GETs (RFC 9110 section 13): one decision and one 304 for every image route.

The hit path (a WSGI layer) and the Flask views both answer image requests; if they judged
`If-None-Match` differently, a client would get a 304 from one and a 200 from the other for the same
link. So both ask `not_modified` and build their 304 with `not_modified_headers`. The header values are
parsed with Werkzeug's parsers; the evaluation order is the RFC's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.http import parse_date, parse_etags, unquote_etag

# What a 304 carries: the fields RFC 9110 15.4.5 lists that a 200 would have sent. Last-Modified is left
# out, as the RFC suggests when there is an ETag (and as Werkzeug does for Flask's 304s).
KEPT_ON_304 = frozenset({"etag", "cache-control", "expires", "vary", "content-location"})


def not_modified(environ: Mapping[str, Any], etag: str, mtime: float) -> bool:
    """True when a GET/HEAD may be answered 304 for a representation with `etag` and `mtime`.

    If-None-Match (a list, `*`, weak tags) is compared with the weak comparison function; only when it
    is absent is If-Modified-Since consulted (RFC 9110 13.2.2, steps 3 and 4). An unparsable date is
    ignored, as the RFC asks.
    """
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        tags = parse_etags(inm)
        return tags.contains_weak(unquote_etag(etag)[0])
    ims = environ.get("HTTP_IF_MODIFIED_SINCE")
    if ims is None:
        return False
    since = parse_date(ims)
    return since is not None and int(mtime) <= since.timestamp()


def not_modified_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of the 304 that stands for a 200 with `headers`."""
    return [(k, v) for k, v in headers if k.lower() in KEPT_ON_304]
