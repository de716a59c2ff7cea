"""One way to read and write the JSON (and YAML) documents the API and the dashboard share.

Both processes edit `styles.json`, `user_preferences.json`, workflow files... at the same time, so every
access goes through a `JsonStore`:

- reads are cached and re-parsed only when the file's (inode, mtime_ns, size) changes: one `os.stat` per
  read, cheap enough for every request;
- writes go to a temporary file in the same folder, are fsynced and then `os.replace`d over the target,
  so a reader never sees half a file;
- `update(path, fn)` is a read-modify-write under a cross-process `filelock`, so two processes editing the
  same file never lose each other's change;
- a file with a syntax error does not take the service down: the last good version keeps being served,
  the error (path, line, column) is logged once and listed by `problems()` for the dashboard;
- `fingerprint()` stats every file the store has served plus the watched folders, so callers can memoise
  anything derived from these files and drop the memo when any of them changes. On Linux it stats them
  again only after inotify reported a change in their folders (see `watch.py`), so the usual answer costs
  one system call instead of one per file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from linkpix.errors import ConfigError
from linkpix.storage.watch import DirWatcher

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None  # (inode, mtime_ns, size), None when the file is missing
_MISSING: Any = object()


@dataclass(frozen=True)
class Problem:
    """A shared file that could not be parsed; the previous good version is still served."""

    path: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}, column {self.column}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """A parsed document and the stamp of the file it was parsed from.

    `value` is shared between callers: treat it as read-only (use `JsonStore.get_copy` or `update`
    to change it). `stamp` lets callers cache derived objects (a compiled template, a registry).
    """

    value: Any
    stamp: Stamp


def _stat(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _parse(path: Path, text: str) -> Any:
    """Parse by extension; raise `ConfigError` whose details hold the line and column."""
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            col = mark.column + 1 if mark is not None else None
            msg = str(getattr(exc, "problem", None) or exc)
            raise ConfigError(f"{path}: invalid YAML at line {line}, column {col}: {msg}",
                              {"path": str(path), "line": line, "column": col}) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                          {"path": str(path), "line": exc.lineno, "column": exc.colno}) from None


def _dump(path: Path, value: Any) -> str:
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`."""
    tmp = write_temp(path, data, sync=True)
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_temp(path: Path, data: bytes, *, sync: bool) -> Path:
    """`data` in a new temporary file beside `path` (fsynced with `sync`; the image cache syncs after
    publishing instead: storage/durable.py); the caller renames it over `path` (or removes it). Named
    `.<name>.<random>.tmp`, which start-up tidying recognises as a leftover of a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return Path(tmp)


class JsonStore:
    """Cached, lock-protected access to shared JSON/YAML files (see the module docstring)."""

    def __init__(self, lock_timeout: float = 10.0, watch: bool = True) -> None:
        """`watch=False`: `fingerprint()` stats every file each time instead of asking inotify."""
        self._lock_timeout = lock_timeout
        self._guard = threading.Lock()
        self._entries: dict[Path, Entry] = {}
        self._problems: dict[Path, Problem] = {}
        self._watched_dirs: dict[Path, None] = {}
        self._thread_locks: dict[Path, threading.RLock] = {}
        self._watched_files: dict[Path, None] = {}
        # (sizes of the four maps, the paths to stat: files then folders, the files, the folders)
        self._stat_list: tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]] = ((), (), (), ())
        # Opened by the first fingerprint() call, so only a store that is asked (the API's) holds one.
        self._watcher: DirWatcher | None = None
        self._watch = watch
        self._restat = threading.Lock()
        self._last: tuple[int, tuple[str, ...], tuple[Any, ...]] | None = None  # generation, paths, fingerprint

    # ----------------------------------------------------------------------------------- reading
    def load(self, path: str | os.PathLike[str], default: Any = _MISSING) -> Entry:
        """The current document at `path` (re-parsed only if the file changed).

        A missing file gives `Entry(default, None)` (or raises `ConfigError` when no default is given).
        A broken file gives the last good version if there is one, else raises `ConfigError`.
        """
        p = Path(path)
        stamp = _stat(p)
        cached = self._entries.get(p)
        if cached is not None and cached.stamp == stamp and stamp is not None:
            return cached
        if stamp is None:
            with self._guard:
                self._entries[p] = Entry(default, None)
                self._problems.pop(p, None)
            if default is _MISSING:
                raise ConfigError(f"{p}: file not found", {"path": str(p)})
            return Entry(default, None)
        return self._reload(p, cached, default)

    def _reload(self, p: Path, cached: Entry | None, default: Any) -> Entry:
        try:
            with open(p, "rb") as fh:
                # The stamp of the very file we read (fstat on the open descriptor): a replace that lands
                # after this point gives a new inode, so the next load sees a different stamp and reloads.
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:  # removed between stat and open: start again from the top
            return self.load(p, default)
        stamp: Stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            value = _parse(p, raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return self._broken(p, stamp, cached, ConfigError(f"{p}: not UTF-8 text ({exc.reason})",
                                                              {"path": str(p), "line": None}))
        except ConfigError as exc:
            return self._broken(p, stamp, cached, exc)
        entry = Entry(value, stamp)
        with self._guard:
            self._entries[p] = entry
            if self._problems.pop(p, None) is not None:
                log.info("%s is valid again", p)
        return entry

    def _broken(self, p: Path, stamp: Stamp, cached: Entry | None, exc: ConfigError) -> Entry:
        details = exc.details or {}
        problem = Problem(str(p), details.get("line"), details.get("column"), exc.message.split(": ", 1)[-1])
        with self._guard:
            if self._problems.get(p) != problem:
                log.error("%s; %s", exc.message,
                          "keeping the last good version" if cached and cached.stamp else "no good version")
            self._problems[p] = problem
            if cached is None or cached.stamp is None:
                raise exc
            # Remember the broken stamp so we do not re-parse on every read; keep serving the old value.
            good = Entry(cached.value, stamp)
            self._entries[p] = good
        return good

    def get(self, path: str | os.PathLike[str], default: Any = _MISSING) -> Any:
        """The parsed document (shared: do not mutate it)."""
        return self.load(path, default).value

    def get_copy(self, path: str | os.PathLike[str], default: Any = _MISSING) -> Any:
        """A private deep copy of the document, safe to modify."""
        return copy.deepcopy(self.get(path, default))

    # ----------------------------------------------------------------------------------- writing
    def _file_lock(self, p: Path) -> FileLock:
        return FileLock(str(p) + ".lock", timeout=self._lock_timeout, poll_interval=0.002)

    def _thread_lock(self, p: Path) -> threading.RLock:
        with self._guard:
            return self._thread_locks.setdefault(p, threading.RLock())

    def write(self, path: str | os.PathLike[str], value: Any) -> None:
        """Replace the document atomically (under the cross-process lock)."""
        p = Path(path)
        with self._locked(p):
            self._write_unlocked(p, value)

    def _write_unlocked(self, p: Path, value: Any) -> None:
        atomic_write_bytes(p, _dump(p, value).encode("utf-8"))
        entry = Entry(copy.deepcopy(value), _stat(p))
        with self._guard:
            self._entries[p] = entry
            self._problems.pop(p, None)

    def update(self, path: str | os.PathLike[str], fn: Callable[[Any], Any], default: Any = _MISSING) -> Any:
        """Read-modify-write under the lock: `fn` gets a private copy and returns the new document
        (returning None means "I changed it in place"). Returns what was written.

        The file is read from disk (not the cache) while the lock is held, so an update made by another
        process a moment ago is never overwritten. A file with a syntax error is refused: overwriting
        it would destroy whatever the person editing it meant to write.
        """
        p = Path(path)
        with self._locked(p):
            try:
                raw = p.read_text(encoding="utf-8")
            except FileNotFoundError:
                if default is _MISSING:
                    raise ConfigError(f"{p}: file not found", {"path": str(p)}) from None
                current = copy.deepcopy(default)
            else:
                current = _parse(p, raw)
            result = fn(current)
            new = current if result is None else result
            self._write_unlocked(p, new)
            return new

    def _locked(self, p: Path) -> _Both:
        return _Both(self._thread_lock(p), self._file_lock(p), p, self._lock_timeout)

    # ---------------------------------------------------------------------------- housekeeping
    def problems(self) -> list[Problem]:
        """Files that failed to parse on their last change (the dashboard shows these)."""
        with self._guard:
            return list(self._problems.values())

    def problem(self, path: str | os.PathLike[str]) -> Problem | None:
        with self._guard:
            return self._problems.get(Path(path))

    def watch_files(self, files: Iterable[str | os.PathLike[str]]) -> None:
        """Include these files in `fingerprint()` although the store does not read them (config.json)."""
        with self._guard:
            for f in files:
                self._watched_files.setdefault(Path(f), None)

    def watch_dirs(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        """Include these folders in `fingerprint()`: files added, removed or renamed in them count."""
        with self._guard:
            for d in dirs:
                self._watched_dirs.setdefault(Path(d), None)

    def invalidate(self) -> None:
        """Another machine changed a shared file (a replica said so through Redis; inotify does not see
        changes made on other machines): the next `fingerprint()` stats every file again."""
        self._last = None

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever a file this store has served, or a watched folder's listing, changes.

        One `os.stat` per file and folder, no reads, and no path building: the API calls this on every
        request. Atomic replaces change the inode, in-place edits change mtime/size, new or deleted files
        change the folder's mtime. The set of paths only grows (a file once served stays watched), so the
        sizes of the three maps tell when the list of paths must be rebuilt.
        """
        sizes = (len(self._entries), len(self._problems), len(self._watched_dirs), len(self._watched_files))
        known, paths, files, folders = self._stat_list
        if sizes != known:
            with self._guard:
                listed = list(self._entries) + [p for p in self._problems if p not in self._entries]
                listed += [p for p in self._watched_files if p not in listed]
                files = tuple(str(p) for p in listed)
                folders = tuple(str(d) for d in self._watched_dirs)
                paths = files + folders
                self._stat_list = (sizes, paths, files, folders)
        watcher = self._watcher
        if watcher is None and self._watch:
            watcher = self._watcher = DirWatcher.open()
            self._watch = watcher is not None  # no inotify here: do not ask again
        if watcher is None:
            return (paths, tuple(map(_stat, paths)))
        generation = watcher.generation()
        last = self._last
        if last is not None and last[0] == generation and last[1] is paths:
            return last[2]
        with self._restat:  # one thread stats after a change; the others arriving meanwhile use its answer
            last = self._last
            if last is not None and last[0] == generation and last[1] is paths:
                return last[2]
            for file in files:  # before the stats: a change after them is an event for the next call
                watcher.watch_file(file)
            for folder in folders:
                watcher.watch_folder(folder)
            fingerprint = (paths, tuple(map(_stat, paths)))
            self._last = (generation, paths, fingerprint)
            return fingerprint


class _Both:
    """Thread lock, then file lock: filelock alone is per-thread, the RLock keeps threads in order."""

    def __init__(self, tlock: threading.RLock, flock: FileLock, path: Path, timeout: float) -> None:
        self._tlock, self._flock, self._path, self._timeout = tlock, flock, path, timeout

    def __enter__(self) -> None:
        if not self._tlock.acquire(timeout=self._timeout):
            raise ConfigError(f"{self._path}: busy (another writer holds it for over {self._timeout}s)")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._flock.acquire()
        except Timeout:
            self._tlock.release()
            raise ConfigError(f"{self._path}: busy (another process holds its lock)") from None
        except BaseException:
            self._tlock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._flock.release()
        finally:
            self._tlock.release()
