"""A job store that keeps many finished jobs (`jobs_keep_days`: a script's jobs of a week): what accepting one
more costs, against an empty store. A submit counts the user's unfinished jobs (`jobs_max_queued_per_user`).

Goal: a submit with 50,000 kept jobs of the same user within 2x of one into an empty store (it read every one
of the user's jobs before the (state, user) index: 37 ms a submit).

    python3 bench/jobs_kept.py [kept]      # default: 50000
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, median

sys.path.insert(0, str(ROOT))
from linkpix.jobs.store import SUCCEEDED, Job, JobStore  # noqa: E402

SPEC = [{"graph": {str(n): {"class_type": "KSampler", "inputs": {"seed": n, "steps": 20}} for n in range(12)}}]


def submit_ms(store: JobStore, rounds: int = 200) -> float:
    times = []
    for _ in range(rounds):
        job = Job(id=uuid.uuid4().hex, user="default", state="queued", created=time.time(), image_count=1, spec=SPEC)
        started = time.perf_counter()
        store.insert_within(job, 10**6, 10**6)
        times.append((time.perf_counter() - started) * 1000)
        store.finish(job.id, SUCCEEDED)
    return median(times)


def main(kept: int = 50_000) -> float:
    folder = Path(tempfile.mkdtemp(prefix="linkpix-jobs-kept-"))
    try:
        empty = submit_ms(JobStore(folder / "empty.sqlite3"))
        store = JobStore(folder / "kept.sqlite3")
        for _ in range(kept):  # finished jobs of the same user, as a week of a script's jobs leaves them
            store.insert(Job(id=uuid.uuid4().hex, user="default", state=SUCCEEDED, created=time.time(),
                             image_count=1, spec=SPEC))
        full = submit_ms(store)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"a submit: empty store {empty:.3f} ms, with {kept} kept jobs of the user {full:.3f} ms "
          f"({full / empty:.2f}x; goal <= 2)")
    return full / empty


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
