"""Memory for full-resolution work (decoding a photo, the LUT and the blend of an edit), shared out.

A 9000x9000 PNG is 100 KB on the wire and 240 MB decoded; an edit of it needs about 10 bytes per
pixel at its peak (measured: 3000x3000 with the LUT, 76 -> 163 MB; the direct method 8 B/px; the region
method 12 B/px at 3000x3000 and 7 at 6000x4000, below the LUT's 12 and 9 on the same photos). Six sent
at once took the API from 110 MiB to 3.9 GiB, and glibc kept the memory after they were done. So:

- an edit's photo may have at most `edit_max_megapixels` (40 MP, above any camera a phone has), checked
  from the header before anything is decoded (413);
- every full decode and every edit takes its estimated bytes from one budget of `edit_memory_mb` (1 GiB)
  before it starts, and waits (up to WAIT_SECONDS, then 503) while others hold it: `EDIT_BYTES_PER_PIXEL`
  (16, the measured 10 plus room for an alpha channel, a mask and the encoder) for an edit,
  `DECODE_BYTES_PER_PIXEL` (4) for a decode check. One 40 MP edit (640 MB) fits alone; five 12 MP
  phone photos fit at once;
- when a large piece of work is done, freed memory is handed back to the system (`malloc_trim`), so the
  process does not stay at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from linkpix.cpus import all_cpus
from linkpix.errors import BackendUnavailable, ImageTooLarge

MIB = 1024 * 1024
EDIT_BYTES_PER_PIXEL = 16
DECODE_BYTES_PER_PIXEL = 4
WAIT_SECONDS = 120.0
TRIM_ABOVE = 32 * MIB  # work smaller than this leaves too little behind to be worth a trim


class MemoryBudget:
    """A weighted semaphore over bytes. A request larger than the whole budget runs when it is alone."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self._cond = threading.Condition()

    def configure(self, total_bytes: int) -> None:
        with self._cond:
            self.total = total_bytes
            self._cond.notify_all()

    @contextmanager
    def hold(self, nbytes: int, what: str = "full-resolution work", wait: float = WAIT_SECONDS) -> Iterator[None]:
        """Hold `nbytes` of the budget for the block; 503 when it is not free within `wait` seconds."""
        deadline = time.monotonic() + wait
        with self._cond:
            while self.used and self.used + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BackendUnavailable(f"the server is busy with other full-resolution work ({what} needs "
                                             f"{nbytes // MIB} MiB of edit_memory_mb {self.total // MIB}); "
                                             "try again shortly")
                self._cond.wait(left)
            self.used += nbytes
        try:
            with all_cpus():  # heavy C work beside the request threads' one CPU (linkpix/cpus.py)
                yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()
            if nbytes >= TRIM_ABOVE:
                give_back()


BUDGET = MemoryBudget(1024 * MIB)  # the process's one budget; `edit_memory_mb` sets it (web/services.py)


def check_pixels(size: tuple[int, int], max_megapixels: float, parameter: str = "image") -> None:
    """413 for a photo with more pixels than `max_megapixels` (edit_max_megapixels)."""
    width, height = size
    if width * height > max_megapixels * 1_000_000:
        raise ImageTooLarge(f"the photo is {width}x{height} = {width * height / 1e6:.1f} megapixels; an edit works "
                            f"on at most {max_megapixels:g} (edit_max_megapixels)",
                            {"parameter": parameter, "max_megapixels": max_megapixels})


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


_LIBC = _libc()


def give_back() -> None:
    """Return freed heap memory to the system (glibc keeps it otherwise); nothing elsewhere."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
