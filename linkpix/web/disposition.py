"""Content-Disposition for a file name a client chose (a v2 asset's `file_path`, a ComfyUI-front upload's name).

Such a name is the client's text: any Unicode, quotes, even a newline. Written into the header as it came,
a name outside Latin-1 (`été.png`, `写真.png`) made the answer a 500 (waitress sends headers as Latin-1), a
newline a 500 too (Werkzeug refuses it), and a quote broke the header. RFC 6266 carries any name: an ASCII
fallback in `filename`, quoted by Werkzeug, and the exact name, percent-encoded UTF-8, in `filename*`.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from werkzeug.http import dump_options_header


def disposition(name: str, kind: str = "inline") -> str:
    """The header's value for a file called `name` (`kind`: inline or attachment)."""
    name = "".join(ch for ch in name if ch.isprintable()) or "file"  # no control characters
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii") or "file"
    options = {"filename": fallback}
    if fallback != name:
        options["filename*"] = "UTF-8''" + quote(name, safe="")
    return dump_options_header(kind, options)
