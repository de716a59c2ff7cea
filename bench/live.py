"""Live links (`?live=1`): first part latency, frame delay, frames/s, bytes/frame, and hits with 100 viewers.

The API runs as users run it (`python3 app.py`, default settings, access log on) against the simulator
(in this process), which sends a JPEG preview (up to 512 px) with each sampler step, as ComfyUI does with
`--preview-method auto`.

- first part: from sending the request to the first part's closing boundary (goal <= 0.5 s);
- frame delay: from LinkPix receiving a frame from ComfyUI's websocket (the part's X-LinkPix-Received) to
  the viewer having the whole part, with steps slower than `live_fps` so no frame waits for the rate limit
  (goal <= 50 ms); ComfyUI -> LinkPix is one loopback websocket message before that;
- frames/s and bytes/frame with fast steps (the viewer's rate limit, `live_fps`, decides the former);
- what heavy frames (50-75 KB, as a real model's previews) cost the API's CPU: the same runs watched by live
  viewers and by plain waiters, alternating;
- hits' p99 (wrk, c=16) on a server with 100 live viewers open on 20 new links (runs of 10 steps a second with
  heavy previews, 2 at a time) and, in alternate rounds
  (the machine's other load falls on both alike), on a second server with the same 20 links pending and one
  plain waiter each (goal < 50 ms), then on both with nothing open; the API's RSS before and after opening
  the viewers (goal <= 1 MB per viewer); how soon a new live link gets its first part meanwhile.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from common import API_PIDS, cpu_seconds, linkpix_api, make_project, median, percentile, simulator, wrk

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


class Audience:
    """`count` viewers (live or plain) of `LINKS` new links whose runs take 15 s each, 150 steps at 10 a
    second with previews as heavy as a real model's (the fair queue gives ComfyUI `fair_depth` of them at a
    time; the rest wait in LinkPix), opened and kept open."""

    def __init__(self, api: str, sim, name: str, count: int, live: bool) -> None:
        self.sim, self.api, self.name, self.live = sim, api, name, live
        sim.faults.step_delay, sim.faults.noisy_previews, base = 0.1, True, sim.prompts_received
        self.viewers = [Viewer(f"{api}/prompt/{name}%20{i % LINKS}?steps=150" + ("&live=1" if live else ""))
                        for i in range(count)]
        self.threads = [threading.Thread(target=v.run, daemon=True) for v in self.viewers]
        for t in self.threads:
            t.start()
        if live:
            for v in self.viewers:
                v.opened.wait(30)
        deadline = time.monotonic() + 10  # the simulator's counter: /health itself might wait for a thread
        while self.sim.prompts_received < base + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)

    @property
    def opened(self) -> int:
        return sum(v.opened.is_set() for v in self.viewers)

    def new_link_ms(self) -> float:
        """How long a new link takes to be answered live (its first part: a card) with the audience open:
        it is accepted and queued at once, behind the audience's runs (same user: its turn comes after)."""
        viewer = Viewer(f"{self.api}/prompt/new%20during%20{self.name}?steps=2&live=1")
        threading.Thread(target=viewer.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not viewer.parts and time.monotonic() < deadline:
            time.sleep(0.002)
        return (viewer.parts[0][2] - viewer.started) * 1000 if viewer.parts else float("inf")

    def end(self) -> None:
        """Speed ComfyUI up until every run is done."""
        self.sim.faults.step_delay, self.sim.faults.noisy_previews = 0.0, False
        for t in self.threads:
            t.join(180)
        deadline = time.monotonic() + 60
        while self.sim.prompts_executed < self.sim.prompts_received and time.monotonic() < deadline:
            time.sleep(0.1)


def alternate(urls: dict[str, str], rounds: int = 6, seconds: int = 3) -> dict[str, list[dict[str, float]]]:
    """wrk rounds on each server in turn, so the machine's other load falls on them alike."""
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            before = cpu_seconds(API_PIDS[url])
            got = wrk(url + HIT, seconds=seconds)
            got["cpu_us"] = (cpu_seconds(API_PIDS[url]) - before) / max(1.0, got["requests"]) * 1e6
            figures[name].append(got)
    return figures


def frames_cost(api: str, sim, live: bool, name: str) -> tuple[float, int]:
    """The API's CPU seconds over two runs of 60 steps at 20 steps a second with heavy previews (50-75 KB
    JPEGs, as a real model's), watched by 5 live viewers each, or by one plain waiter each (the same runs
    and the same frames arriving, nobody shown them); and the frames the live viewers got."""
    sim.faults.step_delay, sim.faults.noisy_previews = 0.05, True
    viewers = [Viewer(f"{api}/prompt/{name}%20{i % 2}?steps=60" + ("&live=1" if live else ""))
               for i in range(10 if live else 2)]
    threads = [threading.Thread(target=v.run, daemon=True) for v in viewers]
    before = cpu_seconds(API_PIDS[api])
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    used = cpu_seconds(API_PIDS[api]) - before
    sim.faults.step_delay, sim.faults.noisy_previews = 0.0, False
    return used, sum(h.get("x-linkpix-part") == "preview" for v in viewers for h, _, _ in v.parts)


def main() -> dict[str, float]:
    project, other_project = make_project(workflow_path="demo.json"), make_project(workflow_path="demo.json")
    with simulator(step_delay=0.0) as sim, linkpix_api(project, sim.url) as api, \
            simulator(step_delay=0.0) as other_sim, linkpix_api(other_project, other_sim.url) as other:
        for url in (api, other):
            requests.get(url + HIT, timeout=60).raise_for_status()
            wrk(url + HIT, seconds=1)  # warm-up
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
        # What heavy frames cost the API: the same runs watched live or plainly, alternating.
        costs: dict[bool, list[float]] = {True: [], False: []}
        sent = []
        for i in range(3):
            for live in (False, True):
                used, got = frames_cost(api, sim, live, f"heavy%20{i}%20{live}")
                costs[live].append(used)
                if live:
                    sent.append(got)
        extra_ms = (median(costs[True]) - median(costs[False])) * 1000
        print(f"heavy frames (2 runs x 60 steps at 20 steps/s, 50-75 KB previews): API CPU "
              f"{median(costs[False]):.2f} s watched plainly, {median(costs[True]):.2f} s watched by 10 live viewers "
              f"({extra_ms:.0f} ms more, "
              f"{extra_ms / 120:.2f} ms per frame ComfyUI sent; {median(sent):.0f} frames sent to the viewers)")
        pid = API_PIDS[api]
        # Two servers measured in alternate rounds: `other` with 20 pending runs (one plain waiter each: the
        # cost of pending runs alone), `api` with the same 20 runs watched by 100 live viewers; then each
        # with nothing open.
        load_before = os.getloadavg()
        rss_before = rss_kb(pid)
        pending = Audience(other, other_sim, "pending", LINKS, live=False)
        watched = Audience(api, sim, "watched", VIEWERS, live=True)
        rss_after, opened = rss_kb(pid), watched.opened
        quiet_cpu = {}
        for name, url in (("live", api), ("pending", other)):  # what the audiences cost with no hits coming
            before = cpu_seconds(API_PIDS[url])
            time.sleep(5)
            quiet_cpu[name] = (cpu_seconds(API_PIDS[url]) - before) / 5 * 1000
        busy = alternate({"live": api, "pending": other}, rounds=8)
        new_link_ms = watched.new_link_ms()
        watched.end()
        pending.end()
        idle = alternate({"live": api, "pending": other}, rounds=3)
        load_after = os.getloadavg()
        plain = Audience(api, sim, "waited", VIEWERS, live=False)
        held = wrk(api + HIT, seconds=3)
        plain.end()
        rss_per_viewer = (rss_after - rss_before) / max(1, opened)

    def p99(rounds: list[dict[str, float]]) -> float:
        return median([f["p99_ms"] for f in rounds])

    ratios = [a["p99_ms"] / b["p99_ms"] for a, b in zip(busy["live"], busy["pending"], strict=True)]
    p99_loaded, p99_idle = p99(busy["live"]), p99(idle["live"])
    print(f"hits (wrk c=16, median p99 of 8 x 3 s rounds, the two servers alternating; load average "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f}): {opened} live viewers on {LINKS} new links "
          f"{p99_loaded:.1f} ms ({median([f['rps'] for f in busy['live']]):.0f} req/s, non-2xx "
          f"{sum(f['errors'] for f in busy['live']):.0f}); the same {LINKS} links pending, 1 plain waiter each "
          f"{p99(busy['pending']):.1f} ms; per-round ratio live/pending median {median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); then nothing open: {p99_idle:.1f} / "
          f"{p99(idle['pending']):.1f} ms (goal < 50 ms)")
    def cpu(rounds: list[dict[str, float]]) -> float:
        return median([f["cpu_us"] for f in rounds])

    print(f"  the server's CPU with no hits coming: {quiet_cpu['live']:.0f} ms/s with the live viewers (frames "
          f"flowing: 2 runs at 10 steps/s), {quiet_cpu['pending']:.0f} ms/s with the plain waiters")
    print(f"  the server's CPU per hit (less swayed by the machine's other load than latency): live viewers "
          f"{cpu(busy['live']):.0f} us, pending runs {cpu(busy['pending']):.0f} us, nothing open "
          f"{cpu(idle['live']):.0f} / {cpu(idle['pending']):.0f} us")
    print(f"  with {VIEWERS} plain waiters instead (40 hold waitress threads, the rest parked off them: "
          f"web/parked.py): {held['requests']:.0f} hits answered in 3 s"
          + (f", p99 {held['p99_ms']:.1f} ms" if held["requests"] else ""))
    print(f"memory: API RSS {rss_before / 1024:.1f} MB -> {rss_after / 1024:.1f} MB with {opened} viewers and "
          f"{LINKS} live runs: {rss_per_viewer:.0f} KB per viewer (goal <= 1024 KB)")
    print(f"a new link, asked live with the viewers open: first part (its card) after {new_link_ms:.0f} ms (it is "
          f"queued behind the {LINKS} runs: the fair queue gives ComfyUI 2 at a time)")
    return {"live_first_part_ms": median(firsts) * 1000, "live_frame_delay_ms": median(delays),
            "live_fps": fps, "live_kb_per_frame": statistics.mean(sizes) / 1024,
            "live_hits_p99_ms": p99_loaded, "live_hits_p99_ratio": median(ratios),
            "live_hits_cpu_ratio": cpu(busy["live"]) / cpu(idle["live"]), "live_quiet_cpu_ms_s": quiet_cpu["live"],
            "live_rss_kb_per_viewer": rss_per_viewer, "live_heavy_frames_extra_cpu_ms": extra_ms}


if __name__ == "__main__":
    main()
