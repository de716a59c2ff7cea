"""Keep the API process on one CPU, because its threads hand every request to each other; let heavy
image work out onto every CPU.

A waitress request passes between threads three times (its socket loop reads it, a worker thread runs
Flask, the loop writes the answer), and every pass is a wait for Python's GIL. When the threads sit on
different CPUs each pass is also a wake-up of another CPU, which on virtual machines (the cloud GPU boxes
many users rent) can take milliseconds: measured on a 2-vCPU VM, a cached link answered 110-200 times a
second with a p99 of 590-670 ms with the threads free to move, and 9,800-10,100 times a second with a p99
of 5 ms with the same process on one CPU (`bench/hit_path.py` prints both). Python runs one thread at a
time anyway; what the pin costs is image work in C (Pillow, numpy) running in parallel with other
requests: so a block of full-resolution work (imaging/budget.py holds it) runs its thread on every CPU the
process started with, `all_cpus()`: four 12 MP edits at once took 4.4 s pinned, 3.5 s free, and 3.4 s with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from linkpix.errors import ConfigError

log = logging.getLogger(__name__)
# The CPUs the process was started with (read once, before anything pins it): where heavy work may go.
STARTED_ON = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where the OS has no affinity call)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def choose_cpu(setting: int | str) -> int | None:
    """The CPU to pin to, or None to leave the process free ("off", one CPU only, no affinity call).

    "auto" picks by process id among the allowed CPUs, so replicas started side by side on one machine
    tend to land on different CPUs; a number must be one of the allowed CPUs.
    """
    cpus = allowed_cpus()
    if setting == "off" or len(cpus) < 2:
        return None
    if setting == "auto":
        return cpus[os.getpid() % len(cpus)]
    if setting not in cpus:
        raise ConfigError(f"'cpu_pin' is {setting}, but this process may run on CPUs {cpus} only; "
                          "set one of them, \"auto\" or \"off\"")
    return int(setting)


def pin_process(cpu: int) -> bool:
    """Pin every thread of this process (those started already too: affinity is per thread on Linux).
    False, with a warning, where the system refuses (a sandbox, a container without the right): the API
    then runs unpinned rather than not at all."""
    try:
        os.sched_setaffinity(0, {cpu})
        tasks = os.listdir("/proc/self/task")
    except OSError as exc:
        log.warning("could not pin the API to CPU %s (%s); it runs on every CPU", cpu, exc)
        return False
    for task in tasks:
        try:
            os.sched_setaffinity(int(task), {cpu})
        except OSError:  # a thread that ended meanwhile
            continue
    log.info("API pinned to CPU %s (cpu_pin; \"off\" leaves it free)", cpu)
    return True


@contextmanager
def all_cpus() -> Iterator[None]:
    """Run this thread's block on every CPU the process started with, then put it back where it was.

    For work that spends its time in C without the GIL (decoding, a LUT, a blend of a whole photo): it
    can then run beside the pinned request threads instead of taking turns with them.
    """
    home = os.sched_getaffinity(0) if STARTED_ON else STARTED_ON
    if home == STARTED_ON:
        yield
        return
    try:
        os.sched_setaffinity(0, STARTED_ON)
    except OSError:  # refused: the work runs where the thread is
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, home)
