"""A full cache: what storing a new picture and reading /health's figures cost once the cache is at its size
limit (`cache_max_mb`, 2048 by default: the state every long-running LinkPix reaches), against an empty one.

Each store then evicts the oldest entry (two more files removed). Goal: a store's cost does not grow with the
cache: the largest full cache within 1.5x of the smallest (it grew with it when each eviction recounted the
folder from disk and sorted every entry: 21 ms a store at 2,000 entries, 226 ms at 20,000).

    python3 bench/cache_full.py [entries ...]      # default: 2000 20000
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median

sys.path.insert(0, str(ROOT))
from linkpix.storage.cache import ImageCache  # noqa: E402

PICTURE = b"\x89PNG\r\n\x1a\n" + os.urandom(4000)  # what is stored does not matter to the cache
STORES = 50


def store_ms(cache: ImageCache, prefix: str) -> float:
    """Median milliseconds of STORES stores of new entries."""
    times = []
    for i in range(STORES):
        started = time.perf_counter()
        cache.put("u", f"{prefix}{i:031x}", "png", PICTURE, {})
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def main(sizes: list[int]) -> dict[int, float]:
    """A store's median time in a full cache of each size (ms)."""
    root = Path(tempfile.mkdtemp(prefix="linkpix-cachefull-"))
    figures: dict[int, float] = {}
    try:
        empty = ImageCache(root / "empty")
        baseline = store_ms(empty, "e")
        print(f"empty cache: a store {baseline:.2f} ms")
        for n in sizes:
            cache = ImageCache(root / str(n))
            for i in range(n):
                cache.put("u", f"{i:032x}", "png", PICTURE, {})
            cache.syncer.flush(120)
            cache.set_limits(cache.stats()["bytes"], 0)  # full: every new entry evicts the oldest
            full = store_ms(cache, "f")
            started = time.perf_counter()
            cache.stats()
            stats_ms = (time.perf_counter() - started) * 1000
            figures[n] = full
            print(f"full cache of {n} entries: a store {full:.2f} ms ({full / baseline:.2f}x the empty cache's, "
                  f"which evicts nothing), /health's figures {stats_ms:.2f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if len(figures) > 1:
        small, large = min(figures), max(figures)
        print(f"{large} entries / {small} entries: {figures[large] / figures[small]:.2f}x (goal <= 1.5)")
    return figures


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 20000])
