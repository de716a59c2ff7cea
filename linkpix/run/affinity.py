"""Keep the API process on one CPU, because its threads hand every request to each other.

A waitress request passes between threads three times (its socket loop reads it, a worker thread runs
Flask, the loop writes the answer), and every pass is a wait for Python's GIL. When the threads sit on
different CPUs each pass is also a wake-up of another CPU, which on virtual machines (the cloud GPU boxes
many users rent) can take milliseconds: measured on a 2-vCPU VM, a cached link answered 110-200 times a
second with a p99 of 590-670 ms with the threads free to move, and 9,800-10,100 times a second with a p99
of 5 ms with the same process on one CPU (`bench/hit_path.py` prints both). Python runs one thread at a
time anyway; what the pin costs is image work in C (Pillow, numpy) running in parallel with other
requests, measured in the same benchmark files (docs/operations.md).
"""

from __future__ import annotations

import logging
import os

from linkpix.errors import ConfigError

log = logging.getLogger(__name__)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where the OS has no affinity call)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def choose_cpu(setting: int | str, pid: int | None = None) -> int | None:
    """The CPU to pin to, or None to leave the process free ("off", one CPU only, no affinity call).

    "auto" picks by process id among the allowed CPUs, so replicas started side by side on one machine
    tend to land on different CPUs; a number must be one of the allowed CPUs.
    """
    cpus = allowed_cpus()
    if setting == "off" or len(cpus) < 2:
        return None
    if setting == "auto":
        return cpus[(os.getpid() if pid is None else pid) % len(cpus)]
    if setting not in cpus:
        raise ConfigError(f"'cpu_pin' is {setting}, but this process may run on CPUs {cpus} only; "
                          "set one of them, \"auto\" or \"off\"")
    return int(setting)


def pin_process(cpu: int) -> None:
    """Pin every thread of this process (those started already too: affinity is per thread on Linux)."""
    os.sched_setaffinity(0, {cpu})
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            continue
    log.info("API pinned to CPU %s (cpu_pin; \"off\" leaves it free)", cpu)
