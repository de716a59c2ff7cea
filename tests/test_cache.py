"""The image cache: keys, atomic storage, lookups by public name, eviction, crash leftovers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from linkpix.errors import BadRequest, NotFound
from linkpix.storage.cache import ImageCache, cache_key
from linkpix.storage.durable import Syncer

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}


def test_key_changes_with_anything_that_changes_the_picture():
    base = cache_key(GRAPH, "png")
    assert base == cache_key({"1": {"inputs": {"width": 64}, "class_type": "EmptyImage"}}, "png")
    assert base != cache_key(GRAPH, "webp")
    assert base != cache_key({"1": {"class_type": "EmptyImage", "inputs": {"width": 65}}}, "png")
    assert base != cache_key(GRAPH, "png", [b"input image"])


def test_put_get_and_public_lookup(tmp_path):
    cache = ImageCache(tmp_path)
    stored = cache.put("alice", "a" * 32, "png", b"\x89PNG fake", {"prompt": "fox"})
    got = cache.get("alice", "a" * 32)
    assert got is not None and got.path == stored.path and got.meta["prompt"] == "fox"
    assert cache.get("bob", "a" * 32) is None
    assert cache.lookup_file("alice", stored.filename).size == len(b"\x89PNG fake")
    for user, name in [("alice", "../x.png"), ("..", stored.filename), ("alice", "a" * 32 + ".exe")]:
        with pytest.raises(NotFound):
            cache.lookup_file(user, name)
    with pytest.raises(BadRequest):
        cache.put("../evil", "b" * 32, "png", b"x", {})


def test_image_without_sidecar_is_never_served(tmp_path):
    cache = ImageCache(tmp_path)
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / ("c" * 32 + ".png")).write_bytes(b"half written")
    assert cache.get("alice", "c" * 32) is None


def test_eviction_by_size_drops_oldest_first(tmp_path):
    cache = ImageCache(tmp_path, max_bytes=2500)
    keys = [f"{i:032x}" for i in range(4)]
    for key in keys:
        cache.put("u", key, "png", b"x" * 1000, {})
        time.sleep(0.01)
    assert cache.get("u", keys[0]) is None and cache.get("u", keys[1]) is None
    assert cache.get("u", keys[2]) is not None and cache.get("u", keys[3]) is not None
    assert cache.stats()["bytes"] <= 2500


def test_eviction_by_age(tmp_path):
    cache = ImageCache(tmp_path, max_age_s=60)
    old = cache.put("u", "d" * 32, "png", b"x", {})
    os.utime(old.path, (time.time() - 120, time.time() - 120))
    cache = ImageCache(tmp_path, max_age_s=60)  # a restart sees the file's real age
    cache.put("u", "e" * 32, "png", b"y", {})
    assert cache.get("u", "d" * 32) is None and cache.get("u", "e" * 32) is not None


def test_restart_counts_existing_files_and_removes_temp_leftovers(tmp_path):
    ImageCache(tmp_path).put("u", "f" * 32, "png", b"x" * 10, {})
    leftover = tmp_path / "u" / ".ffff.png.123.tmp"
    leftover.write_bytes(b"partial")
    cache = ImageCache(tmp_path)
    assert cache.stats()["images"] == 1 and cache.stats()["bytes"] == 10
    assert not leftover.exists()
    assert cache.clear("u") == 1 and cache.get("u", "f" * 32) is None


def test_staged_entry_is_invisible_until_committed_and_discard_leaves_nothing(tmp_path):
    """`stage` writes and syncs both files under temporary names (the slow part, done while a run is being
    confirmed); readers see nothing until `commit`, and `discard` leaves no file behind."""
    cache = ImageCache(tmp_path)
    staged = cache.stage("alice", "e" * 32, "png", b"\x89PNG staged", {"prompt": "owl"})
    assert cache.get("alice", "e" * 32) is None
    assert sorted(p.name.endswith(".tmp") for p in (tmp_path / "alice").iterdir()) == [True, True]
    stored = staged.commit()
    assert cache.get("alice", "e" * 32).meta["prompt"] == "owl" and stored.path.read_bytes() == b"\x89PNG staged"
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == ["e" * 32 + ".json", "e" * 32 + ".png"]
    assert cache.stats()["images"] == 1
    dropped = cache.stage("alice", "f" * 32, "png", b"\x89PNG dropped", {})
    dropped.discard()
    assert cache.get("alice", "f" * 32) is None
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == ["e" * 32 + ".json", "e" * 32 + ".png"]


def test_an_entry_cut_short_by_a_power_loss_is_a_miss_and_is_made_whole_again(tmp_path):
    """The bytes reach the disk just after an entry is published (storage/durable.py): a power loss in
    between can leave the image shorter than its sidecar records (ext4 leaves such files empty). Never
    served; the next put replaces it."""
    cache = ImageCache(tmp_path)
    stored = cache.put("alice", "c" * 32, "png", b"\x89PNG whole picture", {})
    stored.path.write_bytes(b"")  # what a power loss before the sync leaves
    fresh = ImageCache(tmp_path)  # the machine is back up: a new process
    assert fresh.get("alice", "c" * 32) is None
    with pytest.raises(NotFound):
        fresh.lookup_file("alice", stored.filename)
    again = fresh.put("alice", "c" * 32, "png", b"\x89PNG whole picture", {})
    assert fresh.get("alice", "c" * 32).path.read_bytes() == again.path.read_bytes() == b"\x89PNG whole picture"


def test_published_entries_are_synced_to_disk_and_close_waits_for_it(tmp_path):
    cache = ImageCache(tmp_path)
    for n in range(20):
        cache.put("alice", f"{n:032x}", "png", b"\x89PNG" + bytes(5000), {})
    cache.close(timeout=10)  # returns once the sync thread has nothing left
    assert cache.syncer.flush(timeout=0)
    evicted = cache.put("alice", "d" * 32, "png", b"\x89PNG", {})
    evicted.path.unlink()  # removed before its sync (evicted, replaced): skipped, not an error
    evicted.path.with_suffix(".json").unlink()
    assert cache.syncer.flush(timeout=10)


def test_a_replaced_entry_is_the_newest_and_eviction_takes_the_oldest_first(tmp_path):
    cache = ImageCache(tmp_path)
    for name in "abc":
        cache.put("u", name * 32, "png", b"\x89PNG" + bytes(996), {})
    cache.put("u", "a" * 32, "png", b"\x89PNG" + bytes(996), {})  # made again: now the newest
    cache.set_limits(2000, 0)  # evicts at once
    assert cache.get("u", "b" * 32) is None and cache.get("u", "a" * 32) and cache.get("u", "c" * 32)
    os.utime(cache.get("u", "c" * 32).path, (time.time() - 60, time.time() - 60))
    restarted = ImageCache(tmp_path, max_bytes=1000)  # a restart orders what it finds by age
    assert [p.name[0] for p in restarted.evict()] == ["c"]


def test_a_sync_that_fails_is_reported_and_the_entry_withdrawn(tmp_path):
    """A file system that fails a sync (here procfs, whose files refuse fsync with EINVAL: a real failing call)
    is reported to the cache, which withdraws the entry rather than serve bytes the disk may not hold."""
    failed = []
    syncer = Syncer(on_failure=failed.append)
    gone = tmp_path / "evicted.png"  # removed before its sync: nothing to keep, not a failure
    syncer.add(Path("/proc/self/stat"), gone)
    assert syncer.flush(timeout=10) and failed == [Path("/proc/self/stat")]
    cache = ImageCache(tmp_path / "cache")
    stored = cache.put("u", "f" * 32, "png", b"\x89PNG" + bytes(100), {})
    cache.withdraw(stored.path.with_suffix(".json"))  # what the syncer calls when the sidecar's sync failed
    assert cache.get("u", "f" * 32) is None and not stored.path.exists() and cache.stats()["images"] == 0
