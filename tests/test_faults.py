"""Faults that are not the request's get answers of their own (issue 20, item 5), over real sockets.

A full cache disk is a real full file system: a 1 MiB tmpfs mounted on the cache folder (root only; the
test says why it skips otherwise). Redis is a real redis-server, restarted empty (test_faults_redis.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jobs_support import JobsServer


@contextlib.contextmanager
def tiny_disk(folder: Path) -> Iterator[Path]:
    """`folder` as a 1 MiB tmpfs for the block; pytest.skip when this process may not mount one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs (a real full disk) needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write until the disk is full; returns the filler file (delete it to make room)."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


@pytest.fixture
def full_cache(project, simulator, tmp_path) -> Iterator[tuple[JobsServer, Path]]:
    with tiny_disk(tmp_path / "tiny-cache") as folder:
        server = JobsServer(project, simulator.url, output_dir=str(folder))
        try:
            yield server, folder
        finally:
            server.close()


def test_a_full_cache_disk_is_a_507_naming_the_folder_and_leaves_nothing_half_written(full_cache):
    server, folder = full_cache
    filler = fill(folder)
    r = server.get("/prompt/a%20fox%20on%20a%20full%20disk?width=64&height=64")
    assert r.status_code == 507, r.text
    assert r.json()["error"] == "storage_full" and str(folder) in r.json()["message"]
    assert "disk is full" in r.json()["message"]
    job_id = server.submit(prompt="a job on a full disk")
    job = server.wait_for(job_id)
    assert job["status"] == "failed" and job["error"]["error"] == "storage_full", job
    front = requests.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a front on a full disk", "width": 64,
                                                                   "height": 64}, timeout=60)
    assert front.status_code == 507 and str(folder) in front.text, front.text
    assert not [p for p in folder.rglob("*") if p.is_file() and p != filler]  # nothing half-written is left
    filler.unlink()
    again = server.get("/prompt/a%20fox%20on%20a%20full%20disk?width=64&height=64")
    assert again.status_code == 200 and again.headers["X-LinkPix-Cache"] == "miss"
    assert again.content.startswith(b"\x89PNG")
