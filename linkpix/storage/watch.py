"""Has any of these files or folders changed since I last asked? One system call to find out, on Linux.

`JsonStore.fingerprint()` runs on every request, including the cached-link fast path; statting every
shared file each time costs a system call per file, which on a virtual machine is most of what a cached
link costs. With inotify the kernel queues an event the moment a watched file is written or replaced, or a
file is created or removed in a watched folder (inside the writer's own system call, so before the
writer goes on), and a `poll` of the queue answers "nothing changed" in one call. The caller still stats
its files after any event, so an event that did not matter (a lock or temporary file) costs one re-stat.

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
# A file: its content or metadata changed, or it went away (replaced by a rename, deleted).
FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
# A folder: its listing changed (a file created, deleted, renamed in or out). Writes to files inside it
# (a log file, the jobs database) are not events: only the files that matter are watched for those.
DIR_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
# A watched path went away or was replaced: its watch is gone, so watch the path again.
_LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _libc_path() -> str:
    return ctypes.util.find_library("c") or "libc.so.6"


class DirWatcher:
    """inotify watches on files and folders; `generation()` grows whenever one of them changed."""

    def __init__(self, libc: ctypes.CDLL, fd: int, max_age: float) -> None:
        self._libc = libc
        self._fd = fd
        self._max_age = max_age
        self._watched: dict[str, int] = {}  # path -> mask
        self._lock = threading.Lock()
        self._generation = 0
        self._checked = time.monotonic()
        self._rewatch = False
        # poll(2) with a zero timeout never blocks, so it is called through PyDLL, which keeps the GIL: a
        # call that released it would hand the GIL to another thread on every request and wait to get it
        # back. Holding the GIL also means no other thread runs during the call, so one pollfd is shared.
        self._poll = ctypes.PyDLL(_libc_path()).poll
        self._poll.argtypes = [ctypes.POINTER(_PollFd), ctypes.c_ulong, ctypes.c_int]
        self._poll.restype = ctypes.c_int
        self._pollfd = _PollFd(fd, select.POLLIN, 0)
        weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, max_age: float = 1.0) -> DirWatcher | None:
        """A watcher, or None where inotify is not available."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(_libc_path(), use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(libc, fd, max_age) if fd >= 0 else None

    def watch_file(self, path: str | os.PathLike[str]) -> None:
        """Watch a file's content, and its folder's listing (so its creation or replacement is seen)."""
        if self._watched.get(str(path)) == FILE_MASK:
            return  # already watched (a replaced file is watched again after its IN_IGNORED event)
        self.watch_folder(os.path.dirname(os.path.abspath(path)))
        with self._lock:
            for p in {str(path), os.path.realpath(path)}:
                if os.path.isfile(p):
                    self._add(p, FILE_MASK)

    def watch_folder(self, folder: str | os.PathLike[str]) -> None:
        """Watch a folder's listing, or its nearest existing parent's while it does not exist (its creation
        is then an event, after which the caller asks again); also the folder it really is (symlinks)."""
        if self._watched.get(str(folder)) == DIR_MASK:
            return
        target = Path(folder)
        while not target.is_dir() and target.parent != target:
            target = target.parent
        with self._lock:
            for p in {str(target), os.path.realpath(target)}:
                self._add(p, DIR_MASK)

    def _add(self, path: str, mask: int) -> None:
        if self._watched.get(path) != mask and self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask) >= 0:
            self._watched[path] = mask

    def generation(self) -> int:
        """A number that changes after every change in a watched folder (and every `max_age` seconds).

        The usual answer costs one `poll` (with the GIL kept) and no lock. When events are waiting, the number is raised
        before they are drained, so a thread that finds the queue empty because another thread just
        drained it still sees a new number, even if that thread has not acted on the change yet.
        """
        if self._poll(self._pollfd, 1, 0) > 0:
            with self._lock:
                self._generation += 1
                self._drain()
                if self._rewatch:  # re-add every watch by path: a replaced file or folder is a new inode
                    self._rewatch = False
                    watched, self._watched = self._watched, {}
                    for path, mask in watched.items():
                        if os.path.exists(path):
                            self._add(path, mask)
        now = time.monotonic()
        if now - self._checked >= self._max_age:
            with self._lock:  # once per max_age, not once per thread that saw the time pass
                if now - self._checked >= self._max_age:
                    self._checked = now
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

