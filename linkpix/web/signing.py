"""Optional HMAC-signed links, for `<img>` tags and chats where no header can carry a key.

A link is signed over its path and query (without the `sig` parameter itself), so no parameter can be
changed without breaking the signature. Several keys may be configured: the first signs, all verify, so a
key can be rotated without breaking links already shared. Comparison is constant-time.

    python -m linkpix.web.signing KEY "/prompt/a red fox?width=512"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from collections.abc import Sequence
from urllib.parse import quote

SIG_PARAM = "sig"


def _digest(key: str, message: str) -> str:
    mac = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def split_signature(path: str, query: str) -> tuple[str, str | None]:
    """The signed message (path + query without `sig`) and the signature found, if any."""
    kept, sig = [], None
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name == SIG_PARAM:
            sig = value
        else:
            kept.append(part)
    message = path + ("?" + "&".join(kept) if kept else "")
    return message, sig


def sign(key: str, path: str, query: str = "") -> str:
    """Return the path and query with a `sig` parameter appended."""
    message, _ = split_signature(path, query)
    sep = "&" if "?" in message else "?"
    return f"{message}{sep}{SIG_PARAM}={_digest(key, message)}"


def verify(keys: Sequence[str], path: str, query: str) -> bool:
    """True when the link carries a signature made with any of `keys`."""
    message, sig = split_signature(path, query)
    if not sig:
        return False
    return any(hmac.compare_digest(_digest(key, message), sig) for key in keys)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    key, url = argv
    path, _, query = url.partition("?")
    print(sign(key, quote(path, safe="/%:@!$&'()*+,;="), query))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
