"""The shared-file store: atomic writes, reload on change, lost-update safety across processes,
broken files reported with path and line while the last good version is served, cheap fingerprint."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from linkpix.errors import ConfigError
from linkpix.storage.jsonstore import JsonStore


def _write_raw(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_reads_are_cached_and_reloaded_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "styles.json"
    _write_raw(path, '{"a": 1}')
    store = JsonStore()
    first = store.load(path)
    assert first.value == {"a": 1}
    assert store.load(path) is first  # unchanged file: no re-parse
    # Same size, different content, written in place by another program.
    _write_raw(path, '{"a": 2}')
    os.utime(path, ns=(time.time_ns(), first.stamp[1] + 1_000_000))
    assert store.get(path) == {"a": 2}


def test_write_is_atomic_and_visible_to_other_stores(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "prefs.json"
    writer, reader = JsonStore(), JsonStore()
    assert reader.get(path, default={}) == {}
    writer.write(path, {"alice": {"style": "kawaii", "text": "ünïcode ✓"}})
    assert reader.get(path, default={}) == {"alice": {"style": "kawaii", "text": "ünïcode ✓"}}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert json.loads(path.read_text(encoding="utf-8"))["alice"]["style"] == "kawaii"


def test_missing_file_without_default_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        JsonStore().get(tmp_path / "nope.json")
    assert "nope.json" in err.value.message


def test_shared_value_is_protected_by_update_and_get_copy(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    store = JsonStore()
    store.write(path, {"n": [1]})
    mine = store.get_copy(path)
    mine["n"].append(2)
    assert store.get(path) == {"n": [1]}
    assert store.update(path, lambda d: {**d, "m": 1}) == {"n": [1], "m": 1}
    assert store.update(path, lambda d: d["n"].append(3)) == {"n": [1, 3], "m": 1}  # in-place edit
    assert store.get(path) == {"n": [1, 3], "m": 1}


def test_broken_file_is_reported_with_line_and_last_good_version_served(tmp_path: Path) -> None:
    path = tmp_path / "styles.json"
    store = JsonStore()
    store.write(path, {"kawaii": {"pre": "cute"}})
    assert store.get(path) == {"kawaii": {"pre": "cute"}}
    _write_raw(path, '{\n  "kawaii": {"pre": "cute"},\n  "photo": {"pre": "photo",}\n}\n')
    assert store.get(path) == {"kawaii": {"pre": "cute"}}  # still served
    problems = store.problems()
    assert len(problems) == 1
    assert problems[0].path == str(path) and problems[0].line == 3
    assert "line 3" in str(problems[0]) and "styles.json" in str(problems[0])
    assert store.problem(path) == problems[0]
    with pytest.raises(ConfigError):  # refusing to overwrite what a person is half-way through
        store.update(path, lambda d: d)
    _write_raw(path, '{"photo": {"pre": "photo"}}\n')
    assert store.get(path) == {"photo": {"pre": "photo"}}
    assert store.problems() == []


def test_broken_file_with_no_good_version_raises_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    _write_raw(path, '{"a": 1,,}')
    with pytest.raises(ConfigError) as err:
        JsonStore().get(path)
    assert "x.json" in err.value.message and "line 1" in err.value.message


def test_broken_yaml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    _write_raw(path, "seed: 3.seed\n")
    store = JsonStore()
    assert store.get(path) == {"seed": "3.seed"}
    _write_raw(path, "seed: 3.seed\nsteps: [unclosed\nother: 1\n")
    assert store.get(path) == {"seed": "3.seed"}
    assert store.problems()[0].line is not None and store.problems()[0].line >= 2


def test_fingerprint_changes_on_every_kind_of_change_and_is_cheap(tmp_path: Path) -> None:
    wdir = tmp_path / "workflows"
    wdir.mkdir()
    a = wdir / "a.json"
    store = JsonStore()
    store.write(a, {"v": 1})
    store.watch_dirs([wdir])
    fp = store.fingerprint()
    assert store.fingerprint() == fp
    JsonStore().write(a, {"v": 2})  # another process replaces it
    assert store.fingerprint() != fp
    fp = store.fingerprint()
    _write_raw(wdir / "b.json", "{}")  # a new workflow file appears
    assert store.fingerprint() != fp
    fp = store.fingerprint()
    with a.open("a", encoding="utf-8") as fh:  # edited in place
        fh.write(" ")
    assert store.fingerprint() != fp
    started = time.perf_counter()
    for _ in range(1000):
        store.fingerprint()
    assert (time.perf_counter() - started) / 1000 < 0.001


def _hammer(path: str, me: str, count: int) -> None:
    store = JsonStore(lock_timeout=60)

    def bump(styles: dict) -> dict:
        mine = styles.setdefault(me, {"pre": "", "post": "", "description": "0"})
        mine["description"] = str(int(mine["description"]) + 1)
        total = styles.setdefault("total", {"pre": "", "post": "", "description": "0"})
        total["description"] = str(int(total["description"]) + 1)
        return styles

    for _ in range(count):
        store.update(path, bump)
        store.get(path)  # reads mixed with writes must always see a whole file


@pytest.mark.slow
def test_two_processes_updating_styles_lose_nothing_and_never_tear_the_file(project: Path) -> None:
    path = project / "data" / "styles.json"
    shipped = json.loads(path.read_text(encoding="utf-8"))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_hammer, args=(str(path), name, 500)) for name in ("proc-a", "proc-b")]
    for w in workers:
        w.start()
    torn = 0
    reads = 0
    while any(w.is_alive() for w in workers):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            torn += 1
        reads += 1
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    final = JsonStore().get(path)
    assert torn == 0 and reads > 0
    assert final["proc-a"]["description"] == "500"
    assert final["proc-b"]["description"] == "500"
    assert final["total"]["description"] == "1000"
    assert all(final[k] == v for k, v in shipped.items())
