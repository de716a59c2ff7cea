"""Live links (`?live=1`): first part latency, frame delay, frames/s, bytes/frame, and hits with 100 viewers.

The API runs as users run it (`python3 app.py`, default settings, access log on) against the simulator
(in this process), which sends a JPEG preview (up to 512 px) with each sampler step, as ComfyUI does with
`--preview-method auto`.

- first part: from sending the request to the first part's closing boundary (goal <= 0.5 s);
- frame delay: from LinkPix receiving a frame from ComfyUI's websocket (the part's X-LinkPix-Received) to
  the viewer having the whole part, with steps slower than `live_fps` so no frame waits for the rate limit
  (goal <= 50 ms); ComfyUI -> LinkPix is one loopback websocket message before that;
- frames/s and bytes/frame with fast steps (the viewer's rate limit, `live_fps`, decides the former);
- hits' p99 (wrk, c=16) with nothing open (baseline, same run) and with 100 live viewers open on 20 new links
  (goal < 50 ms); the API's RSS before and after opening them (goal <= 1 MB per viewer); and how long a new
  link takes to reach ComfyUI meanwhile.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from common import API_PIDS, linkpix_api, make_project, median, percentile, simulator, wrk

HIT = "/prompt/warm%20hit?width=256&height=256"
VIEWERS, LINKS = 100, 20


@dataclass
class Viewer:
    """One live viewer on a raw socket: the parts it got, with arrival times (time.time())."""

    url: str
    parts: list[tuple[dict[str, str], int, float]] = field(default_factory=list)
    started: float = 0.0
    opened: threading.Event = field(default_factory=threading.Event)
    content_type: str = ""

    def run(self, timeout: float = 120.0) -> None:
        where = urlsplit(self.url)
        self.started = time.time()
        with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
            target = where.path + "?" + where.query
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {where.netloc}\r\nAccept: image/*\r\n\r\n".encode())
            buf = b""
            boundary = b""
            while True:
                chunk = sock.recv(262144)
                if not chunk:
                    return
                buf += chunk
                if not boundary:
                    if b"\r\n\r\n" not in buf:
                        continue
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    for line in head.decode("latin-1").split("\r\n"):
                        if line.lower().startswith("content-type:"):
                            self.content_type = line.split(":", 1)[1].strip()
                    if "boundary=" not in self.content_type:
                        return
                    boundary = b"\r\n--" + self.content_type.split("boundary=", 1)[1].encode()
                    buf = b"\r\n" + buf
                    self.opened.set()
                buf = self._take_parts(buf, boundary)
                if buf.endswith(b"--\r\n") and not buf.strip(b"-\r\n"):
                    return

    def _take_parts(self, buf: bytes, boundary: bytes) -> bytes:
        while True:
            start = buf.find(boundary)
            end = buf.find(boundary, start + len(boundary)) if start >= 0 else -1
            if end < 0:
                return buf
            piece = buf[start + len(boundary):end].lstrip(b"\r\n")
            head, _, data = piece.partition(b"\r\n\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in head.decode("latin-1").split("\r\n") if line)}
            self.parts.append((headers, len(data), time.time()))
            buf = buf[end:]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def one_viewer(api: str, sim, step_delay: float, steps: int, name: str) -> Viewer:
    sim.faults.step_delay = step_delay
    viewer = Viewer(f"{api}/prompt/{name}?live=1&steps={steps}")
    viewer.run()
    return viewer


def phase(api: str, sim, name: str, count: int, live: bool, pid: int | None = None) -> dict[str, float]:
    """`count` viewers (live or plain) of `LINKS` new links whose runs take 30 s each, one at a time: hits
    measured while they wait; then ComfyUI is sped up until every run is done."""
    sim.faults.step_delay = 1.0
    base = sim.prompts_received
    viewers = [Viewer(f"{api}/prompt/{name}%20{i % LINKS}?steps=30" + ("&live=1" if live else ""))
               for i in range(count)]
    threads = [threading.Thread(target=v.run, daemon=True) for v in viewers]
    for t in threads:
        t.start()
    if live:
        for v in viewers:
            v.opened.wait(30)
    deadline = time.monotonic() + 30  # the simulator's counter: /health itself would wait for a free thread
    while sim.prompts_received < base + LINKS and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    out: dict[str, float] = {"opened": sum(v.opened.is_set() for v in viewers)}
    if pid is not None:
        out["rss"] = rss_kb(pid)
    figures = [wrk(api + HIT, seconds=3) for _ in range(3)]
    out.update(p99=median([f["p99_ms"] for f in figures]), rps=median([f["rps"] for f in figures]),
               errors=sum(f["errors"] for f in figures), answered=sum(f["requests"] for f in figures))
    if live:
        received, began = sim.prompts_received, time.monotonic()
        threading.Thread(target=requests.get, args=(f"{api}/prompt/new%20during%20{name}?steps=2",),
                         kwargs={"timeout": 120}, daemon=True).start()
        while sim.prompts_received == received and time.monotonic() - began < 10:
            time.sleep(0.005)
        out["new_link_ms"] = (time.monotonic() - began) * 1000
    sim.faults.step_delay = 0.0
    for t in threads:
        t.join(120)
    deadline = time.monotonic() + 60
    while sim.prompts_executed < sim.prompts_received and time.monotonic() < deadline:
        time.sleep(0.1)
    return out


def main() -> dict[str, float]:
    project = make_project(workflow_path="demo.json")
    with simulator(step_delay=0.0) as sim, linkpix_api(project, sim.url) as api:
        requests.get(api + HIT, timeout=60).raise_for_status()
        wrk(api + HIT, seconds=1)  # warm-up
        # Single viewers: latency and delay with slow steps, rate and size with fast ones.
        firsts, delays, sizes = [], [], []
        for i in range(3):
            slow = one_viewer(api, sim, 0.3, 8, f"slow%20{i}")
            firsts.append(slow.parts[0][2] - slow.started)
            delays += [(t - float(h["x-linkpix-received"])) * 1000 for h, _, t in slow.parts
                       if h.get("x-linkpix-part") == "preview"]
        fast = one_viewer(api, sim, 0.05, 80, "fast%20one")
        previews = [(n, t) for h, n, t in fast.parts if h.get("x-linkpix-part") == "preview"]
        sizes = [n for n, _ in previews]
        fps = (len(previews) - 1) / (previews[-1][1] - previews[0][1]) if len(previews) > 1 else 0.0
        kinds = [h.get("x-linkpix-part") for h, _, _ in fast.parts]
        print(f"one viewer: first part {median(firsts) * 1000:.0f} ms median of {len(firsts)} (goal <= 500 ms); "
              f"frame delay median {median(delays):.1f} ms, p95 {percentile(delays, 95):.1f} ms, "
              f"max {max(delays):.1f} ms over {len(delays)} frames (goal <= 50 ms)")
        print(f"fast steps (20 steps/s): {fps:.1f} frames/s to the viewer (live_fps 4), "
              f"{statistics.mean(sizes) / 1024:.1f} KB/frame mean, {max(sizes) / 1024:.1f} KB max at 512 px "
              f"(goal <= 60 KB); parts: {kinds.count('card')} card, {len(previews)} previews, {kinds[-1]} last")
        idle = [wrk(api + HIT, seconds=3) for _ in range(3)]
        pid = API_PIDS[api]
        # The same 20 pending runs, watched three ways: 1 plain waiter each (the cost of pending runs alone),
        # 100 live viewers, and 100 plain waiters (what 100 viewers would cost if each held a server thread).
        pending = phase(api, sim, "pending", LINKS, live=False)
        rss_before = rss_kb(pid)
        watched = phase(api, sim, "watched", VIEWERS, live=True, pid=pid)
        rss_after, opened, new_link_ms = watched["rss"], watched["opened"], watched["new_link_ms"]
        plain = phase(api, sim, "waited", VIEWERS, live=False)
        rss_per_viewer = (rss_after - rss_before) / max(1, opened)
    p99_idle = median([f["p99_ms"] for f in idle])
    p99_loaded = watched["p99"]
    print(f"hits (wrk c=16, median p99 of 3 x 3 s): nothing open {p99_idle:.1f} ms "
          f"({median([f['rps'] for f in idle]):.0f} req/s); {LINKS} runs pending, 1 plain waiter each "
          f"{pending['p99']:.1f} ms; the same with {opened} live viewers {p99_loaded:.1f} ms "
          f"({watched['rps']:.0f} req/s, non-2xx {watched['errors']:.0f}) (goal < 50 ms)")
    print(f"  with {VIEWERS} plain waiters instead (each holds one of waitress's 48 threads): "
          f"{plain['answered']:.0f} hits answered in 9 s ({watched['answered']:.0f} with the live viewers)"
          + (f", p99 {plain['p99']:.1f} ms" if plain["answered"] else ""))
    print(f"  ratios: live viewers / nothing open {p99_loaded / p99_idle:.2f}; live viewers / pending runs alone "
          f"{p99_loaded / pending['p99']:.2f}")
    print(f"memory: API RSS {rss_before / 1024:.1f} MB -> {rss_after / 1024:.1f} MB with {opened} viewers and "
          f"{LINKS} live runs: {rss_per_viewer:.0f} KB per viewer (goal <= 1024 KB)")
    print(f"a new link reached ComfyUI {new_link_ms:.0f} ms after its request, with the viewers open")
    return {"live_first_part_ms": median(firsts) * 1000, "live_frame_delay_ms": median(delays),
            "live_fps": fps, "live_kb_per_frame": statistics.mean(sizes) / 1024,
            "live_hits_p99_ms": p99_loaded, "live_rss_kb_per_viewer": rss_per_viewer}


if __name__ == "__main__":
    main()
