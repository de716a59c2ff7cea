"""The fingerprint's change detection: inotify on Linux (one poll while nothing changed), stats elsewhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from linkpix.storage.jsonstore import JsonStore
from linkpix.storage.watch import DirWatcher

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@linux_only
def test_nothing_changed_is_answered_without_statting(tmp_path: Path) -> None:
    store = JsonStore()
    store.write(tmp_path / "a.json", {"v": 1})
    store.watch_dirs([tmp_path])
    first = store.fingerprint()
    assert store.fingerprint() is first  # the same object: no stat was needed to know
    (tmp_path / "a.json").write_text('{"v": 2}')  # in place, by someone else
    assert store.fingerprint() != first


@linux_only
def test_a_folder_created_later_is_watched_once_it_exists(tmp_path: Path) -> None:
    store = JsonStore()
    missing = tmp_path / "settings" / "demo.json"
    assert store.get(missing, default={}) == {}
    first = store.fingerprint()
    missing.parent.mkdir()
    missing.write_text(json.dumps({"steps": 3}))
    second = store.fingerprint()
    assert second != first
    with missing.open("a") as fh:  # an edit in place inside the new folder is seen too
        fh.write(" ")
    assert store.fingerprint() != second


@linux_only
def test_a_watched_folder_replaced_under_the_store_is_watched_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "styles.json").write_text("{}")
    store = JsonStore()
    store.get(data / "styles.json")
    store.watch_dirs([data])
    store.fingerprint()
    os.rename(data, tmp_path / "old")
    data.mkdir()
    (data / "styles.json").write_text('{"x": {}}')
    after_swap = store.fingerprint()
    (data / "styles.json").write_text('{"y": {}}')
    assert store.fingerprint() != after_swap


@linux_only
def test_the_generation_moves_on_after_max_age_even_without_events(tmp_path: Path) -> None:
    watcher = DirWatcher.open(max_age=0.0)
    assert watcher is not None
    watcher.watch_folder(tmp_path)
    assert watcher.generation() != watcher.generation()  # a network file system is looked at again


def test_without_inotify_every_call_stats(tmp_path: Path) -> None:
    store = JsonStore(watch=False)  # as where DirWatcher.open() finds no inotify
    store.write(tmp_path / "a.json", {"v": 1})
    first = store.fingerprint()
    assert store.fingerprint() == first and store.fingerprint() is not first
    (tmp_path / "a.json").write_text('{"v": 22}')
    assert store.fingerprint() != first


@linux_only
def test_writes_to_other_files_beside_the_watched_ones_cost_nothing(tmp_path: Path) -> None:
    """A log file or a database beside config.json or the data files is written all the time: that must
    not send every request back to statting."""
    store = JsonStore()
    store.write(tmp_path / "styles.json", {})
    store.watch_files([tmp_path / "config.json"])
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "linkpix.log").write_text("")
    first = store.fingerprint()
    with (tmp_path / "linkpix.log").open("a") as log:
        for i in range(5):
            log.write(f"line {i}\n")
            log.flush()
            assert store.fingerprint() is first
    (tmp_path / "config.json").write_text('{"timeout": 5}')
    assert store.fingerprint() != first
