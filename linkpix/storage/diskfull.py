"""A full disk is the server's condition, not the request's fault nor a bug: it gets its own answer.

Before issue 20 a write that hit ENOSPC surfaced as 500 `internal_error` ("internal error while running
the job"), which sends the reader looking for a bug. Now the write is undone (no half-written entry is
left to be served later) and the answer is 507 Insufficient Storage naming the folder to clean.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linkpix.errors import StorageFull

FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextmanager
def room_in(folder: Path, what: str, *leftovers: Path) -> Iterator[None]:
    """Turn a full disk while writing into StorageFull (507), after removing `leftovers` (the files the
    block may have written in part: an image without its sidecar, say)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL:
            raise
        for path in leftovers:
            try:
                path.unlink()
            except OSError:
                pass
        raise StorageFull(f"the {what} disk is full: there is no room to write in {folder}; free some space "
                          f"there (or lower cache_max_mb)", {"folder": str(folder)}) from None
