"""The image cache as files on disk: sizes per user, recent generations, and clearing.

The dashboard is another process than the API, so it must not build an `ImageCache` (whose start-up scan
deletes `.tmp` files, which could be the API's write in progress). It works on finished entries only, in
the cache's own layout (`<output_dir>/<user>/<key>.<fmt>` + `<key>.json` sidecar) and removal order (the
image, then its sidecar): the API treats an entry whose file vanished as a miss and makes it again, and
its hit path forgets a memoised file that can no longer be opened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import CONTENT_TYPES
from ..request import validate_user

_IMAGE_RE = re.compile(r"^[0-9a-f]{16,64}\.(" + "|".join(CONTENT_TYPES) + r")$")


@dataclass(frozen=True)
class Entry:
    user: str
    path: Path
    size: int
    mtime: float


def entries(root: Path, user: str | None = None) -> list[Entry]:
    """Finished cache entries (image with sidecar), of one user or all, newest first."""
    if user is not None:
        validate_user(user)
    users = [root / user] if user is not None else sorted(p for p in _dirs(root))
    found: list[Entry] = []
    for folder in users:
        try:
            names = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        for path in names:
            if not _IMAGE_RE.match(path.name) or not path.with_suffix(".json").exists():
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append(Entry(folder.name, path, st.st_size, st.st_mtime))
    found.sort(key=lambda e: e.mtime, reverse=True)
    return found


def _dirs(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return []


def per_user(root: Path) -> dict[str, dict[str, int]]:
    """user -> {"images": n, "bytes": total}."""
    out: dict[str, dict[str, int]] = {}
    for e in entries(root):
        row = out.setdefault(e.user, {"images": 0, "bytes": 0})
        row["images"] += 1
        row["bytes"] += e.size
    return dict(sorted(out.items()))


def summary(root: Path, user: str | None = None) -> tuple[int, int]:
    """(images, bytes) that clearing `user` (None: everyone) would remove."""
    found = entries(root, user)
    return len(found), sum(e.size for e in found)


def clear(root: Path, user: str | None = None) -> int:
    """Remove finished entries of one user (or all); returns how many images were removed."""
    removed = 0
    for e in entries(root, user):
        try:
            e.path.unlink()
            removed += 1
        except FileNotFoundError:
            pass  # evicted by the API meanwhile
        try:
            e.path.with_suffix(".json").unlink()
        except FileNotFoundError:
            pass
    return removed


def recent(root: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The newest generations with what their sidecars recorded (prompt, workflow, time taken)."""
    rows = []
    for e in entries(root)[:limit]:
        try:
            meta = json.loads(e.path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        rows.append({"created": meta.get("created", e.mtime), "user": e.user, "prompt": meta.get("prompt", ""),
                     "workflow": meta.get("workflow", ""), "ms": meta.get("generation_ms"),
                     "bytes": e.size, "file": e.path.name})
    return rows


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
