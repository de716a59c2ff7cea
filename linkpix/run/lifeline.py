"""Children of the launcher die with it, however it dies.

The launcher starts the API, the dashboard and the simulator in sessions of their own
(`start_new_session=True`), so Ctrl+C and a closed terminal reach only the launcher, which stops them in
order. But a launcher killed with SIGKILL (or crashing) runs no code at all, and its children would keep
the ports with parent 1. Two lines of defence:

- on Linux, `prctl(PR_SET_PDEATHSIG, SIGTERM)` in the child between fork and exec: the kernel itself sends
  SIGTERM when the launcher dies (it runs after `setsid`, which does not undo it);
- everywhere, `follow_parent()` in the child: a daemon thread that sends SIGTERM to its own process once
  its parent is gone (the parent pid is passed in `LINKPIX_PARENT_PID`).

Either way the child stops through its own SIGTERM handler, the same clean stop as the launcher's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable

PARENT_ENV = "LINKPIX_PARENT_PID"
PR_SET_PDEATHSIG = 1
CHECK_SECONDS = 1.0


def death_signal_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A `preexec_fn` that asks Linux for SIGTERM when `parent_pid` dies; None elsewhere.

    libc is loaded here, in the parent, so the child (between fork and exec, where little is safe) only
    makes one C call and one `getppid`.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the launcher died before the call: nobody will signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def follow_parent(environ: dict[str, str] | None = None, interval: float = CHECK_SECONDS) -> threading.Thread | None:
    """In a child of the launcher: SIGTERM ourselves once the launcher is gone. No-op when not started
    by the launcher (no `LINKPIX_PARENT_PID`)."""
    value = (environ if environ is not None else os.environ).get(PARENT_ENV, "")
    if not value.isdigit():
        return None
    parent = int(value)
    if os.getppid() != parent:  # already gone before we got here
        os.kill(os.getpid(), signal.SIGTERM)
        return None
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=watch, name="follow-parent", daemon=True)
    thread.start()
    return thread
