"""A 300 MB POST to /uploads: memory of the API process before and after, and how much of the body was
taken in before the answer. The API runs as users run it (`python3 app.py`, default settings, access log
on); the baseline is the same process after a small POST, in the same run.

    python3 bench/big_body.py [--mb 300]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, free_port, make_project, wait_up

MIB = 1024 * 1024


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(port: int, size: int) -> tuple[str, int, float]:
    """POST `size` zero bytes with a Content-Length; -> (status line, bytes the server took, seconds)."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent = 0
    try:
        sock.sendall(b"POST /uploads HTTP/1.1\r\nHost: bench\r\nContent-Type: image/png\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        chunk = b"\0" * MIB
        sock.settimeout(0.0)
        reply = b""
        while sent < size:
            try:
                reply += sock.recv(65536)  # an early answer means the server stopped reading
                if reply:
                    break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(chunk[: min(MIB, size - sent)])
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
        sock.settimeout(60)
        while b"\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    return reply.split(b"\r\n", 1)[0].decode(errors="replace"), sent, time.perf_counter() - started


def main(mb: int = 300) -> None:
    project = make_project(comfyui_url="http://127.0.0.1:9")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    log = open(project / "api.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_up(f"http://127.0.0.1:{port}/openapi.json")
        post(port, 1024)  # warm up: the upload route, the error path
        baseline = rss_mb(proc.pid)
        status, sent, seconds = post(port, mb * MIB)
        time.sleep(0.5)
        after, peak = rss_mb(proc.pid), rss_mb(proc.pid, "VmHWM")
        figures = {"post_mb": mb, "status": status, "body_mb_taken": round(sent / MIB, 1),
                   "seconds": round(seconds, 2), "rss_before_mb": round(baseline, 1),
                   "rss_after_mb": round(after, 1), "rss_peak_mb": round(peak, 1),
                   "rss_after_vs_before": round(after / baseline, 2),
                   "rss_peak_vs_before": round(peak / baseline, 2)}
        print(f"big body: a {mb} MB POST /uploads answered '{status}' after taking {sent / MIB:.0f} MB in "
              f"{seconds:.2f} s; API memory {baseline:.0f} MB before, {after:.0f} MB after "
              f"(peak {peak:.0f} MB, x{peak / baseline:.2f} of before)")
        print(json.dumps(figures))
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    main(parser.parse_args().mb)
