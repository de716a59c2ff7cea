"""Has anything changed in these folders since I last asked? One system call to find out, on Linux.

`JsonStore.fingerprint()` runs on every request, including the cached-link fast path; statting every
shared file each time costs a system call per file, which on a virtual machine is most of what a cached
link costs. With inotify the kernel queues an event the moment a file in a watched folder is written,
replaced, created or removed (inside the writer's own system call, so before the writer goes on), and a
non-blocking `read` of the queue answers "nothing changed" in one call. The caller still stats its files
after any event, so an event that did not matter (a lock file, the jobs database) costs one re-stat.

inotify does not see changes made on another machine to a network file system, so the generation also
moves on once every `max_age` seconds. Where inotify is missing (not Linux, or the per-user watch
limit is reached) `DirWatcher.open()` returns None and the caller stats every time, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import sys
import threading
import time
import weakref
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
# A watched folder itself went away or was replaced: its watch is gone, so watch the path again.
_LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)


class DirWatcher:
    """inotify watches on folders; `generation()` grows whenever something in one of them changed."""

    def __init__(self, libc: ctypes.CDLL, fd: int, max_age: float) -> None:
        self._libc = libc
        self._fd = fd
        self._max_age = max_age
        self._dirs: set[str] = set()
        self._lock = threading.Lock()
        self._generation = 0
        self._checked = time.monotonic()
        self._rewatch = False
        self._local = threading.local()
        weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, max_age: float = 1.0) -> DirWatcher | None:
        """A watcher, or None where inotify is not available."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(libc, fd, max_age) if fd >= 0 else None

    def watch(self, folder: str | os.PathLike[str]) -> None:
        """Watch `folder`, or its nearest existing parent while it does not exist (so its creation is an
        event, after which the caller asks again); also the folder it really is, through symlinks."""
        target = Path(folder)
        while not target.is_dir() and target.parent != target:
            target = target.parent
        with self._lock:
            for path in {str(target), os.path.realpath(target)}:
                if path not in self._dirs and self._libc.inotify_add_watch(self._fd, os.fsencode(path), MASK) >= 0:
                    self._dirs.add(path)

    def generation(self) -> int:
        """A number that changes after every change in a watched folder (and every `max_age` seconds).

        The usual answer costs one `poll` and no lock. When events are waiting, the number is raised
        before they are drained, so a thread that finds the queue empty because another thread just
        drained it still sees a new number, even if that thread has not acted on the change yet.
        """
        poller = getattr(self._local, "poller", None)
        if poller is None:  # a poll object must not be used by two threads at once: one per thread
            poller = self._local.poller = select.poll()
            poller.register(self._fd, select.POLLIN)
        if poller.poll(0):
            with self._lock:
                self._generation += 1
                self._drain()
                if self._rewatch:
                    self._rewatch = False
                    dirs, self._dirs = self._dirs, set()
                    for d in dirs:
                        if self._libc.inotify_add_watch(self._fd, os.fsencode(d), MASK) >= 0:
                            self._dirs.add(d)
        now = time.monotonic()
        if now - self._checked >= self._max_age:
            self._checked = now
            with self._lock:
                self._generation += 1
        return self._generation

    def _drain(self) -> bool:
        seen = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return seen
            except OSError:
                self._rewatch = True
                return True
            seen = True
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _LOST:
                    self._rewatch = True

