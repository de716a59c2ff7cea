"""Published cache entries reach the disk just after they are published, not before.

A new picture is renamed into place, and answered, as soon as its bytes are written; this thread then fsyncs
the image, its sidecar and their folder. Syncing first had cost every new picture about 2 ms before its
answer on a disk that ComfyUI writes its own outputs to (the file system's journal commit waits for those
too), and the folder was never synced, so a power loss could drop a published entry for the next few
seconds anyway. Now that window is the few milliseconds until this thread's sync; an entry the power loss
cut short in it is recognised by `ImageCache` (its sidecar records the image's size) and made again, never
served broken. A process crash loses nothing either way: the written bytes are the kernel's by then. A sync
that fails (an I/O error, a file system that ran out of room late) is reported to `on_failure`: the cache
then withdraws the entry rather than serve bytes the disk may not hold.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Windows' FlushFileBuffers needs a handle open for writing; POSIX syncs through any descriptor.
_OPEN_FLAGS = os.O_RDONLY if os.name == "posix" else os.O_RDWR
IDLE_SECONDS = 30.0


class Syncer:
    """One background thread that fsyncs the files it is given, then their folders once per batch."""

    def __init__(self, name: str = "cache-sync", on_failure: Callable[[Path], None] | None = None) -> None:
        self._name = name
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._pending: list[Path] = []
        self._busy = False
        self._thread: threading.Thread | None = None

    def add(self, *paths: Path) -> None:
        """Sync these files (and their folders) soon; returns at once."""
        with self._cond:
            self._pending.extend(paths)
            if self._thread is None:  # started on first use: a process that never stores needs no thread
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything added so far is synced (on shutdown); False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._pending), IDLE_SECONDS):
                    self._thread = None  # idle: the next add starts another (a test suite makes many caches)
                    return
                batch, self._pending = self._pending, []
                self._busy = True
            try:
                for failed in sync_paths(batch):
                    if self._on_failure is not None:
                        self._on_failure(failed)
            except Exception:  # the thread must go on for the next entries
                log.exception("syncing cache entries to disk failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def sync_paths(paths: Iterable[Path]) -> list[Path]:
    """fsync each file that still exists, then each folder they are in (which makes their renames durable);
    the files whose sync failed (or whose folder's did)."""
    folders: dict[Path, list[Path]] = {}
    failed = []
    for path in paths:
        if not _fsync(path):
            failed.append(path)
        folders.setdefault(path.parent, []).append(path)
    if os.name == "posix":  # a folder cannot be opened for syncing elsewhere (Windows journals names itself)
        for folder, inside in folders.items():
            if not _fsync(folder):
                failed += [p for p in inside if p not in failed]
    return failed


def _fsync(path: Path) -> bool:
    """False if the sync failed (a file gone since, replaced or evicted, is nothing to keep: True)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("cannot open %s to sync it to disk: %s", path, exc)
        return False
    try:
        os.fsync(fd)
        return True
    except OSError as exc:
        log.warning("cannot sync %s to disk: %s", path, exc)
        return False
    finally:
        os.close(fd)
